# ML log-likelihoods of a random-intercept model with and without an AR(1) residual (nlme), frozen in
# ar1_ml.json for tests/mixed/test_compare.py. Run from this folder: Rscript ar1_ml.R
suppressMessages({library(nlme); library(jsonlite)})
d <- read.csv("ar1.csv", stringsAsFactors = TRUE); d$subj <- factor(d$subj); d$trt <- factor(d$trt)
m1 <- lme(y ~ trt, random = ~1 | subj, correlation = corAR1(form = ~time | subj), data = d, method = "ML")
m0 <- lme(y ~ trt, random = ~1 | subj, data = d, method = "ML")
r1 <- lme(y ~ trt, random = ~1 | subj, correlation = corAR1(form = ~time | subj), data = d, method = "REML")
writeLines(toJSON(list(loglik_ml_iid = as.numeric(logLik(m0)), loglik_ml_ar1 = as.numeric(logLik(m1)),
                       loglik_reml_ar1 = as.numeric(logLik(r1))), digits = NA, auto_unbox = TRUE), "ar1_ml.json")
