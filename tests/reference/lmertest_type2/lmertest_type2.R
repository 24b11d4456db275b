# lmerTest type II anova (Satterthwaite and Kenward-Roger) for a few frozen cases.
# Run from this folder: LC_ALL=C Rscript lmertest_type2.R
suppressMessages({library(lmerTest); library(jsonlite)})
out <- list()
for (name in c("yates_oats", "sas_varcomp1", "sim_splitplot_drop25", "mm_covariate_factor", "sim_rcbd_unbal", "mm_crossed")) {
  js <- fromJSON(file.path("..", paste0(name, ".json")))
  d <- read.csv(file.path("..", paste0(js$csv, ".csv")), stringsAsFactors = FALSE)
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]], levels = sort(unique(d[[v]])))
  m <- lmer(as.formula(js$lmer), d, REML = TRUE, control = lmerControl(optimizer = "bobyqa"))
  rows <- function(ddf) { a <- anova(m, type = 2, ddf = ddf)
    lapply(setNames(seq_len(nrow(a)), rownames(a)), function(i) list(num_df = a[i, "NumDF"], den_df = a[i, "DenDF"], F = a[i, "F value"])) }
  out[[name]] <- list(lmer = js$lmer, csv = js$csv, singular = isSingular(m),
                      satterthwaite = rows("Satterthwaite"), kenward_roger = rows("Kenward-Roger"))
}
out$r_versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")), lmerTest = as.character(packageVersion("lmerTest")), pbkrtest = as.character(packageVersion("pbkrtest")))
write_json(out, "lmertest_type2.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
