# Regenerates the extra reference JSON (and CSV) for every case in cases.R.
# Adapted from /work/shared/oracle/generate.R: same JSON layout, plus classical.type2,
# reml.anova1_* (lmerTest type 1), r_versions, note, factors and checks (car::Anova cross-check).
# Usage (from tests/reference):  LC_ALL=C Rscript sims.R . && LC_ALL=C Rscript generate.R . .
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest); library(jsonlite); library(car)})
args <- commandArgs(TRUE); data_dir <- args[1]; out_dir <- args[2]
here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(here, "ems.R")); source(file.path(here, "classical.R")); source(file.path(here, "cases.R"))
Sys.setlocale("LC_COLLATE", "C")

versions <- c(list(R = R.version.string),
              lapply(setNames(nm = c("lme4", "lmerTest", "pbkrtest", "Matrix", "car", "jsonlite", "mvtnorm")),
                     function(p) as.character(packageVersion(p))))

coef_rows <- function(m, ddf) {
  s <- summary(m, ddf = ddf)$coefficients
  lapply(seq_len(nrow(s)), function(i) list(name = rownames(s)[i], estimate = s[i, 1], se = s[i, 2], df = s[i, 3], t = s[i, 4], p = s[i, 5]))
}
anova_rows <- function(m, ddf, type = 3) {
  a <- anova(m, ddf = ddf, type = type)
  out <- lapply(seq_len(nrow(a)), function(i) list(num_df = a[i, "NumDF"], den_df = a[i, "DenDF"], F = a[i, "F value"], p = a[i, "Pr(>F)"]))
  names(out) <- rownames(a); out
}

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
  if (!is.na(cs$lmer)) {
    m <- lmerTest::lmer(as.formula(cs$lmer), d, REML = TRUE, control = lmerControl(optimizer = "bobyqa"))
    vc <- as.data.frame(VarCorr(m))
    out$reml <- list(
      criterion = unname(REMLcrit(m)), sigma = sigma(m), singular = isSingular(m),
      varcorr = lapply(seq_len(nrow(vc)), function(i) list(grp = vc$grp[i], var1 = vc$var1[i], var2 = vc$var2[i], vcov = vc$vcov[i], sdcor = vc$sdcor[i])),
      coef_satterthwaite = coef_rows(m, "Satterthwaite"),
      coef_kenward_roger = coef_rows(m, "Kenward-Roger"),
      ranef = lapply(ranef(m), function(r) lapply(as.list(r), function(col) setNames(as.list(col), rownames(r))))
    )
    if (length(attr(terms(nobars(as.formula(cs$lmer))), "term.labels")) > 0) {
      out$reml$anova_satterthwaite <- anova_rows(m, "Satterthwaite")
      out$reml$anova_kenward_roger <- anova_rows(m, "Kenward-Roger")
      out$reml$anova1_satterthwaite <- anova_rows(m, "Satterthwaite", type = 1)
      out$reml$anova1_kenward_roger <- anova_rows(m, "Kenward-Roger", type = 1)
    }
    if (grepl("cluster", cs$lmer)) {
      ols <- lapply(split(d, d$cluster), function(g) if (length(unique(g$x)) >= 2) coef(lm(y ~ x, g)) else c(NA, NA))
      cm <- coef(m)$cluster
      out$shrinkage <- lapply(rownames(cm), function(k) list(cluster = k, n = sum(d$cluster == k),
        ols_intercept = unname(ols[[k]][1]), ols_slope = unname(ols[[k]][2]),
        mixed_intercept = cm[k, "(Intercept)"], mixed_slope = cm[k, "x"]))
    }
    ml <- update(m, REML = FALSE)
    out$ml <- list(loglik = as.numeric(logLik(ml)), aic = AIC(ml), bic = BIC(ml), sigma = sigma(ml),
                   varcorr = lapply(seq_len(nrow(vc)), function(i) list(grp = vc$grp[i], vcov = as.data.frame(VarCorr(ml))$vcov[i])))
  }
  dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
  write_json(out, file.path(out_dir, paste0(cs$name, ".json")), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null", na = "null")
  if (normalizePath(data_dir) != normalizePath(out_dir))
    file.copy(file.path(data_dir, paste0(cs$csv, ".csv")), file.path(out_dir, paste0(cs$csv, ".csv")), overwrite = TRUE)
  cat(cs$name, "ok\n")
}
