# Frozen references for MixedModel.means and AnovaResult.means (vcomp/means.py, vcomp/classical/lsmeans.py).
# Usage (from tests/reference/means):  LC_ALL=C Rscript means.R .
# R 4.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, emmeans 1.8.4, multcomp 1.4, multcompView 0.1-8.
#
# Mixed models: emmeans(fit, ~ term, lmer.df = ddf) on the lmerTest fit (bobyqa, rhoend 1e-12), pairs()
# with every adjust and its confint, multcomp::cld letters (Tukey, alpha 0.05), SED/LSD summaries of the
# unadjusted pairs, and the same within each factor of a two-factor term (by =).
# Classical: an independent dense computation of vcomp's documented method, handed to emmeans as an
# emmobj so that pairs / adjustments / cld are emmeans' own: estimates = emmeans of the all-fixed lm
# (contr.sum; equal weights over every other factor of the design, blocks included); covariance of the
# coefficients G X' V X G with V = sum_j s2_j Z_j Z_j' + s2 I from the type III method-of-moments
# components of ems.R (untruncated for balanced designs, truncated otherwise); Satterthwaite df of each
# linear function k from Var(k'b) = sum_j s2_j |Z_j' X G k|^2 + s2 |X G k|^2 written in the mean squares.
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest); library(emmeans); library(multcomp)
                  library(jsonlite)})
args <- commandArgs(TRUE); out_dir <- if (length(args)) args[1] else "."
here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(here, "..", "ems.R"))
Sys.setlocale("LC_COLLATE", "C")
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6, msg.interaction = FALSE)
ADJ <- c("none", "tukey", "bonferroni", "holm", "sidak", "scheffe")
SP <- c("block", "A", "block:A", "B", "A:B")

# ------------------------------------------------------------------ new data sets
set.seed(311)
d <- expand.grid(plot = 1:3, trt = c("A", "B", "C", "D"), block = sprintf("k%d", 1:6), stringsAsFactors = FALSE)
d$x <- round(exp(rnorm(nrow(d), 2.5, .5)), 2)
d$dose <- rep(c(1, 2, 4), length.out = nrow(d))[sample(nrow(d))]
d$z <- rbinom(nrow(d), 1, .4)
d$y <- round(5 + 1.2 * log(d$x) + c(A = 0, B = .6, C = 1.1, D = -.3)[d$trt] + .5 * d$z + .3 * d$dose +
             ifelse(d$trt == "C", .4 * log(d$x), 0) + rnorm(6, sd = .8)[match(d$block, sprintf("k%d", 1:6))] +
             rnorm(nrow(d), sd = .6), 3)
d <- d[-sample(nrow(d), 5), c("block", "trt", "x", "dose", "z", "y")]
write.csv(d, file.path(out_dir, "mm_transformed.csv"), row.names = FALSE)

# unbalanced split-plot whose whole-plot component comes out negative (truncated at zero): the first
# seed from 1 on for which the type III method-of-moments estimate of block:A is negative
neg_sp <- function(seed) {
  set.seed(seed)
  d <- expand.grid(B = paste0("b", 1:3), A = paste0("a", 1:3), block = paste0("r", 1:4), stringsAsFactors = FALSE)
  d <- d[, c("block", "A", "B")]
  d$y <- round(10 + rnorm(4, sd = 1)[match(d$block, paste0("r", 1:4))] + c(a1 = 0, a2 = .5, a3 = 1)[d$A] +
               c(b1 = 0, b2 = .8, b3 = 1.5)[d$B] + rnorm(nrow(d)), 2)
  d[-sample(nrow(d), 3), ]
}
for (seed in 1:500) {
  dn <- neg_sp(seed)
  dd <- dn; for (v in c("block", "A", "B")) dd[[v]] <- factor(dd[[v]])
  raw <- mom(ems_table(SP, c("block", "block:A"), dd, dd$y, type = 3), c("block", "block:A"))$raw
  if (raw["block:A"] < 0 && raw["block"] > 0) break
}
write.csv(dn, file.path(out_dir, "sim_splitplot_negative.csv"), row.names = FALSE)

# ------------------------------------------------------------------ cases
mc <- function(name, csv, response, lmer, vcomp, means, factors, builder = NA, terms = NULL, random = NULL,
               balanced = NA, note = "") {
  list(name = name, csv = csv, response = response, lmer = lmer, vcomp = vcomp, means = means, factors = factors,
       builder = builder, terms = terms, random = random, balanced = balanced, note = note)
}
CASES <- list(
  mc("sim_splitplot_negative", "sim_splitplot_negative.csv", "y", "y ~ A*B + (1|block) + (1|block:A)",
     "y ~ A*B + (1|block) + (1|block:A)", c("A", "A:B"), c("block", "A", "B"),
     'vcomp.SplitPlot(whole="A", sub="B", block="block")', SP, c("block", "block:A"), FALSE,
     "unbalanced split-plot (3 sub-plots lost) whose block:A component is negative: truncated at zero"),
  mc("sim_splitplot_drop10", "../sim_splitplot_drop10.csv", "y", "y ~ A*B + (1|block) + (1|block:A)",
     "y ~ A*B + (1|block) + (1|block:A)", c("A", "B", "A:B"), c("block", "A", "B"),
     'vcomp.SplitPlot(whole="A", sub="B", block="block")', SP, c("block", "block:A"), FALSE,
     "unbalanced split-plot (10% of sub-plots lost)"),
  mc("sim_latin_square", "../sim_latin_square.csv", "y", "y ~ trt + (1|row) + (1|col)", "y ~ trt + (1|row) + (1|col)",
     "trt", c("row", "col", "trt"), 'vcomp.LatinSquare(treatment="trt", row="row", col="col")',
     c("row", "col", "trt"), c("row", "col"), TRUE, "5 x 5 Latin square"),
  mc("sim_strip_plot", "../sim_strip_plot.csv", "y", "y ~ H*V + (1|block) + (1|block:H) + (1|block:V)",
     "y ~ H*V + (1|block) + (1|block:H) + (1|block:V)", c("H", "V", "H:V"), c("block", "H", "V"),
     'vcomp.StripPlot(horizontal="H", vertical="V", block="block")',
     c("block", "H", "block:H", "V", "block:V", "H:V"), c("block", "block:H", "block:V"), TRUE, "strip-plot"),
  mc("john_alpha", "../john_alpha.csv", "yield", "yield ~ rep + gen + (1|rep:block)", "yield ~ rep + gen + (1|rep:block)",
     c("gen", "rep"), c("rep", "block", "gen"), 'vcomp.Design(fixed="rep + gen", random=["rep:block"])',
     c("rep", "rep:block", "gen"), "rep:block", FALSE, "resolvable alpha lattice (incomplete blocks)"),
  mc("sim_rcbd_unbal", "../sim_rcbd_unbal.csv", "y", "y ~ trt + (1|block)", "y ~ trt + (1|block)", "trt",
     c("block", "trt"), 'vcomp.RCBD(treatment="trt", block="block")', c("block", "trt"), "block", FALSE,
     "RCBD with 4 plots lost"),
  mc("sim_splitsplit_unbal", "../sim_splitsplit_unbal.csv", "y", "y ~ A*B*C + (1|block) + (1|block:A) + (1|block:A:B)",
     "y ~ A*B*C + (1|block) + (1|block:A) + (1|block:A:B)", c("A:B", "C"), c("block", "A", "B", "C"),
     'vcomp.SplitSplitPlot(whole="A", sub="B", subsub="C", block="block")',
     c("block", "A", "block:A", "B", "A:B", "block:A:B", "C", "A:C", "B:C", "A:B:C"),
     c("block", "block:A", "block:A:B"), FALSE, "unbalanced split-split-plot"),
  mc("mm_covariate_factor", "../mm_covariate_factor.csv", "y", "y ~ x + trt + (1|block)", "y ~ x + trt + (1|block)",
     "trt", c("block", "trt"), 'vcomp.Design(fixed="x + trt", random=["block"], covariates=["x"])', c("block", "x", "trt"), "block",
     FALSE, "covariate at its mean (ANCOVA)"),
  mc("mm_transformed_log", "mm_transformed.csv", "y", "y ~ trt * log(x) + (1|block)", "y ~ trt * log(x) + (1|block)",
     "trt", c("block", "trt"), note = "transformed covariate in an interaction: the model matrix at log(mean(x))"),
  mc("mm_transformed_poly", "mm_transformed.csv", "y", "y ~ factor(dose) + trt + x + I(x^2) + z + (1|block)",
     "y ~ C(dose) + trt + x + I(x**2) + z + (1|block)", c("dose", "trt", "dose:trt"), c("block", "trt"),
     note = "numeric factor (factor(dose) / C(dose)), x and x^2 at mean(x), a 0/1 covariate z kept at both values (cov.keep = 2)")
)

# ------------------------------------------------------------------ emmeans -> JSON
lev_list <- function(g, i, facs) setNames(lapply(facs, function(f) as.character(g[[f]][i])), facs)

comparisons <- function(emm, facs, by = NULL) {
  pr <- pairs(emm, by = by)
  cf <- coef(pr); g <- cf[facs]; C <- as.matrix(cf[grep("^c\\.", names(cf))])
  sums <- lapply(ADJ, function(a) as.data.frame(summary(pr, infer = c(TRUE, TRUE), adjust = a)))
  names(sums) <- ADJ
  s0 <- sums$none
  sm <- summary(emm); est <- sm[[attr(sm, "estName")]]
  if (max(abs(drop(t(C) %*% est) - s0$estimate), na.rm = TRUE) > 1e-8 * max(1, abs(est), na.rm = TRUE))
    stop("pair order of coef() and summary() differ")
  pairs <- lapply(seq_len(ncol(C)), function(j) {
    i1 <- which(C[, j] == 1); i2 <- which(C[, j] == -1)
    r <- list(level1 = lev_list(g, i1, facs), level2 = lev_list(g, i2, facs), estimate = s0$estimate[j],
              se = s0$SE[j], df = s0$df[j], t = s0$t.ratio[j],
              p = lapply(sums, function(s) s$p.value[j]),
              lower = lapply(sums[ADJ != "holm"], function(s) s$lower.CL[j]),
              upper = lapply(sums[ADJ != "holm"], function(s) s$upper.CL[j]))
    if (!is.null(by)) r$by <- lev_list(g, i1, by)
    r
  })
  # letters: multcomp::cld (emmeans' insert-absorb via multcompView)
  cl <- as.data.frame(suppressMessages(cld(emm, by = by, adjust = "tukey", alpha = 0.05, Letters = letters)))
  slice_key <- if (is.null(by)) rep("", nrow(cl)) else do.call(paste, c(lapply(by, function(b) as.character(cl[[b]])), sep = "\r"))
  slices <- lapply(unique(slice_key), function(k) {
    rows <- which(slice_key == k)
    chars <- sort(unique(unlist(strsplit(gsub(" ", "", cl$.group[rows]), ""))))
    groups <- lapply(chars, function(ch) lapply(rows[grepl(ch, cl$.group[rows], fixed = TRUE)],
                                                  function(i) lev_list(cl, i, facs)))
    s <- list(groups = groups)
    if (!is.null(by)) s$by <- lev_list(cl, rows[1], by)
    s
  })
  pt <- sums$tukey$p.value
  letters_ref <- list(alpha = 0.05, adjust = "tukey", slices = slices,
                      borderline = any(is.na(pt)) || any(abs(pt - 0.05) < 2e-4))
  kinds <- sapply(pairs, function(p) paste(facs[sapply(facs, function(f) p$level1[[f]] != p$level2[[f]])], collapse = ":"))
  lsdv <- qt(0.975, s0$df) * s0$SE
  sed <- lapply(unique(kinds), function(k) {
    s <- kinds == k
    list(kind = k, min = min(s0$SE[s]), mean = mean(s0$SE[s]), max = max(s0$SE[s]), df = min(s0$df[s]), n = sum(s))
  })
  lsd <- lapply(unique(kinds), function(k) {
    s <- kinds == k
    list(kind = k, min = min(lsdv[s]), mean = mean(lsdv[s]), max = max(lsdv[s]))
  })
  list(pairs = pairs, letters = letters_ref, sed = sed, lsd = lsd)
}

term_block <- function(emm, facs) {
  s <- as.data.frame(summary(emm, infer = c(TRUE, FALSE)))
  en <- attr(summary(emm), "estName")
  tab <- lapply(seq_len(nrow(s)), function(i) list(levels = lev_list(s, i, facs), mean = s[[en]][i], se = s$SE[i],
                                                     df = s$df[i], lower = s$lower.CL[i], upper = s$upper.CL[i]))
  out <- c(list(factors = I(facs), table = tab), comparisons(emm, facs))
  if (length(facs) == 2) out$by <- setNames(lapply(facs, function(b) comparisons(emm, facs, b)), facs)
  out
}

# ------------------------------------------------------------------ classical (independent dense algebra)
classical_emm <- function(cs, d, term) {
  y <- d[[cs$response]]
  tab <- ems_table(cs$terms, cs$random, d, y, type = 3)
  comps <- c(cs$random, "Residual")
  K <- solve(tab$ems[comps, comps, drop = FALSE])
  MS <- tab$MS[comps]; dfs <- tab$df[comps]
  raw <- drop(K %*% MS)
  keep <- if (cs$balanced) rep(TRUE, length(comps)) else raw > 0
  s2 <- ifelse(keep, raw, 0)
  ctr <- list(); for (v in names(d)) if (is.factor(d[[v]])) ctr[[v]] <- "contr.sum"
  f <- terms(as.formula(paste(cs$response, "~", paste(cs$terms, collapse = " + "))), keep.order = TRUE)
  fit <- lm(f, d, contrasts = ctr)
  X <- model.matrix(fit)
  if (qr(X)$rank < ncol(X)) stop(cs$name, ": all-fixed model rank deficient")
  G <- solve(crossprod(X))
  Zs <- lapply(cs$random, function(r) incidence(r, d))
  Vy <- s2[length(comps)] * diag(nrow(d))
  for (j in seq_along(cs$random)) Vy <- Vy + s2[j] * Zs[[j]] %*% t(Zs[[j]])
  Vb <- G %*% t(X) %*% Vy %*% X %*% G
  dffun <- function(k, dfargs) {
    h <- X %*% G %*% k
    a <- c(sapply(Zs, function(Z) sum((t(Z) %*% h)^2)), sum(h^2))
    cc <- drop((a * keep) %*% K)
    v <- sum(cc * MS)
    v^2 / sum((cc * MS)^2 / dfs)
  }
  e <- emmeans(fit, as.formula(paste("~", term)))
  emmobj(e@bhat, Vb, levels = e@levels, linfct = e@linfct, dffun = dffun, dfargs = list())
}

fit_lmer <- function(f, d) lmer(as.formula(f), d, REML = TRUE,
                                control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))

versions <- c(list(R = R.version.string), lapply(setNames(nm = c("lme4", "lmerTest", "pbkrtest", "emmeans", "multcomp",
                                                                   "multcompView", "jsonlite")),
                                                  function(p) as.character(packageVersion(p))))
for (cs in CASES) {
  d <- read.csv(file.path(out_dir, cs$csv), stringsAsFactors = FALSE)
  for (v in cs$factors) d[[v]] <- factor(as.character(d[[v]]), levels = sort(unique(as.character(d[[v]]))))
  m <- fit_lmer(cs$lmer, d)
  out <- list(case = cs$name, csv = basename(cs$csv), csv_dir = dirname(cs$csv), response = cs$response, lmer = cs$lmer,
              vcomp_formula = cs$vcomp, factors = I(cs$factors), note = cs$note, singular = isSingular(m),
              r_versions = versions, means = list())
  for (ddf in c("kenward-roger", "satterthwaite")) {
    out$means[[ddf]] <- list()
    for (term in cs$means) {
      facs <- strsplit(term, ":")[[1]]
      out$means[[ddf]][[term]] <- term_block(emmeans(m, as.formula(paste("~", term)), lmer.df = ddf), facs)
    }
  }
  if (!is.na(cs$builder)) {
    out$builder <- cs$builder
    out$classical_means <- list(balanced = cs$balanced, method = if (cs$balanced) "raw MoM (balanced)" else "truncated MoM",
                                means = list())
    for (term in cs$means) {
      if (!all(strsplit(term, ":")[[1]] %in% cs$factors)) next
      out$classical_means$means[[term]] <- term_block(classical_emm(cs, d, term), strsplit(term, ":")[[1]])
    }
  }
  write_json(out, file.path(out_dir, paste0(cs$name, ".json")), auto_unbox = TRUE, digits = NA, pretty = FALSE,
             null = "null", na = "null")
  cat(cs$name, "ok\n")
}
