# Regenerates the extra reference JSON (and CSV) for every case in cases.R.
# Adapted from /work/shared/oracle/generate.R: same JSON layout, plus classical.type2,
# reml.anova1_* (lmerTest type 1), r_versions, note, factors and checks (car::Anova cross-check).
# Usage (from tests/reference):  LC_ALL=C Rscript sims.R . && LC_ALL=C Rscript generate.R . .
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest); library(jsonlite); library(car)})
args <- commandArgs(TRUE); data_dir <- args[1]; out_dir <- args[2]
here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(here, "ems.R")); source(file.path(here, "classical.R")); source(file.path(here, "mixed_refs.R"))
source(file.path(here, "cases.R"))
Sys.setlocale("LC_COLLATE", "C")

versions <- c(list(R = R.version.string),
              lapply(setNames(nm = c("lme4", "lmerTest", "pbkrtest", "Matrix", "car", "jsonlite", "mvtnorm")),
                     function(p) as.character(packageVersion(p))))

for (cs in CASES) {
  d <- read.csv(file.path(data_dir, paste0(cs$csv, ".csv")), stringsAsFactors = FALSE)
  facs <- unique(c(unlist(strsplit(c(cs$terms), ":")), cs$factors, if (isTRUE(grepl("cluster", cs$lmer))) "cluster"))
  for (v in facs) d[[v]] <- factor(as.character(d[[v]]), levels = sort(unique(as.character(d[[v]]))))
  out <- cs; out$nobs <- nrow(d); out$r_versions <- versions
  out$terms <- I(cs$terms); out$fixed <- I(cs$fixed); out$random <- I(cs$random); out$factors <- I(cs$factors)
  if (is.na(cs$builder)) out$builder <- NULL
  if (is.na(cs$lmer)) out$lmer <- NULL
  if (length(cs$terms) > 0) {
    out$classical <- list(type1 = classical(cs, d, 1), type2 = classical(cs, d, 2), type3 = classical(cs, d, 3))
    out$checks <- list(
      car_type2_ss_max_rel_diff = max_rel_diff(out$classical$type2, car_ss(cs, d, 2)),
      car_type3_ss_max_rel_diff = if (is.null(out$classical$type3)) NA else max_rel_diff(out$classical$type3, car_ss(cs, d, 3)))
    if (length(cs$random) == 0 && !isTRUE(out$checks$car_type2_ss_max_rel_diff < 1e-8))
      stop(cs$name, ": type II SS disagree with car::Anova")
  }
  if (!is.na(cs$lmer)) out <- add_mixed_refs(out, cs$lmer, d)
  dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
  write_json(out, file.path(out_dir, paste0(cs$name, ".json")), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null", na = "null")
  if (normalizePath(data_dir) != normalizePath(out_dir))
    file.copy(file.path(data_dir, paste0(cs$csv, ".csv")), file.path(out_dir, paste0(cs$csv, ".csv")), overwrite = TRUE)
  cat(cs$name, "ok\n")
}
