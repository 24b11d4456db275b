# Shared by sims.R, generate.R and stress/stress.R: the random-slope generator and the mixed-model part
# of a reference JSON (REML fit, Satterthwaite/Kenward-Roger tables, BLUPs, shrinkage, ML fit).

# random slopes as in "Shrinkage in Mixed Effects Models" (same generator as the oracle)
create_data <- function(obs_per_cluster = 10, n_cluster = 100, intercept = 1, beta = .5, sigma = 1,
                        sd_int = .5, sd_slope = .25, cor = 0, balanced = 1, seed = 888) {
  set.seed(seed)
  cluster <- rep(1:n_cluster, each = obs_per_cluster); N <- n_cluster * obs_per_cluster
  x <- rnorm(N)
  varmat <- matrix(c(sd_int^2, cor, cor, sd_slope^2), 2, 2)
  re <- mvtnorm::rmvnorm(n_cluster, sigma = varmat)
  y <- (intercept + re[cluster, 1]) + (beta + re[cluster, 2]) * x + rnorm(N, sd = sigma)
  df <- data.frame(y = y, x = x, cluster = sprintf("c%03d", cluster))
  if (balanced < 1) df <- df[sort(sample.int(N, round(N * balanced))), ]
  df
}

coef_rows <- function(m, ddf) {
  s <- summary(m, ddf = ddf)$coefficients
  lapply(seq_len(nrow(s)), function(i) list(name = rownames(s)[i], estimate = s[i, 1], se = s[i, 2], df = s[i, 3], t = s[i, 4], p = s[i, 5]))
}
anova_rows <- function(m, ddf, type = 3) {
  a <- anova(m, ddf = ddf, type = type)
  out <- lapply(seq_len(nrow(a)), function(i) list(num_df = a[i, "NumDF"], den_df = a[i, "DenDF"], F = a[i, "F value"], p = a[i, "Pr(>F)"]))
  names(out) <- rownames(a); out
}

# Adds reml (with theta when with_theta), shrinkage (cluster models) and ml to the case list `out`.
add_mixed_refs <- function(out, lmer, d, with_theta = FALSE) {
  m <- lmerTest::lmer(as.formula(lmer), d, REML = TRUE, control = lmerControl(optimizer = "bobyqa"))
  vc <- as.data.frame(VarCorr(m))
  out$reml <- c(
    list(criterion = unname(REMLcrit(m)), sigma = sigma(m), singular = isSingular(m)),
    if (with_theta) list(theta = unname(getME(m, "theta"))),
    list(
      varcorr = lapply(seq_len(nrow(vc)), function(i) list(grp = vc$grp[i], var1 = vc$var1[i], var2 = vc$var2[i], vcov = vc$vcov[i], sdcor = vc$sdcor[i])),
      coef_satterthwaite = coef_rows(m, "Satterthwaite"),
      coef_kenward_roger = coef_rows(m, "Kenward-Roger"),
      ranef = lapply(ranef(m), function(r) lapply(as.list(r), function(col) setNames(as.list(col), rownames(r))))
    ))
  if (length(attr(terms(nobars(as.formula(lmer))), "term.labels")) > 0) {
    out$reml$anova_satterthwaite <- anova_rows(m, "Satterthwaite")
    out$reml$anova_kenward_roger <- anova_rows(m, "Kenward-Roger")
    out$reml$anova1_satterthwaite <- anova_rows(m, "Satterthwaite", type = 1)
    out$reml$anova1_kenward_roger <- anova_rows(m, "Kenward-Roger", type = 1)
  }
  if (grepl("cluster", lmer)) {
    ols <- lapply(split(d, d$cluster), function(g) if (length(unique(g$x)) >= 2) coef(lm(y ~ x, g)) else c(NA, NA))
    cm <- coef(m)$cluster
    out$shrinkage <- lapply(rownames(cm), function(k) list(cluster = k, n = sum(d$cluster == k),
      ols_intercept = unname(ols[[k]][1]), ols_slope = unname(ols[[k]][2]),
      mixed_intercept = cm[k, "(Intercept)"], mixed_slope = cm[k, "x"]))
  }
  ml <- update(m, REML = FALSE)
  out$ml <- list(loglik = as.numeric(logLik(ml)), aic = AIC(ml), bic = BIC(ml), sigma = sigma(ml),
                 varcorr = lapply(seq_len(nrow(vc)), function(i) list(grp = vc$grp[i], vcov = as.data.frame(VarCorr(ml))$vcov[i])))
  out
}
