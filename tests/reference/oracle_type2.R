# SAS type II classical results for the copied oracle cases (whose JSON stays frozen).
# Writes oracle_type2/<name>.json = {name, classical: {type2}, checks, r_versions}; test_reference.py
# merges classical.type2 into the case of the same name.
# Usage (from tests/reference):  LC_ALL=C Rscript oracle_type2.R . oracle_type2
suppressMessages({library(jsonlite)})
args <- commandArgs(TRUE); data_dir <- args[1]; out_dir <- args[2]
here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(here, "ems.R")); source(file.path(here, "classical.R")); source(file.path(here, "oracle_cases.R"))
Sys.setlocale("LC_COLLATE", "C")
versions <- c(list(R = R.version.string), lapply(setNames(nm = c("car", "jsonlite")), function(p) as.character(packageVersion(p))))
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
for (cs in CASES) {
  if (length(cs$terms) == 0) next
  d <- read.csv(file.path(data_dir, paste0(cs$csv, ".csv")), stringsAsFactors = FALSE)
  for (v in unique(unlist(strsplit(cs$terms, ":")))) d[[v]] <- factor(as.character(d[[v]]), levels = sort(unique(as.character(d[[v]]))))
  t2 <- classical(cs, d, 2)
  out <- list(name = cs$name, note = "SAS type II for the frozen oracle case of the same name",
              r_versions = versions, classical = list(type2 = t2),
              checks = list(car_type2_ss_max_rel_diff = max_rel_diff(t2, car_ss(cs, d, 2))))
  write_json(out, file.path(out_dir, paste0(cs$name, ".json")), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null", na = "null")
  cat(cs$name, "type2 ok, car diff", out$checks$car_type2_ss_max_rel_diff, "\n")
}
