# Frozen references for vcomp's variance-component inference (issue 12) on designs beyond the
# shared visible cases: exact profile intervals (random slopes, uncorrelated slopes, slope only,
# a boundary fit, crossed and nested-shorthand factors, an unbalanced split-plot), Wald intervals,
# Satterthwaite and MLS intervals of method-of-moments components for unbalanced designs,
# heritability (Cullis, Piepho, standard) for a second incomplete-block lattice, lmerTest's
# ranova and lme4's anova.
#
# Run from this folder:  LC_ALL=C Rscript vcinfer.R
# (R 4.2, lme4 1.1-31, lmerTest 3.1-3, emmeans 1.8; reads ../<case>.csv/json, writes <case>.json here)
#
# Profiles: exact roots, not lme4's spline.  The criterion at (theta, sigma) is
#   REML: ldL2 + ldRX2 + (n - p) log(2 pi sigma^2) + pwrss / sigma^2
#   ML:   ldL2 + n log(2 pi sigma^2) + pwrss / sigma^2
# from lme4's own deviance function (mkLmerDevfun; pwrss = wrss + |u|^2), each variance parameter on
# the sd/cor scale (lme4's Sv_to_Cv) held fixed and the others minimised (bobyqa, rhoend 1e-10);
# fixed coefficients: the ML deviance of the model refitted with that coefficient as an offset.
# A bound that the profile does not reach before the parameter's boundary is the boundary.
#
# MLS: Graybill-Wang / Ting et al. (1990) as in Burdick & Graybill (1992) and SAS PROC VARCOMP,
# applied to the expected mean squares and mean squares frozen in ../<case>.json (ems.R).

suppressMessages({library(lme4); library(lmerTest); library(jsonlite); library(minqa); library(emmeans)})
options(warn = 1)
ref <- ".."
LEVEL <- 0.95
CUT <- qchisq(LEVEL, 1)

read_case <- function(name) {
  r <- fromJSON(file.path(ref, paste0(name, ".json")), simplifyVector = FALSE)
  d <- read.csv(file.path(ref, paste0(name, ".csv")), stringsAsFactors = TRUE)
  list(r = r, d = d)
}

ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
                    check.conv.singular = "ignore")

# ------------------------------------------------------------------ profile of the variance parameters
sv_names <- function(fit) {
  cn <- fit@cnms; grp <- names(cn); out <- character(0)
  for (i in seq_along(cn)) {
    v <- cn[[i]]; k <- length(v)
    for (j in seq_len(k)) for (l in j:k) {          # column-major lower triangle: (l, j)
      out <- c(out, if (l == j) paste(grp[i], v[j], sep = ":") else paste(grp[i], v[j], v[l], sep = ":"))
    }
  }
  c(out, "Residual")
}
sv_kind <- function(fit) {
  out <- character(0)
  for (k in lengths(fit@cnms)) for (j in seq_len(k)) for (l in j:k) out <- c(out, if (l == j) "sd" else "cor")
  c(out, "sigma")
}

profile_vc <- function(formula, d, reml) {
  fit <- lmer(formula, d, REML = reml, control = ctrl)
  lf <- lFormula(formula, d, REML = reml)
  dfun <- do.call(mkLmerDevfun, lf); env <- environment(dfun)
  n <- nrow(lf$X); p <- ncol(lf$X); vl <- lengths(fit@cnms)
  dev <- function(sv) {
    s <- sv[length(sv)]
    if (s <= 0) return(Inf)
    th <- lme4:::Sv_to_Cv(sv, n = vl, s = s)
    if (any(!is.finite(th))) return(Inf)
    dfun(th); pp <- env$pp; pw <- env$resp$wrss() + pp$sqrL(1)
    if (reml) pp$ldL2() + pp$ldRX2() + (n - p) * log(2 * pi * s^2) + pw / s^2
    else pp$ldL2() + n * log(2 * pi * s^2) + pw / s^2
  }
  sv_hat <- as.numeric(lme4:::Cv_to_Sv(getME(fit, "theta"), n = vl, s = sigma(fit)))
  kind <- sv_kind(fit)
  lo_b <- ifelse(kind == "cor", -1, 0); hi_b <- ifelse(kind == "cor", 1, Inf)
  lo_b[kind == "sigma"] <- 1e-8 * sigma(fit)
  sc <- ifelse(kind == "cor", 1, pmax(abs(sv_hat), 1e-2 * sigma(fit)))
  full <- bobyqa(sv_hat / sc, function(z) dev(z * sc), lower = lo_b / sc, upper = hi_b / sc,
                 control = list(rhobeg = 1e-2, rhoend = 1e-11, maxfun = 1e5))
  dmin <- min(full$fval, dev(sv_hat))
  out <- list()
  for (i in seq_along(sv_hat)) {
    oth <- setdiff(seq_along(sv_hat), i)
    start <- sv_hat[oth] / sc[oth]
    prof <- function(v) {
      g <- function(z) { sv <- numeric(length(sv_hat)); sv[i] <- v; sv[oth] <- z * sc[oth]; dev(sv) }
      if (length(oth) == 1) {
        o <- optimize(g, c(lo_b[oth] / sc[oth], min(hi_b[oth] / sc[oth], 50)), tol = 1e-12)
        best <- o$objective; z <- o$minimum
      } else {
        o <- bobyqa(start, g, lower = lo_b[oth] / sc[oth], upper = hi_b[oth] / sc[oth],
                    control = list(rhobeg = 1e-2, rhoend = 1e-11, maxfun = 1e5))
        best <- o$fval; z <- o$par
        # zero is stationary for a standard deviation: retry from off the boundary
        zb <- kind[oth] == "sd" & z < 1e-6
        if (any(zb)) {
          z1 <- z; z1[zb] <- 0.3
          o1 <- bobyqa(z1, g, lower = lo_b[oth] / sc[oth], upper = hi_b[oth] / sc[oth],
                       control = list(rhobeg = 1e-2, rhoend = 1e-11, maxfun = 1e5))
          if (o1$fval < best) { best <- o1$fval; z <- o1$par }
        }
      }
      best - dmin - CUT
    }
    v0 <- sv_hat[i]
    side <- function(dir) {
      if (kind[i] == "cor") {
        edge <- dir
        if (abs(v0) >= 1 - 1e-10 || prof(edge) <= 0) return(edge)
        return(uniroot(prof, sort(c(v0, edge)), tol = 1e-12)$root)
      }
      if (dir < 0 && kind[i] == "sd") {
        if (v0 <= 0 || prof(0) <= 0) return(0)
        return(uniroot(prof, c(0, v0), tol = 1e-12 * max(v0, 1))$root)
      }
      step <- if (v0 > 0) 0.2 * v0 else 0.1 * sigma(fit)
      a <- v0; b <- v0 + dir * step
      while (prof(b) < 0) {
        a <- b; step <- 2 * step; b <- v0 + dir * step
        if (b <= 0) { b <- 1e-6 * v0; break }
        if (step > 1e6 * max(v0, sigma(fit))) return(dir * Inf)
      }
      uniroot(prof, sort(c(a, b)), tol = 1e-12 * max(abs(v0), 1))$root
    }
    out[[i]] <- list(name = sv_names(fit)[i], kind = kind[i], estimate = v0, lower = side(-1), upper = side(1))
  }
  out
}

profile_fixed <- function(formula, d) {
  fit <- lmer(formula, d, REML = FALSE, control = ctrl)
  X <- getME(fit, "X"); y <- getME(fit, "y"); dmin <- deviance(fit)
  bars <- paste0("(", sapply(findbars(formula), deparse), ")", collapse = " + ")
  se <- sqrt(diag(as.matrix(vcov(fit))))
  out <- list()
  for (j in seq_len(ncol(X))) {
    dd <- d; dd$.y. <- y
    Xo <- X[, -j, drop = FALSE]; if (ncol(Xo)) colnames(Xo) <- paste0(".x", seq_len(ncol(Xo)))
    if (ncol(Xo)) dd <- cbind(dd, Xo)
    rhs <- if (ncol(Xo)) paste(c("0", colnames(Xo)), collapse = " + ") else "0"
    f2 <- as.formula(paste(".y. ~", rhs, "+ offset(.off.) +", bars))
    prof <- function(b) {
      dd$.off. <- b * X[, j]
      deviance(lmer(f2, dd, REML = FALSE, control = ctrl, start = getME(fit, "theta"))) - dmin - CUT
    }
    b0 <- fixef(fit)[j]
    side <- function(dir) {
      a <- b0; step <- sqrt(CUT) * se[j]; b <- b0 + dir * step
      while (prof(b) < 0) { a <- b; step <- 2 * step; b <- b0 + dir * step }
      uniroot(prof, sort(c(a, b)), tol = 1e-10 * se[j])$root
    }
    out[[j]] <- list(name = colnames(X)[j], estimate_ml = unname(b0), lower = side(-1), upper = side(1))
  }
  out
}

wald <- function(formula, d, reml) {
  fit <- lmer(formula, d, REML = reml, control = ctrl)
  ci <- confint(fit, method = "Wald", level = LEVEL)
  fe <- fixef(fit)
  lapply(seq_along(fe), function(j) list(name = names(fe)[j], estimate = unname(fe[j]),
                                         lower = ci[names(fe)[j], 1], upper = ci[names(fe)[j], 2]))
}

ranova_rows <- function(formula, d) {
  fit <- lmer(formula, d, REML = TRUE, control = ctrl)
  rv <- ranova(fit)
  lapply(seq_len(nrow(rv)), function(i) list(name = rownames(rv)[i], npar = rv$npar[i], loglik = rv$logLik[i],
                                             AIC = rv$AIC[i], LRT = rv$LRT[i], df = rv$Df[i], p = rv[i, 6]))
}

compare_rows <- function(forms, d, refit) {
  fits <- lapply(forms, function(f) lmer(as.formula(f), d, REML = TRUE, control = ctrl))
  a <- do.call(anova, c(fits, list(refit = refit, model.names = forms)))
  lapply(seq_len(nrow(a)), function(i) list(formula = rownames(a)[i], npar = a$npar[i], AIC = a$AIC[i],
                                            BIC = a$BIC[i], loglik = a$logLik[i], deviance = a$deviance[i],
                                            chisq = a$Chisq[i], df = a$Df[i], p = a[i, 8]))
}

# ------------------------------------------------------------------ MLS / Satterthwaite (method of moments)
mls <- function(cf, ms, df, level) {
  a <- (1 - level) / 2; est <- sum(cf * ms)
  P <- which(cf > 0); N <- which(cf < 0)
  G <- 1 - df / qchisq(1 - a, df); H <- df / qchisq(a, df) - 1; t <- abs(cf) * ms
  vl <- sum((G[P] * t[P])^2) + sum((H[N] * t[N])^2); vu <- sum((H[P] * t[P])^2) + sum((G[N] * t[N])^2)
  for (q in P) for (r in N) {
    f1 <- qf(1 - a, df[q], df[r]); f2 <- qf(a, df[q], df[r])
    vl <- vl + ((f1 - 1)^2 - G[q]^2 * f1^2 - H[r]^2) / f1 * t[q] * t[r]
    vu <- vu + ((1 - f2)^2 - H[q]^2 * f2^2 - G[r]^2) / f2 * t[q] * t[r]
  }
  if (length(P) > 1) for (i in seq_along(P)) for (s in P[seq_along(P) > i]) {
    q <- P[i]; nqs <- df[q] + df[s]; ga <- 1 - nqs / qchisq(1 - a, nqs)
    vl <- vl + (ga^2 * nqs^2 / (df[q] * df[s]) - G[q]^2 * df[q] / df[s] - G[s]^2 * df[s] / df[q]) /
      (length(P) - 1) * t[q] * t[s]
  }
  c(max(est - sqrt(max(vl, 0)), 0), max(est + sqrt(max(vu, 0)), 0))
}

components_ci <- function(r, type) {
  tab <- r$classical[[paste0("type", type)]]
  if (is.null(tab)) return(NULL)
  comps <- c(unlist(r$random), "Residual")
  # type I: only where no random row's E[MS] holds a fixed effect (then textbook order = fixed first)
  if (type == 1 && any(sapply(unlist(r$random), function(x) length(tab$Q[[x]]) > 0))) return(NULL)
  rows <- tab$rows; ms <- sapply(comps, function(c) rows[[which(sapply(rows, `[[`, "source") == c)]]$MS)
  df <- sapply(comps, function(c) rows[[which(sapply(rows, `[[`, "source") == c)]]$df)
  E <- t(sapply(comps, function(s) sapply(comps, function(c) tab$ems[[s]][[c]])))
  A <- solve(E); A[abs(A) <= 1e-10 * apply(abs(A), 1, max)] <- 0
  out <- list()
  for (level in c(0.95, 0.90)) {
    a <- (1 - level) / 2
    out[[sprintf("%.2f", level)]] <- lapply(seq_along(comps), function(k) {
      cf <- A[k, ]; est <- sum(cf * ms); nu <- est^2 / sum((cf * ms)^2 / df)
      sat <- if (est > 0) c(nu * est / qchisq(1 - a, nu), nu * est / qchisq(a, nu)) else c(0, 0)
      m <- mls(cf, ms, df, level)
      list(component = comps[k], raw = est, estimate = max(est, 0), df = nu,
           satterthwaite = list(lower = sat[1], upper = sat[2]), mls = list(lower = m[1], upper = m[2]))
    })
  }
  out
}

# ------------------------------------------------------------------ heritability on a simulated lattice
make_lattice <- function() {
  set.seed(20240512)
  ng <- 30; nrep <- 3; bsize <- 5; nb <- ng / bsize
  rows <- list()
  for (r in seq_len(nrep)) {
    g <- sample(ng)
    for (b in seq_len(nb)) for (u in seq_len(bsize))
      rows[[length(rows) + 1]] <- data.frame(rep = paste0("R", r), block = paste0("B", b),
                                             gen = sprintf("G%02d", g[(b - 1) * bsize + u]))
  }
  d <- do.call(rbind, rows)
  ge <- rnorm(ng, 0, 0.6); names(ge) <- sprintf("G%02d", seq_len(ng))
  be <- rnorm(nrep * nb, 0, 0.6); names(be) <- paste(rep(paste0("R", 1:nrep), each = nb), paste0("B", 1:nb), sep = ":")
  d$yield <- round(5 + c(R1 = 0, R2 = 0.3, R3 = -0.2)[d$rep] + ge[d$gen] + be[paste(d$rep, d$block, sep = ":")] +
                     rnorm(nrow(d), 0, 0.5), 3)
  d <- d[sample(nrow(d), nrow(d) - 4), ]       # four plots lost: unbalanced
  d
}

heritability <- function(d) {
  f <- yield ~ rep + (1 | gen) + (1 | rep:block)
  fit <- lmer(f, d, REML = TRUE, control = ctrl)
  vc <- as.data.frame(VarCorr(fit)); s2g <- vc$vcov[vc$grp == "gen"]; s2e <- sigma(fit)^2
  X <- as.matrix(getME(fit, "X")); Z <- as.matrix(getME(fit, "Z"))
  Lam <- as.matrix(getME(fit, "Lambda"))
  G <- s2e * Lam %*% t(Lam)
  C <- rbind(cbind(crossprod(X), crossprod(X, Z)), cbind(crossprod(Z, X), crossprod(Z) + s2e * solve(G)))
  Ci <- s2e * solve(C)
  ti <- which(names(fit@cnms) == "gen"); Gp <- getME(fit, "Gp"); gi <- (Gp[ti] + 1):Gp[ti + 1]
  P <- Ci[ncol(X) + gi, ncol(X) + gi]
  g <- nrow(P); vblup <- 2 * (g * sum(diag(P)) - sum(P)) / (g * (g - 1))
  fitf <- lmer(yield ~ rep + gen + (1 | rep:block), d, REML = TRUE, control = ctrl)
  pr <- summary(pairs(emmeans(fitf, ~ gen, lmer.df = "satterthwaite")))
  vblue <- mean(pr$SE^2)
  rbar <- mean(table(d$gen))
  list(formula = "yield ~ rep + (1|gen) + (1|rep:block)", group = "gen",
       cullis = 1 - vblup / (2 * s2g), piepho = s2g / (s2g + vblue / 2), standard = s2g / (s2g + s2e / rbar),
       vbar_blup = vblup, vbar_blue = vblue, rbar = rbar, sigma2_g = s2g, sigma2_e = s2e)
}

# ------------------------------------------------------------------ cases
profile_cases <- list(
  mm_unbal_slopes = "y ~ x + (x|cluster)",
  mm_uncorr_slopes = "y ~ x + (x||cluster)",
  mm_slope_only = "y ~ x + (0 + x|g)",
  mm_boundary = "y ~ trt + (1|block)",
  mm_crossed = "diameter ~ 1 + (1|plate) + (1|sample)",
  mm_nested_shorthand = "y ~ trt + (1|farm/field)",
  sim_splitplot_drop10 = "y ~ A*B + (1|block) + (1|block:A)"
)
compare_cases <- list(
  mm_unbal_slopes = list(list(c("y ~ x + (x|cluster)", "y ~ x + (1|cluster)", "y ~ 1 + (1|cluster)"), TRUE),
                         list(c("y ~ x + (x|cluster)", "y ~ x + (x||cluster)"), FALSE)),
  sim_splitplot_drop10 = list(list(c("y ~ A*B + (1|block) + (1|block:A)", "y ~ A + B + (1|block) + (1|block:A)"), TRUE))
)
mom_cases <- c("sim_rcbd_unbal", "sim_nested_unbal", "sim_nested_unbal_reps", "sim_splitplot_drop10",
               "sim_splitsplit_unbal", "sim_strip_plot", "sim_latin_square")

for (nm in union(names(profile_cases), mom_cases)) {
  cs <- read_case(nm); d <- cs$d
  out <- list(case = nm, generated_by = "tests/reference/vcinfer/vcinfer.R", level = LEVEL)
  if (!is.null(profile_cases[[nm]])) {
    f <- as.formula(profile_cases[[nm]])
    out$lmer <- profile_cases[[nm]]
    out$confint <- list(
      wald = list(reml = wald(f, d, TRUE), ml = wald(f, d, FALSE)),
      profile = list(reml = list(varcomp = profile_vc(f, d, TRUE)), ml = list(varcomp = profile_vc(f, d, FALSE)),
                     fixed = profile_fixed(f, d)))
    out$ranova <- ranova_rows(f, d)
  }
  if (!is.null(compare_cases[[nm]]))
    out$compare <- lapply(compare_cases[[nm]], function(cc) list(models = cc[[1]], refit = cc[[2]],
                                                                 rows = compare_rows(cc[[1]], d, cc[[2]])))
  if (nm %in% mom_cases) {
    out$builder <- cs$r$builder
    out$components_ci <- list(type1 = components_ci(cs$r, 1), type3 = components_ci(cs$r, 3))
  }
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
             paste0(nm, ".json"))
  cat(nm, "done\n")
}

# heritability: the simulated lattice with missing plots, and John's alpha lattice (ASReml publishes
# Cullis's H2 = 0.8091336 for it)
lat <- make_lattice()
write.csv(lat, "lattice_missing.csv", row.names = FALSE)
for (nm in c("lattice_missing", "john_alpha")) {
  d <- if (nm == "lattice_missing") read.csv("lattice_missing.csv", stringsAsFactors = TRUE) else read_case(nm)$d
  d$rep <- factor(d$rep); d$block <- factor(d$block); d$gen <- factor(d$gen)
  writeLines(toJSON(list(case = nm, generated_by = "tests/reference/vcinfer/vcinfer.R", heritability = heritability(d)),
                    auto_unbox = TRUE, digits = NA, pretty = TRUE), paste0(nm, ".json"))
  cat(nm, "done\n")
}
