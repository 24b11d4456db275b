# Independent reference implementation (R, plain linear algebra) of
# type I / type II / type III sums of squares, Hartley-synthesis expected mean squares,
# method-of-moments variance components and synthesized F tests.
# All terms (fixed and random) enter the model matrix as fixed effects with
# sum-to-zero coding, as SAS PROC GLM does before applying the RANDOM statement.

term_matrix <- function(term, data) {
  # columns of one term under contr.sum coding
  f <- as.formula(paste("~", term))
  facs <- all.vars(f)
  for (v in facs) if (!is.numeric(data[[v]])) data[[v]] <- factor(data[[v]])
  ctr <- lapply(facs[!sapply(data[facs], is.numeric)], function(v) "contr.sum")
  names(ctr) <- facs[!sapply(data[facs], is.numeric)]
  mm <- model.matrix(as.formula(paste("~ 0 +", gsub(":", ":", term))), data,
                     contrasts.arg = if (length(ctr)) ctr else NULL)
  mm
}

full_model <- function(terms, data) {
  # terms: character vector in model order (R-style, e.g. "A", "B", "A:B")
  for (v in names(data)) if (is.character(data[[v]])) data[[v]] <- factor(data[[v]])
  f <- as.formula(paste("~", paste(terms, collapse = " + ")))
  facs <- all.vars(f)
  ctr <- list(); for (v in facs) if (is.factor(data[[v]])) ctr[[v]] <- "contr.sum"
  X <- model.matrix(terms(f, keep.order = TRUE), data, contrasts.arg = ctr)
  asg <- attr(X, "assign")
  list(X = X, assign = asg, labels = c("(Intercept)", terms))
}

ginv <- function(A, tol = 1e-10) {
  s <- svd(A); d <- s$d; keep <- d > tol * max(d)
  s$v[, keep, drop = FALSE] %*% (t(s$u[, keep, drop = FALSE]) / d[keep])
}

proj <- function(X) { if (ncol(X) == 0) return(matrix(0, nrow(X), nrow(X))); X %*% ginv(crossprod(X)) %*% t(X) }

incidence <- function(term, data) {
  facs <- strsplit(term, ":")[[1]]
  g <- interaction(data[facs], drop = TRUE, sep = ":")
  Z <- model.matrix(~ 0 + g); Z
}

# does term `big` contain term `small` (every factor of small is a factor of big)?
contains <- function(big, small) all(strsplit(small, ":")[[1]] %in% strsplit(big, ":")[[1]])

# Quadratic-form matrices for each term, type 1, 2 or 3.
# Type 2 (SAS): term k adjusted for the intercept and every term that does not contain k,
#   A_k = P(adj + k) - P(adj).
qforms <- function(terms, data, type = 3) {
  fm <- full_model(terms, data); X <- fm$X; asg <- fm$assign
  A <- list()
  if (type == 1) {
    Pprev <- proj(X[, asg == 0, drop = FALSE])
    for (k in seq_along(terms)) {
      P <- proj(X[, asg <= k, drop = FALSE]); A[[terms[k]]] <- P - Pprev; Pprev <- P
    }
  } else if (type == 2) {
    for (k in seq_along(terms)) {
      adj <- c(0, which(!sapply(terms, contains, small = terms[k])))
      P0 <- proj(X[, asg %in% adj, drop = FALSE])
      P1 <- proj(X[, asg %in% c(adj, k), drop = FALSE])
      A[[terms[k]]] <- P1 - P0
    }
  } else {
    XtXi <- ginv(crossprod(X))
    for (k in seq_along(terms)) {
      cols <- which(asg == k)
      L <- diag(ncol(X))[cols, , drop = FALSE]
      M <- L %*% XtXi %*% t(L)
      B <- X %*% XtXi %*% t(L)
      A[[terms[k]]] <- B %*% ginv(M) %*% t(B)
    }
  }
  Pfull <- proj(X)
  A[["Residual"]] <- diag(nrow(X)) - Pfull
  A
}

ems_table <- function(terms, random, data, y, type = 3) {
  A <- qforms(terms, data, type)
  src <- names(A)
  df <- sapply(A, function(a) round(sum(diag(a))))
  SS <- sapply(A, function(a) as.numeric(t(y) %*% a %*% y))
  MS <- SS / df
  comps <- c(random, "Residual")
  C <- matrix(0, length(src), length(comps), dimnames = list(src, comps))
  for (i in seq_along(src)) {
    for (j in seq_along(random)) {
      Z <- incidence(random[j], data)
      C[i, j] <- sum(diag(t(Z) %*% A[[i]] %*% Z)) / df[i]
    }
    C[i, "Residual"] <- 1
  }
  fixed <- setdiff(terms, random)
  fm <- full_model(terms, data)
  Q <- lapply(src, function(s) {
    fx <- character(0)
    for (ft in fixed) {
      Xf <- fm$X[, fm$assign == match(ft, terms), drop = FALSE]
      if (max(abs(t(Xf) %*% A[[s]] %*% Xf)) > 1e-8 * max(1, max(abs(A[[s]])))) fx <- c(fx, ft)
    }
    fx
  })
  names(Q) <- src
  list(sources = src, df = df, SS = SS, MS = MS, ems = C, Q = Q)
}

mom <- function(tab, random) {
  comps <- c(random, "Residual")
  rows <- comps
  C <- tab$ems[rows, comps, drop = FALSE]
  raw <- solve(C, tab$MS[rows])
  names(raw) <- comps
  list(raw = raw, truncated = pmax(raw, 0))
}

ftests <- function(tab, random) {
  comps <- c(random, "Residual")
  out <- list()
  for (s in setdiff(tab$sources, "Residual")) {
    target <- tab$ems[s, comps]
    if (s %in% random) target[s] <- 0
    # find combination of random rows + residual with same expectation
    rows <- c(setdiff(random, s), "Residual")
    C <- t(tab$ems[rows, comps, drop = FALSE])
    cf <- qr.solve(C, target)
    resid <- max(abs(C %*% cf - target))
    den <- sum(cf * tab$MS[rows])
    dfden <- den^2 / sum((cf * tab$MS[rows])^2 / tab$df[rows])
    Fv <- tab$MS[s] / den
    p <- pf(Fv, tab$df[s], dfden, lower.tail = FALSE)
    cf <- cf[abs(cf) > 1e-10]
    out[[s]] <- list(F = Fv, den_df = dfden, p = p, error = cf, fit_resid = resid)
  }
  out
}
