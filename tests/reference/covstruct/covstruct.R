# Frozen references for vcomp's residual covariance structures (tests/mixed/test_residual_reference.py).
# Run from this folder:  python make_data.py && LC_ALL=C Rscript covstruct.R
#
# For every case: a dense REML fit (V built from the parameters exactly as the table of
# shared/notes/covariance-structures.md writes it, maximised by nlminb and polished by Newton steps
# with numDeriv), cross-checked against nlme (gls / lme, method = "REML") where nlme has the
# structure. Satterthwaite: A = 2 * solve(numDeriv Hessian of -2 logLik_REML) in these parameters,
# df = 2 (l'Phi l)^2 / (g'A g) (lmerTest's contest1D / contestMD). Kenward-Roger (expected_linear):
# pbkrtest:::vcovAdj_internal + .KR_adjust / Lb_ddf fed with V and dV/dtheta. Type III hypotheses:
# lmerTest:::get_contrasts_type3 of the same fixed model (an lm).
suppressMessages({library(nlme); library(numDeriv); library(jsonlite); library(pbkrtest); library(lmerTest)})

rd <- function(name) {
  d <- read.csv(paste0(name, ".csv"), stringsAsFactors = FALSE)
  for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]], levels = sort(unique(d[[v]])))
  d
}
pos <- function(x) as.integer(factor(x, levels = sort(unique(x))))

# ---------------------------------------------------------------- residual V from the note's table
make_R <- function(kind, d, p, cols) {
  n <- nrow(d)
  if (kind == "diag") return(diag(p[paste0("sigma2:", as.character(d[[cols$group]]))], n))
  if (kind == "ar1ar1") {
    r <- pos(d[[cols$row]]); cc <- pos(d[[cols$col]])
    same <- if (is.null(cols$trial)) matrix(TRUE, n, n) else outer(as.character(d[[cols$trial]]), as.character(d[[cols$trial]]), "==")
    return(same * p[["sigma2"]] * p[[paste0("rho:", cols$row)]]^abs(outer(r, r, "-")) *
             p[[paste0("rho:", cols$col)]]^abs(outer(cc, cc, "-")))
  }
  t <- pos(d[[cols$time]]); tl <- sort(unique(as.character(d[[cols$time]])))
  s <- as.character(d[[cols$subject]])
  g <- if (is.null(cols$group)) rep("", n) else as.character(d[[cols$group]])
  pre <- if (is.null(cols$group)) rep("", n) else paste0(g, ":")
  same <- outer(s, s, "==") & outer(g, g, "==")
  lag <- abs(outer(t, t, "-"))
  sd <- if (kind %in% c("us", "ar1h", "csh")) sqrt(p[paste0("sigma2:", pre, tl[t])]) else rep(sqrt(p[["sigma2"]]), n)
  cor <- switch(kind,
    ar1 = , ar1h = p[["rho"]]^lag,
    cs = , csh = ifelse(lag == 0, 1, p[["rho"]]),
    toep = matrix(c(1, p[paste0("rho:lag", seq_len(length(tl) - 1))])[lag + 1], n, n),
    us = {
      m <- matrix(1, n, n)
      for (i in 1:n) for (j in 1:n) if (same[i, j] && t[i] != t[j]) {
        lo <- min(t[i], t[j]); hi <- max(t[i], t[j])
        m[i, j] <- p[[paste0("rho:", pre[i], tl[lo], ":", tl[hi])]]
      }
      m
    })
  same * outer(sd, sd) * cor
}

# ---------------------------------------------------------------- dense REML
dense_case <- function(cs) {
  d <- rd(cs$csv)
  if (!is.null(cs$cols$time)) d$tp <- pos(d[[cs$cols$time]])
  X <- model.matrix(as.formula(cs$fixed), d)
  y <- d$y
  n <- nrow(X); p <- ncol(X)
  Zs <- lapply(cs$random, function(g) {
    f <- interaction(d[strsplit(g, ":")[[1]]], drop = TRUE, sep = ":")
    model.matrix(~ 0 + f)
  })
  names(Zs) <- cs$random
  pn <- c(cs$pnames, cs$random)
  Vfun <- function(v) {
    pp <- setNames(v, pn)
    V <- make_R(cs$kind, d, pp, cs$cols)
    for (g in cs$random) V <- V + pp[[g]] * tcrossprod(Zs[[g]])
    V
  }
  ll <- function(v) {
    V <- Vfun(v)
    ch <- tryCatch(chol(V), error = function(e) NULL)
    if (is.null(ch)) return(-1e10)
    Vi <- chol2inv(ch)
    XVX <- crossprod(X, Vi %*% X)
    b <- solve(XVX, crossprod(X, Vi %*% y))
    r <- y - X %*% b
    -0.5 * ((n - p) * log(2 * pi) + 2 * sum(log(diag(ch))) + as.numeric(determinant(XVX)$modulus) + sum(r * (Vi %*% r)))
  }
  # transformed optimisation (variances > 0, |rho| < 1, cs: rho > -1/(k-1)), then Newton in v
  isvar <- grepl("^sigma2", pn) | pn %in% cs$random
  to_v <- function(u) ifelse(isvar, exp(u), tanh(u))
  from_v <- function(v) suppressWarnings(ifelse(isvar, log(v), atanh(v)))
  o <- nlminb(from_v(cs$start), function(u) -ll(to_v(u)), control = list(eval.max = 5000, iter.max = 3000, rel.tol = 1e-14))
  v <- to_v(o$par)
  for (it in 1:6) {
    g <- grad(ll, v); H <- hessian(ll, v)
    step <- -solve(H, g)
    if (max(abs(step)) < 1e-12) break
    v <- v + step
  }
  V <- Vfun(v)
  Vi <- solve(V)
  Phi <- solve(crossprod(X, Vi %*% X))
  beta <- as.numeric(Phi %*% crossprod(X, Vi %*% y))
  names(beta) <- colnames(X)
  G <- lapply(seq_along(v), function(i) {
    h <- 1e-6 * max(abs(v[i]), 1e-3); e <- rep(0, length(v)); e[i] <- h
    (Vfun(v + e) - Vfun(v - e)) / (2 * h)
  })
  # Satterthwaite
  Hdev <- -2 * hessian(ll, v)
  A <- 2 * solve(Hdev)
  jac <- lapply(G, function(Gi) Phi %*% crossprod(X, Vi %*% Gi %*% Vi %*% X) %*% Phi)
  df1 <- function(l) { gg <- sapply(jac, function(J) sum(l * (J %*% l))); 2 * sum(l * (Phi %*% l))^2 / sum(gg * (A %*% gg)) }
  satt <- function(L) {
    L <- rbind(L)
    if (nrow(L) == 1) {
      l <- L[1, ]
      return(list(num_df = 1, den_df = df1(l), F = sum(l * beta)^2 / sum(l * (Phi %*% l)), se = sqrt(sum(l * (Phi %*% l)))))
    }
    e <- eigen(L %*% Phi %*% t(L), symmetric = TRUE)
    PL <- t(e$vectors) %*% L
    nu <- apply(PL, 1, df1)
    q <- nrow(L)
    # lmerTest's get_Fstat_ddf
    ddf <- if (all(abs(diff(nu)) < 1e-8)) mean(nu) else if (any(nu <= 2)) 2 else {
      E <- sum(nu / (nu - 2)); 2 * E / (E - q) }
    list(num_df = q, den_df = ddf, F = sum((PL %*% beta)^2 / e$values) / q)
  }
  # Kenward-Roger (pbkrtest's engine with G_i = dV/dtheta_i)
  PhiA <- pbkrtest:::vcovAdj_internal(Phi, list(Sigma = V, G = G, n.ggamma = length(G)), X)
  kr <- function(L) {
    L <- rbind(L)
    st <- pbkrtest:::.KR_adjust(PhiA, Phi, L, beta, 0)
    out <- list(num_df = st$ndf, den_df = st$ddf, F = st$Fstat, scale = st$F.scaling)
    if (nrow(L) == 1) { out$se <- sqrt(as.numeric(L %*% PhiA %*% t(L))); out$df_lb <- pbkrtest:::Lb_ddf(L, Phi, PhiA) }
    out
  }
  Lc <- matrix(0, 2, p); Lc[1, p] <- 1; Lc[2, 2] <- 1; Lc[2, p - 1] <- -1
  # type III hypotheses (lmerTest's contrasts of the same fixed model)
  L3 <- lmerTest:::get_contrasts_type3(lm(as.formula(cs$fixed), d))
  block <- function(fun) {
    coef <- lapply(seq_len(p), function(j) {
      l <- rep(0, p); l[j] <- 1; r <- fun(l)
      list(name = colnames(X)[j], estimate = beta[[j]], se = r$se, df = if (!is.null(r$df_lb)) r$df_lb else r$den_df)
    })
    an <- lapply(L3, function(L) { r <- fun(L[, colnames(X), drop = FALSE]); r[c("num_df", "den_df", "F")] })
    list(coef = coef, anova = an, contrast = fun(Lc)[c("num_df", "den_df", "F")])
  }
  res <- list(name = cs$name, csv = cs$csv, formula = cs$formula, residual = cs$residual, structure = cs$kind,
    nobs = n, reml = list(loglik = ll(v), score_max = max(abs(grad(ll, v))),
      residual_params = lapply(seq_along(cs$pnames), function(i) list(name = cs$pnames[i], estimate = v[i])),
      random = lapply(cs$random, function(g) list(grp = g, vcov = v[which(pn == g)])),
      coef = lapply(seq_len(p), function(j) list(name = colnames(X)[j], estimate = beta[[j]], se = sqrt(Phi[j, j])))),
    contrast = list(columns = colnames(X), L = lapply(1:2, function(i) Lc[i, ])),
    satterthwaite = block(satt), kenward_roger = block(kr))
  if (!is.null(cs$nlme)) {
    m <- eval(parse(text = cs$nlme))
    res$nlme <- list(call = cs$nlme, loglik = as.numeric(logLik(m)),
                     coef = as.list(if (inherits(m, "lme")) fixef(m) else coef(m)))
  }
  res
}

cases <- list(
  list(name = "sim_toep", csv = "sim_toep", formula = "y ~ trt*time", fixed = "y ~ trt*time", residual = "toep(time | subj)",
       kind = "toep", cols = list(time = "time", subject = "subj"), random = character(0),
       pnames = c("sigma2", "rho:lag1", "rho:lag2", "rho:lag3"), start = c(1, 0.4, 0.2, 0.1),
       nlme = "gls(y ~ trt*time, d, correlation = corARMA(p = 3, form = ~ tp | subj), method = 'REML')"),
  list(name = "sim_ar1h", csv = "sim_ar1h", formula = "y ~ trt + time + x", fixed = "y ~ trt + time + x", residual = "ar1h(time | subj)",
       kind = "ar1h", cols = list(time = "time", subject = "subj"), random = character(0),
       pnames = c(paste0("sigma2:t", 1:5), "rho"), start = c(1, 1, 2, 3, 2, 0.5),
       nlme = "gls(y ~ trt + time + x, d, correlation = corAR1(form = ~ tp | subj), weights = varIdent(form = ~ 1 | time), method = 'REML')"),
  list(name = "sim_csh_block", csv = "sim_csh_block", formula = "y ~ trt + time + (1|block)", fixed = "y ~ trt + time",
       residual = "csh(time | subj)", kind = "csh", cols = list(time = "time", subject = "subj"), random = "block",
       pnames = c(paste0("sigma2:t", 1:4), "rho"), start = c(1.5, 2, 3.5, 5.5, 0.35, 1.2),
       nlme = "lme(y ~ trt + time, random = ~ 1 | block, data = d, correlation = corCompSymm(form = ~ 1 | block/subj), weights = varIdent(form = ~ 1 | time), method = 'REML')"),
  list(name = "sim_us_group", csv = "sim_us_group", formula = "y ~ 0 + grp + grp:trt + grp:time", fixed = "y ~ 0 + grp + grp:trt + grp:time",
       residual = "us(time | grp / subj)", kind = "us", cols = list(time = "time", subject = "subj", group = "grp"), random = character(0),
       pnames = c(paste0("sigma2:G0:t", 1:3), "rho:G0:t1:t2", "rho:G0:t1:t3", "rho:G0:t2:t3",
                  paste0("sigma2:G1:t", 1:3), "rho:G1:t1:t2", "rho:G1:t1:t3", "rho:G1:t2:t3"),
       start = c(0.5, 1, 1.7, 0.4, -0.1, 0.2, 4, 4, 10, 0.6, 0.3, 0.6), nlme = NULL),
  list(name = "env_diag_random", csv = "env_diag", formula = "y ~ env*gen + (1|env:block)", fixed = "y ~ env*gen",
       residual = "diag(1 | env)", kind = "diag", cols = list(group = "env"), random = "env:block",
       pnames = paste0("sigma2:E", 0:3), start = c(0.4, 0.5, 2.7, 5.6, 0.2),
       nlme = "lme(y ~ env*gen, random = ~ 1 | eb, data = transform(d, eb = interaction(env, block)), weights = varIdent(form = ~ 1 | env), method = 'REML')"),
  list(name = "env_diag_gls", csv = "env_diag", formula = "y ~ env + gen", fixed = "y ~ env + gen",
       residual = "diag(1 | env)", kind = "diag", cols = list(group = "env"), random = character(0),
       pnames = paste0("sigma2:E", 0:3), start = c(0.6, 0.6, 2.6, 4.6),
       nlme = "gls(y ~ env + gen, d, weights = varIdent(form = ~ 1 | env), method = 'REML')"),
  list(name = "field_trials", csv = "field_trials", formula = "y ~ trial + trial:rep + gen", fixed = "y ~ trial + trial:rep + gen",
       residual = "ar1(row):ar1(col) | trial", kind = "ar1ar1", cols = list(row = "row", col = "col", trial = "trial"),
       random = character(0), pnames = c("sigma2", "rho:row", "rho:col"), start = c(2.3, 0.5, 0.5), nlme = NULL),
  list(name = "field_nugget", csv = "field_nugget", formula = "y ~ rep + gen + (1|plot)", fixed = "y ~ rep + gen",
       residual = "ar1(row):ar1(col)", kind = "ar1ar1", cols = list(row = "row", col = "col"), random = "plot",
       pnames = c("sigma2", "rho:row", "rho:col"), start = c(1.1, 0.7, 0.85, 1), nlme = NULL)
)

out <- lapply(cases, function(cs) { cat(cs$name, "\n"); dense_case(cs) })
names(out) <- sapply(cases, `[[`, "name")
# type III of non-hierarchical fixed parts (rep only within trial) for an lmer fit: lmerTest's contrasts
d <- rd("field_trials"); d$colf <- factor(d$col)
nested <- list()
for (f in c("y ~ trial + trial:rep + gen + (1|colf)", "y ~ 0 + trial + trial:rep + gen + (1|colf)")) {
  m <- lmerTest::lmer(as.formula(f), d, control = lme4::lmerControl(optimizer = "bobyqa"))
  a <- anova(m, type = 3, ddf = "Kenward-Roger")
  nested[[f]] <- lapply(setNames(seq_len(nrow(a)), rownames(a)), function(i)
    list(num_df = a[i, "NumDF"], den_df = a[i, "DenDF"], F = a[i, "F value"]))
}
out$nested_type3_lmer <- list(csv = "field_trials", factors_from = "col -> colf (string)", anova_kr = nested)
out$r_versions <- list(R = R.version.string, nlme = as.character(packageVersion("nlme")),
                       pbkrtest = as.character(packageVersion("pbkrtest")), lmerTest = as.character(packageVersion("lmerTest")))
write_json(out, "covstruct.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
