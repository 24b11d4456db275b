# Satterthwaite df for ML fits (lmerTest 3.1-3). Run from this folder: LC_ALL=C Rscript ml_satterthwaite.R
suppressMessages({library(lmerTest); library(jsonlite)})
cases <- list(
  list(name="sas_varcomp1", f="y ~ a + (1|b) + (1|a:b)"),
  list(name="yates_oats", f="yield ~ variety*nitro + (1|block) + (1|block:variety)"),
  list(name="shrink_base", f="y ~ x + (x|cluster)"),
  list(name="mm_crossed", f=NA),
  list(name="mm_covariate_factor", f=NA))
out <- list()
for (cs in cases) {
  js <- fromJSON(file.path("..", paste0(cs$name, ".json")))
  f <- if (is.na(cs$f)) js$lmer else cs$f
  d <- read.csv(file.path("..", paste0(js$csv, ".csv")), stringsAsFactors = FALSE)
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]], levels = sort(unique(d[[v]])))
  if ("cluster" %in% names(d)) d$cluster <- factor(as.character(d$cluster))
  m <- lmer(as.formula(f), d, REML = FALSE, control = lmerControl(optimizer = "bobyqa"))
  s <- summary(m, ddf = "Satterthwaite")$coefficients
  a <- anova(m, ddf = "Satterthwaite", type = 3)
  out[[cs$name]] <- list(formula = f, csv = js$csv, loglik = as.numeric(logLik(m)), singular = isSingular(m),
    coef = lapply(seq_len(nrow(s)), function(i) list(name = rownames(s)[i], estimate = s[i, 1], se = s[i, 2], df = s[i, 3])),
    anova = lapply(setNames(seq_len(nrow(a)), rownames(a)), function(i) list(num_df = a[i, "NumDF"], den_df = a[i, "DenDF"], F = a[i, "F value"])))
}
out$r_versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")), lmerTest = as.character(packageVersion("lmerTest")))
write_json(out, "ml_satterthwaite.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
