# lmerTest's ham data: type II and III tests with a covariate (SAS containment), frozen for tests/mixed.
# Run from this folder: LC_ALL=C Rscript ham.R
suppressPackageStartupMessages({library(lmerTest); library(jsonlite)})
data(ham, package = "lmerTest")
d <- ham[, c("Informed.liking", "Product", "Consumer", "Age", "Gender")]
d$Age <- as.numeric(d$Age)
write.csv(d, "ham.csv", row.names = FALSE)
m <- lmer(Informed.liking ~ Product * Age + (1 | Consumer), data = d)
tab <- function(a) lapply(split(as.data.frame(a), rownames(a)), function(r)
  list(num_df = r[["NumDF"]], den_df = r[["DenDF"]], F = r[["F value"]], p = r[["Pr(>F)"]]))
out <- list(formula = "Informed.liking ~ Product * Age + (1 | Consumer)",
            type2_satterthwaite = tab(anova(m, type = 2)),
            type3_satterthwaite = tab(anova(m, type = 3)),
            type2_kenward_roger = tab(anova(m, type = 2, ddf = "Kenward-Roger")),
            type1_satterthwaite = tab(anova(m, type = 1)),
            reml_criterion = REMLcrit(m),
            versions = list(R = R.version.string, lmerTest = as.character(packageVersion("lmerTest"))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "ham.json")
