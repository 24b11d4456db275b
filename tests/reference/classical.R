# Classical part of a reference case (rows, EMS, Q, MoM, F tests) and the car::Anova cross-check.
# Needs ems.R sourced first; used by generate.R and oracle_type2.R.
suppressMessages(library(car))

classical <- function(cs, d, type) {
  fm <- full_model(cs$terms, d)
  if (qr(fm$X)$rank < ncol(fm$X) && type == 3) return(NULL)
  tab <- ems_table(cs$terms, cs$random, d, d[[cs$response]], type = type)
  rows <- lapply(tab$sources, function(s) list(source = s, df = unname(tab$df[s]), SS = unname(tab$SS[s]), MS = unname(tab$MS[s])))
  ems <- lapply(tab$sources, function(s) setNames(as.list(tab$ems[s, ]), colnames(tab$ems))); names(ems) <- tab$sources
  m <- mom(tab, cs$random)
  ft <- ftests(tab, cs$random)
  tests <- lapply(names(ft), function(s) {
    t <- ft[[s]]
    if (t$fit_resid > 1e-8) return(NULL)
    list(F = unname(t$F), den_df = unname(t$den_df), p = unname(t$p), error = as.list(t$error))
  })
  names(tests) <- names(ft)
  list(rows = rows, ems = ems, Q = lapply(tab$Q, I), mom = list(raw = as.list(m$raw), truncated = as.list(m$truncated)), tests = tests)
}

# type II / III SS of the all-fixed linear model (sum-to-zero coding) from car::Anova, for cross-checking ems.R
car_ss <- function(cs, d, type) {
  ctr <- list(); for (v in unique(unlist(strsplit(cs$terms, ":")))) ctr[[v]] <- "contr.sum"
  f <- as.formula(paste(cs$response, "~", paste(cs$terms, collapse = " + ")))
  fit <- lm(terms(f, keep.order = TRUE), d, contrasts = ctr)
  a <- car::Anova(fit, type = type, singular.ok = TRUE)
  rn <- trimws(rownames(a)); ss <- setNames(a[["Sum Sq"]], rn)
  ss
}
max_rel_diff <- function(cl, ss) {
  ours <- sapply(cl$rows, function(r) r$SS); names(ours) <- sapply(cl$rows, function(r) r$source)
  names(ss)[names(ss) == "Residuals"] <- "Residual"
  canon <- function(x) sapply(strsplit(x, ":"), function(p) paste(sort(p), collapse = ":"))
  theirs <- setNames(ss, canon(names(ss)))
  k <- canon(names(ours))
  if (!all(k %in% names(theirs))) return(NA)
  max(abs(ours - theirs[k]) / pmax(abs(theirs[k]), 1e-12))
}
