# Stress reference cases: many small random data sets over the acceptance structures, each written as
# <name>.csv + <name>.json in the layout of tests/reference/*.json (the JSON part is generate.R's loop body).
# Usage (from tests/reference/stress):  LC_ALL=C Rscript stress.R [OUT_DIR] [NAME_REGEX]
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest); library(jsonlite); library(car)})
args <- commandArgs(TRUE)
out_dir <- if (length(args) >= 1) args[1] else "."
only <- if (length(args) >= 2) args[2] else ""
here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)))
ref <- file.path(here, "..")
source(file.path(ref, "ems.R")); source(file.path(ref, "classical.R")); source(file.path(ref, "mixed_refs.R"))
invisible(Sys.setlocale("LC_COLLATE", "C"))

versions <- c(list(R = R.version.string),
              lapply(setNames(nm = c("lme4", "lmerTest", "pbkrtest", "Matrix", "car", "jsonlite", "mvtnorm")),
                     function(p) as.character(packageVersion(p))))

# ------------------------------------------------------------------ data generators
lv <- function(prefix, k) if (is.na(prefix)) as.character(seq_len(k)) else paste0(prefix, seq_len(k))
drop_rows <- function(d, frac) if (frac > 0) d[-sample.int(nrow(d), round(nrow(d) * frac)), ] else d
eff <- function(k, size) c(0, round(rnorm(k - 1, sd = size), 2))

splitplot <- function(seed, nblk = 4, na = 3, nb = 3, sd_blk = 1, sd_wp = 1, sd_e = 1, size = 1,
                      drop = 0, drop_whole = 0, blk_prefix = "r") {
  set.seed(seed)
  d <- expand.grid(B = lv("b", nb), A = lv("a", na), block = lv(blk_prefix, nblk), stringsAsFactors = FALSE)[, c("block", "A", "B")]
  bi <- match(d$block, lv(blk_prefix, nblk)); ai <- match(d$A, lv("a", na)); bj <- match(d$B, lv("b", nb))
  wp <- rnorm(nblk * na, sd = sd_wp)
  d$y <- round(20 + rnorm(nblk, sd = sd_blk)[bi] + wp[(bi - 1) * na + ai] + eff(na, size)[ai] + eff(nb, size)[bj] +
               eff(na * nb, size / 2)[(ai - 1) * nb + bj] + rnorm(nrow(d), sd = sd_e), 3)
  if (drop_whole > 0) {
    wps <- unique(d[, c("block", "A")]); gone <- wps[sample.int(nrow(wps), drop_whole), ]
    d <- d[!(paste(d$block, d$A) %in% paste(gone$block, gone$A)), ]
  }
  drop_rows(d, drop)
}

splitsplit <- function(seed, nblk = 3, na = 2, nb = 2, nc = 3, sds = c(1, 1, 1, 1), size = 1, drop = 0) {
  set.seed(seed)
  d <- expand.grid(C = lv("c", nc), B = lv("b", nb), A = lv("a", na), block = lv("r", nblk), stringsAsFactors = FALSE)[, c("block", "A", "B", "C")]
  bi <- match(d$block, lv("r", nblk)); ai <- match(d$A, lv("a", na)); bj <- match(d$B, lv("b", nb)); ci <- match(d$C, lv("c", nc))
  wpi <- (bi - 1) * na + ai; spi <- (wpi - 1) * nb + bj
  d$y <- round(40 + rnorm(nblk, sd = sds[1])[bi] + rnorm(nblk * na, sd = sds[2])[wpi] + rnorm(nblk * na * nb, sd = sds[3])[spi] +
               eff(na, size)[ai] + eff(nb, size)[bj] + eff(nc, size)[ci] + rnorm(nrow(d), sd = sds[4]), 3)
  drop_rows(d, drop)
}

strip <- function(seed, nblk = 3, nh = 3, nv = 3, sds = c(1, 1, 1, 1), size = 1, drop = 0) {
  set.seed(seed)
  d <- expand.grid(V = lv("v", nv), H = lv("h", nh), block = lv("s", nblk), stringsAsFactors = FALSE)[, c("block", "H", "V")]
  bi <- match(d$block, lv("s", nblk)); hi <- match(d$H, lv("h", nh)); vi <- match(d$V, lv("v", nv))
  d$y <- round(50 + rnorm(nblk, sd = sds[1])[bi] + rnorm(nblk * nh, sd = sds[2])[(bi - 1) * nh + hi] +
               rnorm(nblk * nv, sd = sds[3])[(bi - 1) * nv + vi] + eff(nh, size)[hi] + eff(nv, size)[vi] +
               rnorm(nrow(d), sd = sds[4]), 3)
  drop_rows(d, drop)
}

rcbd <- function(seed, nt = 4, nb = 5, sd_blk = 1, sd_e = 1, size = 1, drop = 0, int_codes = FALSE) {
  set.seed(seed)
  tl <- if (int_codes) lv(NA, nt) else lv("t", nt); bl <- if (int_codes) lv(NA, nb) else lv("blk", nb)
  d <- expand.grid(trt = tl, block = bl, stringsAsFactors = FALSE)[, c("block", "trt")]
  d$y <- round(10 + rnorm(nb, sd = sd_blk)[match(d$block, bl)] + eff(nt, size)[match(d$trt, tl)] + rnorm(nrow(d), sd = sd_e), 3)
  d <- drop_rows(d, drop)
  if (int_codes) { d$block <- as.integer(d$block); d$trt <- as.integer(d$trt) }
  d
}

latin <- function(seed, k = 4, sd_row = 1, sd_col = 1, sd_e = 1, size = 1) {
  set.seed(seed)
  sq <- outer(0:(k - 1), 0:(k - 1), function(i, j) (i + j) %% k)[sample(k), sample(k)]
  lab <- sample(LETTERS[1:k])
  d <- expand.grid(col = lv("c", k), row = lv("r", k), stringsAsFactors = FALSE)[, c("row", "col")]
  ri <- match(d$row, lv("r", k)); ci <- match(d$col, lv("c", k))
  d$trt <- lab[sq[cbind(ri, ci)] + 1]
  d$y <- round(30 + rnorm(k, sd = sd_row)[ri] + rnorm(k, sd = sd_col)[ci] + eff(k, size)[match(d$trt, LETTERS[1:k])] +
               rnorm(nrow(d), sd = sd_e), 3)
  d
}

# nested random: counts per level sampled from the given ranges (stage 2 and replicates)
nested <- function(seed, na = 5, nb = 2:3, nc = NULL, nr = 1:3, sds = c(1, 1, 1), three = FALSE) {
  set.seed(seed); rows <- list()
  pick <- function(r) if (length(r) == 1) r else sample(r, 1)
  for (a in seq_len(na)) {
    ea <- rnorm(1, sd = sds[1])
    for (b in seq_len(pick(nb))) {
      eb <- rnorm(1, sd = sds[2])
      if (three) {
        for (cc in seq_len(pick(nc))) {
          ec <- rnorm(1, sd = sds[3]); k <- pick(nr)
          rows[[length(rows) + 1]] <- data.frame(a = paste0("A", a), b = paste0("b", b), c = paste0("c", cc),
                                                 y = round(60 + ea + eb + ec + rnorm(k, sd = sds[4]), 3))
        }
      } else {
        k <- pick(nr)
        rows[[length(rows) + 1]] <- data.frame(a = paste0("A", a), b = paste0("b", b),
                                               y = round(60 + ea + eb + rnorm(k, sd = sds[3]), 3))
      }
    }
  }
  do.call(rbind, rows)
}

workers <- function(seed, nw = 5, nm = 3, reps = 2:3, sd_w = 2, sd_wm = 1, sd_e = 1, size = 2, drop = 0) {
  set.seed(seed); rows <- list()
  em <- eff(nm, size); ew <- rnorm(nw, sd = sd_w)
  for (w in seq_len(nw)) for (m in seq_len(nm)) {
    k <- if (length(reps) == 1) reps else sample(reps, 1); e <- rnorm(1, sd = sd_wm)
    rows[[length(rows) + 1]] <- data.frame(worker = paste0("W", w), machine = LETTERS[m],
                                           score = round(50 + ew[w] + em[m] + e + rnorm(k, sd = sd_e), 3))
  }
  drop_rows(do.call(rbind, rows), drop)
}

# alpha-lattice: nrep replicates, s blocks of size k per replicate, g = s * k genotypes
alpha <- function(seed, nrep = 2, s = 3, k = 4, sd_rep = 1, sd_blk = 1, sd_e = 1, size = 1, drop = 0) {
  set.seed(seed); g <- s * k; rows <- list()
  eg <- eff(g, size)
  for (r in seq_len(nrep)) {
    perm <- sample(g); er <- rnorm(1, sd = sd_rep)
    for (b in seq_len(s)) {
      eb <- rnorm(1, sd = sd_blk); gs <- perm[((b - 1) * k + 1):(b * k)]
      rows[[length(rows) + 1]] <- data.frame(rep = paste0("R", r), block = paste0("B", b), gen = sprintf("G%02d", gs),
                                             yield = round(5 + er + eb + eg[gs] + rnorm(k, sd = sd_e), 4))
    }
  }
  drop_rows(do.call(rbind, rows), drop)
}

twoway <- function(seed, na = 3, nb = 3, reps = 1:4, sd_b = 1, sd_ab = 1, sd_e = 1, size = 2) {
  set.seed(seed); rows <- list(); ea <- eff(na, size); eb <- rnorm(nb, sd = sd_b)
  for (i in seq_len(na)) for (j in seq_len(nb)) {
    k <- if (length(reps) == 1) reps else sample(reps, 1)
    rows[[length(rows) + 1]] <- data.frame(a = paste0("a", i), b = paste0("b", j),
                                           y = round(100 + ea[i] + eb[j] + rnorm(1, sd = sd_ab) + rnorm(k, sd = sd_e), 3))
  }
  do.call(rbind, rows)
}

slope_only <- function(seed, ng = 15, nper = 5, sd_slope = .3, sd_e = 1) {
  set.seed(seed)
  g <- rep(1:ng, each = nper); x <- round(runif(ng * nper, 0, 10), 2); b <- rnorm(ng, sd = sd_slope)
  data.frame(y = round(5 + (.8 + b[g]) * x + rnorm(ng * nper, sd = sd_e), 4), x = x, g = sprintf("g%02d", g))
}

farm <- function(seed, nfarm = 5, nfield = 3, reps = 2, sd_farm = 1.5, sd_field = .8, sd_e = .6, drop = 0) {
  set.seed(seed)
  d <- expand.grid(rep = 1:reps, trt = c("ctl", "fert"), field = lv("f", nfield), farm = sprintf("farm%d", 1:nfarm), stringsAsFactors = FALSE)
  fi <- match(d$farm, sprintf("farm%d", 1:nfarm)); fj <- (fi - 1) * nfield + match(d$field, lv("f", nfield))
  d$y <- round(8 + rnorm(nfarm, sd = sd_farm)[fi] + rnorm(nfarm * nfield, sd = sd_field)[fj] + ifelse(d$trt == "fert", 1.1, 0) +
               rnorm(nrow(d), sd = sd_e), 3)
  drop_rows(d[, c("farm", "field", "trt", "y")], drop)
}

crossed <- function(seed, np = 8, ns = 4, sd_p = .8, sd_s = 1.5, sd_e = .5, drop = 0) {
  set.seed(seed)
  d <- expand.grid(sample = LETTERS[1:ns], plate = sprintf("p%02d", 1:np), stringsAsFactors = FALSE)[, c("plate", "sample")]
  d$diameter <- round(23 + rnorm(np, sd = sd_p)[match(d$plate, sprintf("p%02d", 1:np))] +
                      rnorm(ns, sd = sd_s)[match(d$sample, LETTERS[1:ns])] + rnorm(nrow(d), sd = sd_e), 3)
  drop_rows(d, drop)
}

# ------------------------------------------------------------------ cases
CASES <- list(); DATA <- list()
add <- function(name, d, response, terms, fixed, random, builder, lmer, note, factors = character(0)) {
  CASES[[length(CASES) + 1]] <<- list(name = name, csv = name, response = response, terms = terms, fixed = fixed,
                                      random = random, builder = builder, lmer = lmer, set = "stress", note = note,
                                      factors = factors)
  DATA[[name]] <<- d
}
SP <- c("block", "A", "block:A", "B", "A:B")
sp_case <- function(.nm, .note, ...) add(.nm, splitplot(...), "y", SP, c("A", "B", "A:B"), c("block", "block:A"),
  'vcomp.SplitPlot(whole="A", sub="B", block="block")', "y ~ A*B + (1|block) + (1|block:A)", .note)
sp_case("sp_bal_1", "balanced split-plot", seed = 1001)
sp_case("sp_bal_2", "balanced, 2 blocks, tiny", seed = 1002, nblk = 2, na = 2, nb = 2)
sp_case("sp_bal_nowp", "whole-plot variance exactly 0", seed = 1003, sd_wp = 0)
sp_case("sp_bal_noblk", "block variance exactly 0", seed = 1004, sd_blk = 0, nblk = 3)
sp_case("sp_bal_big", "large components, small residual", seed = 1005, sd_blk = 5, sd_wp = 3, sd_e = .2, nblk = 6, na = 4, nb = 4)
sp_case("sp_drop10", "10% lost", seed = 1006, drop = .1, nblk = 5)
sp_case("sp_drop30", "30% lost", seed = 1007, drop = .3, nblk = 5, nb = 4)
sp_case("sp_drop40_small", "40% lost, tiny", seed = 1008, drop = .4, nblk = 3, na = 2, nb = 3)
sp_case("sp_misswhole_1", "one whole plot missing", seed = 1009, drop_whole = 1)
sp_case("sp_misswhole_2", "two whole plots missing + 10% sub-plots", seed = 1010, drop_whole = 2, drop = .1, nblk = 5)
sp_case("sp_intblocks", "integer block codes 1..11 (level sorting)", seed = 1011, nblk = 11, na = 2, nb = 2, blk_prefix = NA, drop = .1)
sp_case("sp_nearzero_wp", "whole-plot sd 0.05", seed = 1012, sd_wp = .05, drop = .15)
sp_case("sp_nulleff", "no treatment effects", seed = 1013, size = 0, drop = .2)
SSP <- c("block", "A", "block:A", "B", "A:B", "block:A:B", "C", "A:C", "B:C", "A:B:C")
ssp_case <- function(.nm, .note, ...) add(.nm, splitsplit(...), "y", SSP, c("A", "B", "A:B", "C", "A:C", "B:C", "A:B:C"),
  c("block", "block:A", "block:A:B"), 'vcomp.SplitSplitPlot(whole="A", sub="B", subsub="C", block="block")',
  "y ~ A*B*C + (1|block) + (1|block:A) + (1|block:A:B)", .note)
ssp_case("ssp_bal", "balanced split-split-plot", seed = 2001)
ssp_case("ssp_drop", "split-split-plot, 15% lost", seed = 2002, drop = .15, na = 3)
ssp_case("ssp_zero_sp", "sub-plot variance 0, 10% lost", seed = 2003, sds = c(1, 1, 0, 1), drop = .1)
ssp_case("ssp_zero_all", "all random variances 0", seed = 2004, sds = c(0, 0, 0, 1), nblk = 2)
STR <- c("block", "H", "block:H", "V", "block:V", "H:V")
str_case <- function(.nm, .note, ...) add(.nm, strip(...), "y", STR, c("H", "V", "H:V"), c("block", "block:H", "block:V"),
  'vcomp.StripPlot(horizontal="H", vertical="V", block="block")', "y ~ H*V + (1|block) + (1|block:H) + (1|block:V)", .note)
str_case("strip_bal", "balanced strip-plot", seed = 3001)
str_case("strip_drop", "strip-plot, 15% lost", seed = 3002, drop = .15, nblk = 4)
str_case("strip_zero_h", "block:H variance 0", seed = 3003, sds = c(1, 0, 1, 1))
str_case("strip_small", "2 blocks, 2 x 3", seed = 3004, nblk = 2, nh = 2, nv = 3)
rc_case <- function(.nm, .note, ...) add(.nm, rcbd(...), "y", c("block", "trt"), "trt", "block",
  'vcomp.RCBD(treatment="trt", block="block")', "y ~ trt + (1|block)", .note)
rc_case("rcbd_bal", "balanced RCBD", seed = 4001)
rc_case("rcbd_drop", "RCBD, 20% lost", seed = 4002, drop = .2, nb = 6)
rc_case("rcbd_zero", "block variance 0 (negative MoM likely)", seed = 4003, sd_blk = 0)
rc_case("rcbd_int", "integer-coded block and treatment (10 blocks, level sorting)", seed = 4004, nb = 10, nt = 3, int_codes = TRUE, drop = .1)
rc_case("rcbd_tiny", "2 blocks x 3 treatments", seed = 4005, nb = 2, nt = 3)
rc_case("rcbd_bigblk", "block sd 10, residual 0.3", seed = 4006, sd_blk = 10, sd_e = .3, nb = 4)
rc_case("rcbd_nearzero", "block sd 0.1", seed = 4007, sd_blk = .1, nb = 8, drop = .1)
ls_case <- function(.nm, .note, ...) add(.nm, latin(...), "y", c("row", "col", "trt"), "trt", c("row", "col"),
  'vcomp.LatinSquare(treatment="trt", row="row", col="col")', "y ~ trt + (1|row) + (1|col)", .note)
ls_case("latin_4", "4 x 4 Latin square", seed = 5001)
ls_case("latin_5_zero_col", "5 x 5, column variance 0", seed = 5002, k = 5, sd_col = 0)
ls_case("latin_6", "6 x 6", seed = 5003, k = 6, sd_row = 2, sd_col = .3)
ls_case("latin_3", "3 x 3 (tiny)", seed = 5004, k = 3)
n2_case <- function(.nm, .note, ...) add(.nm, nested(...), "y", c("a", "a:b"), character(0), c("a", "a:b"),
  'vcomp.Nested(["a", "b"])', "y ~ 1 + (1|a) + (1|a:b)", .note)
n2_case("nest2_bal", "2-stage nested, balanced", seed = 6001, nb = 3, nr = 2)
n2_case("nest2_unbal", "2-stage nested, unbalanced", seed = 6002, na = 6, nb = 2:4, nr = 1:3)
n2_case("nest2_zero_b", "2-stage nested, b variance 0", seed = 6003, sds = c(1, 0, 1), nb = 2:3, nr = 2:3)
n2_case("nest2_zero_a", "2-stage nested, a variance 0", seed = 6004, sds = c(0, 1, 1), nb = 3, nr = 1:3)
n2_case("nest2_tiny", "3 lots, 2 bags, 2 dets", seed = 6005, na = 3, nb = 2, nr = 2)
n3_case <- function(.nm, .note, ...) add(.nm, nested(..., three = TRUE), "y", c("a", "a:b", "a:b:c"), character(0),
  c("a", "a:b", "a:b:c"), 'vcomp.Nested(["a", "b", "c"])', "y ~ 1 + (1|a) + (1|a:b) + (1|a:b:c)", .note)
n3_case("nest3_bal", "3-stage nested, balanced", seed = 6101, na = 4, nb = 2, nc = 2, nr = 2, sds = c(1, 1, 1, 1))
n3_case("nest3_unbal", "3-stage nested, unbalanced", seed = 6102, na = 5, nb = 1:3, nc = 1:3, nr = 1:3, sds = c(2, 1, .5, .5))
n3_case("nest3_zero_mid", "3-stage nested, middle variance 0", seed = 6103, na = 4, nb = 2:3, nc = 2, nr = 1:2, sds = c(1, 0, 1, 1))
wm_case <- function(.nm, .note, ...) add(.nm, workers(...), "score", c("worker", "machine", "worker:machine"), "machine",
  c("worker", "worker:machine"), 'vcomp.Design(fixed="machine", random=["worker", "worker:machine"])',
  "score ~ machine + (1|worker) + (1|worker:machine)", .note)
wm_case("wm_bal", "random worker x fixed machine, 3 reps", seed = 7001, reps = 3)
wm_case("wm_unbal", "unequal reps 1-4", seed = 7002, reps = 1:4, nw = 6)
wm_case("wm_zero_int", "interaction variance 0", seed = 7003, sd_wm = 0, reps = 2:3)
wm_case("wm_drop", "25% lost", seed = 7004, drop = .25, nw = 4, reps = 3)
al_case <- function(.nm, .note, ...) add(.nm, alpha(...), "yield", c("rep", "rep:block", "gen"), c("rep", "gen"), "rep:block",
  'vcomp.Design(fixed="rep + gen", random=["rep:block"])', "yield ~ rep + gen + (1|rep:block)", .note)
al_case("alpha_2x3x4", "alpha-lattice 2 reps, 3 blocks of 4", seed = 8001)
al_case("alpha_3x4x3", "3 reps, 4 blocks of 3", seed = 8002, nrep = 3, s = 4, k = 3, sd_blk = .5)
al_case("alpha_zero", "block variance 0", seed = 8003, nrep = 3, sd_blk = 0)
al_case("alpha_drop", "3 reps, 10% lost", seed = 8004, nrep = 3, s = 4, k = 4, drop = .1)
tw_case <- function(.nm, .note, ...) add(.nm, twoway(...), "y", c("a", "b", "a:b"), "a", c("b", "a:b"),
  'vcomp.Design(fixed="a", random=["b", "a:b"])', "y ~ a + (1|b) + (1|a:b)", .note)
tw_case("twoway_1", "unbalanced two-way, synthesized denominator", seed = 9001)
tw_case("twoway_2", "4 x 3, reps 1-3", seed = 9002, na = 4, nb = 3, reps = 1:3)
tw_case("twoway_zero_ab", "a:b variance 0", seed = 9003, sd_ab = 0, reps = 2:4)
tw_case("twoway_zero_b", "b variance 0", seed = 9004, sd_b = 0, nb = 4)
rs_case <- function(.nm, .note, form = "y ~ x + (x|cluster)", ...) add(.nm, create_data(...), "y", character(0), character(0),
  character(0), NA, form, .note, factors = "cluster")
rs_case("rs_few_obs", "3 obs per cluster, 60 clusters", obs_per_cluster = 3, n_cluster = 60, seed = 10001)
rs_case("rs_base", "10 obs, 40 clusters", obs_per_cluster = 10, n_cluster = 40, seed = 10002)
rs_case("rs_many_obs", "100 obs, 8 clusters", obs_per_cluster = 100, n_cluster = 8, seed = 10003, sd_int = 1, sd_slope = .5)
rs_case("rs_unbal", "balanced = .5", obs_per_cluster = 8, n_cluster = 50, balanced = .5, seed = 10004, cor = .05)
rs_case("rs_cor_pos", "correlated (cov .2, cor .8)", obs_per_cluster = 6, n_cluster = 40, sd_int = .5, sd_slope = .5, cor = .2, seed = 10005)
rs_case("rs_cor_neg", "correlated negative", obs_per_cluster = 5, n_cluster = 50, sd_int = .8, sd_slope = .4, cor = -.25, seed = 10006)
rs_case("rs_zero_slope", "slope sd 0 (boundary)", obs_per_cluster = 6, n_cluster = 40, sd_slope = 0, seed = 10007)
rs_case("rs_tiny_slope", "slope sd .05", obs_per_cluster = 10, n_cluster = 30, sd_slope = .05, seed = 10008)
rs_case("rs_zero_int", "intercept sd 0", obs_per_cluster = 5, n_cluster = 40, sd_int = 0, sd_slope = .4, seed = 10009)
rs_case("rs_unbal_few", "5 obs, balanced = .5", obs_per_cluster = 5, n_cluster = 80, balanced = .5, seed = 10010)
rs_case("rs_big_sigma", "sigma 3", obs_per_cluster = 20, n_cluster = 20, sigma = 3, seed = 10011)
rs_case("rs_uncorr", "(x||cluster)", form = "y ~ x + (x||cluster)", obs_per_cluster = 8, n_cluster = 30, sd_int = .6, sd_slope = .4, seed = 10012)
rs_case("rs_uncorr_zero", "(x||cluster) slope variance 0", form = "y ~ x + (x||cluster)", obs_per_cluster = 5, n_cluster = 40, sd_slope = 0, seed = 10013)
add("so_1", slope_only(11001), "y", character(0), character(0), character(0), NA, "y ~ x + (0 + x|g)", "(0+x|g)", factors = "g")
add("so_zero", slope_only(11002, sd_slope = 0, ng = 12, nper = 4), "y", character(0), character(0), character(0), NA,
    "y ~ x + (0 + x|g)", "(0+x|g), slope variance 0", factors = "g")
add("farm_1", farm(12001, drop = .1), "y", character(0), character(0), character(0), NA, "y ~ trt + (1|farm/field)",
    "(1|farm/field)", factors = c("farm", "field", "trt"))
add("farm_zero_field", farm(12002, sd_field = 0, nfarm = 4), "y", character(0), character(0), character(0), NA,
    "y ~ trt + (1|farm/field)", "(1|farm/field), field variance 0", factors = c("farm", "field", "trt"))
add("farm_small", farm(12003, nfarm = 3, nfield = 2, reps = 1, drop = .1), "y", character(0), character(0), character(0), NA,
    "y ~ trt + (1|farm/field)", "(1|farm/field), tiny", factors = c("farm", "field", "trt"))
add("crossed_1", crossed(13001, drop = .1), "diameter", character(0), character(0), character(0), NA,
    "diameter ~ 1 + (1|plate) + (1|sample)", "crossed", factors = c("plate", "sample"))
add("crossed_zero", crossed(13002, sd_p = 0, np = 6, ns = 5), "diameter", character(0), character(0), character(0), NA,
    "diameter ~ 1 + (1|plate) + (1|sample)", "crossed, plate variance 0", factors = c("plate", "sample"))
add("crossed_big", crossed(13003, np = 20, ns = 6, drop = .3), "diameter", character(0), character(0), character(0), NA,
    "diameter ~ 1 + (1|plate) + (1|sample)", "crossed, 30% missing", factors = c("plate", "sample"))

# random draws of the exploratory sweep (same RNG stream as the sweep that found the optimizer's boundary
# trap): obs 3..100, up to 1000 rows, zero / tiny components; only the listed draws are kept as cases
set.seed(2024)
for (i in 1:115) {
  obs <- sample(c(3, 4, 5, 6, 8, 10, 20, 50, 100), 1); nc <- max(5, min(100, floor(1000 / obs)))
  nc <- sample(5:nc, 1)
  si <- sample(c(0, .05, .2, .5, 1), 1); ss <- sample(c(0, .02, .1, .25, .5), 1)
  cr <- sample(c(0, .5, -.5, .9), 1) * si * ss
  bal <- sample(c(1, .5), 1)
  form <- sample(c("y ~ x + (x|cluster)", "y ~ x + (x|cluster)", "y ~ x + (x||cluster)", "y ~ x + (0 + x|cluster)"), 1)
  d <- create_data(obs, nc, sd_int = si, sd_slope = ss, cor = cr, balanced = bal, seed = 5000 + i)  # reseeds
  if (i %in% c(45, 57, 66, 107, 113, 115))
    add(sprintf("sweep_%03d", i), d,
        "y", character(0), character(0), character(0), NA, form,
        sprintf("sweep draw %d: %d obs x %d clusters, sd_int %g, sd_slope %g, cov %g, balanced %g", i, obs, nc, si, ss, cr, bal),
        factors = "cluster")
}

# ------------------------------------------------------------------ references (generate.R's loop body)
make_ref <- function(cs) {
  write.csv(DATA[[cs$name]], file.path(out_dir, paste0(cs$csv, ".csv")), row.names = FALSE)
  d <- read.csv(file.path(out_dir, paste0(cs$csv, ".csv")), stringsAsFactors = FALSE)
  facs <- unique(c(unlist(strsplit(c(cs$terms), ":")), cs$factors, if (isTRUE(grepl("cluster", cs$lmer))) "cluster"))
  for (v in facs) d[[v]] <- factor(as.character(d[[v]]), levels = sort(unique(as.character(d[[v]]))))
  out <- cs; out$nobs <- nrow(d); out$r_versions <- versions
  out$terms <- I(cs$terms); out$fixed <- I(cs$fixed); out$random <- I(cs$random); out$factors <- I(cs$factors)
  if (is.na(cs$builder)) out$builder <- NULL
  if (length(cs$terms) > 0) {
    out$classical <- list(type1 = classical(cs, d, 1), type2 = classical(cs, d, 2), type3 = classical(cs, d, 3))
  }
  out <- add_mixed_refs(out, cs$lmer, d, with_theta = TRUE)
  write_json(out, file.path(out_dir, paste0(cs$name, ".json")), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null")  # as the oracle: NaN -> "NaN"
}

dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
for (cs in CASES) {
  if (nzchar(only) && !grepl(only, cs$name)) next
  t0 <- proc.time()[["elapsed"]]
  res <- tryCatch({ make_ref(cs); "ok" }, error = function(e) paste("ERROR:", conditionMessage(e)))
  cat(sprintf("%-18s %4d rows %5.1fs %s\n", cs$name, nrow(DATA[[cs$name]]), proc.time()[["elapsed"]] - t0, res))
}
