# Simulated data sets for the extra reference cases (written as CSV; the data are then fixed facts).
# Adapted from /work/shared/oracle/sims.R.  Usage: LC_ALL=C Rscript sims.R OUT_DIR
args <- commandArgs(TRUE); out <- args[1]
w <- function(d, name) write.csv(d, file.path(out, paste0(name, ".csv")), row.names = FALSE)

here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(here, "mixed_refs.R"))  # create_data(): random slopes as in "Shrinkage in Mixed Effects Models"

# unbalanced split-plots: RCBD whole plots (A, 3 levels), sub-plots (B, 4 levels), 5 blocks (as the oracle)
splitplot <- function(seed, drop_frac = 0, drop_whole = FALSE) {
  set.seed(seed)
  d <- expand.grid(B = paste0("b", 1:4), A = paste0("a", 1:3), block = paste0("r", 1:5), stringsAsFactors = FALSE)
  d <- d[, c("block", "A", "B")]
  blk <- rnorm(5, sd = 2); wp <- rnorm(15, sd = 1.5)
  ea <- c(a1 = 0, a2 = 1, a3 = 2.5); eb <- c(b1 = 0, b2 = .5, b3 = 1, b4 = 3)
  wpi <- (match(d$block, paste0("r", 1:5)) - 1) * 3 + match(d$A, paste0("a", 1:3))
  d$y <- round(20 + blk[match(d$block, paste0("r", 1:5))] + wp[wpi] + ea[d$A] + eb[d$B] + ifelse(d$A == "a3" & d$B == "b4", 2, 0) + rnorm(nrow(d)), 2)
  if (drop_whole) d <- d[!(d$block == "r2" & d$A == "a1"), ]
  if (drop_frac > 0) d <- d[-sample.int(nrow(d), round(nrow(d) * drop_frac)), ]
  d
}
w(splitplot(21, drop_frac = 0.10), "sim_splitplot_drop10")
w(splitplot(22, drop_frac = 0.25), "sim_splitplot_drop25")

# RCBD, 5 treatments in 6 random blocks, 4 plots lost
rcbd <- function(seed) {
  set.seed(seed)
  d <- expand.grid(trt = paste0("t", 1:5), block = paste0("blk", 1:6), stringsAsFactors = FALSE)[, c("block", "trt")]
  blk <- rnorm(6, sd = 1.5); et <- c(t1 = 0, t2 = .8, t3 = 1.1, t4 = -.5, t5 = 2)
  d$y <- round(10 + blk[match(d$block, paste0("blk", 1:6))] + et[d$trt] + rnorm(nrow(d)), 2)
  d[-sample.int(nrow(d), 4), ]
}
w(rcbd(31), "sim_rcbd_unbal")

# 5 x 5 Latin square (cyclic square with rows, columns and letters randomly permuted)
latin <- function(seed) {
  set.seed(seed); k <- 5
  sq <- outer(0:(k - 1), 0:(k - 1), function(i, j) (i + j) %% k)
  sq <- sq[sample(k), sample(k)]
  lab <- sample(LETTERS[1:k])
  d <- expand.grid(col = paste0("c", 1:k), row = paste0("r", 1:k), stringsAsFactors = FALSE)[, c("row", "col")]
  d$trt <- lab[sq[cbind(match(d$row, paste0("r", 1:k)), match(d$col, paste0("c", 1:k)))] + 1]
  er <- rnorm(k, sd = 1.2); ec <- rnorm(k, sd = .8); et <- c(A = 0, B = 1, C = 1.5, D = -.7, E = .4)
  d$y <- round(30 + er[match(d$row, paste0("r", 1:k))] + ec[match(d$col, paste0("c", 1:k))] + et[d$trt] + rnorm(nrow(d), sd = .9), 2)
  d
}
w(latin(41), "sim_latin_square")

# strip-plot (balanced): 4 blocks, horizontal factor H (3 levels) x vertical factor V (4 levels)
strip <- function(seed) {
  set.seed(seed)
  d <- expand.grid(V = paste0("v", 1:4), H = paste0("h", 1:3), block = paste0("s", 1:4), stringsAsFactors = FALSE)[, c("block", "H", "V")]
  bi <- match(d$block, paste0("s", 1:4)); hi <- match(d$H, paste0("h", 1:3)); vi <- match(d$V, paste0("v", 1:4))
  blk <- rnorm(4, sd = 1); bh <- rnorm(12, sd = 1); bv <- rnorm(16, sd = .8)
  d$y <- round(50 + blk[bi] + bh[(bi - 1) * 3 + hi] + bv[(bi - 1) * 4 + vi] + c(0, 1.5, 2.5)[hi] + c(0, .5, 1, 2)[vi] + rnorm(nrow(d), sd = .7), 2)
  d
}
w(strip(51), "sim_strip_plot")

# split-split-plot, 3 blocks, A (3) / B (2) / C (3), 4 sub-sub-plots lost
ssp <- function(seed) {
  set.seed(seed)
  d <- expand.grid(C = paste0("c", 1:3), B = paste0("b", 1:2), A = paste0("a", 1:3), block = paste0("r", 1:3), stringsAsFactors = FALSE)[, c("block", "A", "B", "C")]
  bi <- match(d$block, paste0("r", 1:3)); ai <- match(d$A, paste0("a", 1:3)); bj <- match(d$B, paste0("b", 1:2)); ci <- match(d$C, paste0("c", 1:3))
  blk <- rnorm(3, sd = 1.5); wp <- rnorm(9, sd = 1.2); sp <- rnorm(18, sd = .9)
  wpi <- (bi - 1) * 3 + ai; spi <- (wpi - 1) * 2 + bj
  d$y <- round(40 + blk[bi] + wp[wpi] + sp[spi] + c(0, 1, 2)[ai] + c(0, .8)[bj] + c(0, .5, 1.5)[ci] + rnorm(nrow(d), sd = .8), 2)
  d[-sample.int(nrow(d), 4), ]
}
w(ssp(61), "sim_splitsplit_unbal")

# two-stage nested, unbalanced: 6 batches, 2-4 samples per batch, 1-3 determinations per sample
nested <- function(seed) {
  set.seed(seed)
  ns <- c(2, 3, 4, 2, 3, 4); rows <- list()
  for (b in 1:6) {
    eb <- rnorm(1, sd = 2)
    for (s in 1:ns[b]) {
      es <- rnorm(1, sd = 1); nr <- sample(1:3, 1)
      rows[[length(rows) + 1]] <- data.frame(batch = sprintf("B%d", b), sample = sprintf("s%d", s),
                                             y = round(60 + eb + es + rnorm(nr, sd = .6), 2))
    }
  }
  do.call(rbind, rows)
}
w(nested(71), "sim_nested_unbal")
# two-stage nested, same number of bags per lot, unequal determinations (1-4) per bag
nested2 <- function(seed) {
  set.seed(seed); rows <- list()
  for (l in 1:5) {
    el <- rnorm(1, sd = 1.2)
    for (b in 1:3) {
      nr <- sample(1:4, 1)
      rows[[length(rows) + 1]] <- data.frame(lot = sprintf("L%d", l), bag = sprintf("bag%d", b),
                                             y = round(100 + el + rnorm(1, sd = .9) + rnorm(nr, sd = .7), 2))
    }
  }
  do.call(rbind, rows)
}
w(nested2(72), "sim_nested_unbal_reps")

# completely randomized 3 x 2 factorial, unequal replication (2-5 per cell); no random term
crd <- function(seed) {
  set.seed(seed)
  reps <- c(2, 3, 5, 4, 2, 3); cells <- expand.grid(B = c("lo", "hi"), A = c("x1", "x2", "x3"), stringsAsFactors = FALSE)
  d <- cells[rep(seq_len(nrow(cells)), reps), c("A", "B")]
  ea <- c(x1 = 0, x2 = 1.2, x3 = 2); eb <- c(lo = 0, hi = .9)
  d$y <- round(12 + ea[d$A] + eb[d$B] + ifelse(d$A == "x3" & d$B == "hi", 1.5, 0) + rnorm(nrow(d), sd = .8), 2)
  d[sample(nrow(d)), ]
}
w(crd(81), "sim_crd_factorial")

# ---- mixed-model-only cases ----
w(create_data(obs_per_cluster = 8, n_cluster = 30, sd_int = .6, sd_slope = .4, seed = 101), "mm_uncorr_slopes")

# slope-only random effect (0 + x | g)
zs <- function(seed) {
  set.seed(seed); ng <- 25; nper <- 6
  g <- rep(1:ng, each = nper); x <- round(runif(ng * nper, 0, 10), 2); b <- rnorm(ng, sd = .3)
  data.frame(y = round(5 + (.8 + b[g]) * x + rnorm(ng * nper, sd = 1), 3), x = x, g = sprintf("g%02d", g))
}
w(zs(111), "mm_slope_only")

# nested shorthand (1|farm/field): 6 farms, 3 fields each (labels f1..f3 reused), 2 treatments x 2 plots
farm <- function(seed) {
  set.seed(seed)
  d <- expand.grid(rep = 1:2, trt = c("ctl", "fert"), field = paste0("f", 1:3), farm = sprintf("farm%d", 1:6), stringsAsFactors = FALSE)
  fi <- match(d$farm, sprintf("farm%d", 1:6)); fj <- (fi - 1) * 3 + match(d$field, paste0("f", 1:3))
  d$y <- round(8 + rnorm(6, sd = 1.5)[fi] + rnorm(18, sd = .8)[fj] + ifelse(d$trt == "fert", 1.1, 0) + rnorm(nrow(d), sd = .6), 2)
  d <- d[, c("farm", "field", "trt", "y")]
  d[-sample.int(nrow(d), 6), ]
}
w(farm(121), "mm_nested_shorthand")

# crossed random effects (1|plate) + (1|sample), Penicillin-like, 8 cells missing
crossed <- function(seed) {
  set.seed(seed)
  d <- expand.grid(sample = LETTERS[1:6], plate = sprintf("p%02d", 1:16), stringsAsFactors = FALSE)[, c("plate", "sample")]
  d$diameter <- round(23 + rnorm(16, sd = .85)[match(d$plate, sprintf("p%02d", 1:16))] +
                      rnorm(6, sd = 1.9)[match(d$sample, LETTERS[1:6])] + rnorm(nrow(d), sd = .55), 2)
  d[-sample.int(nrow(d), 8), ]
}
w(crossed(131), "mm_crossed")

# numeric covariate and a factor in the fixed part, random blocks
covf <- function(seed) {
  set.seed(seed)
  d <- expand.grid(rep = 1:2, trt = c("A", "B", "C"), block = sprintf("k%d", 1:8), stringsAsFactors = FALSE)
  d$x <- round(rnorm(nrow(d), 20, 4), 1)
  d$y <- round(3 + .25 * d$x + c(A = 0, B = .7, C = -.4)[d$trt] + rnorm(8, sd = .9)[match(d$block, sprintf("k%d", 1:8))] + rnorm(nrow(d), sd = .7), 3)
  d[, c("block", "trt", "x", "y")]
}
w(covf(141), "mm_covariate_factor")

# unbalanced random slopes (half the rows dropped at random), correlated intercept/slope
w(create_data(obs_per_cluster = 10, n_cluster = 40, sd_int = .5, sd_slope = .3, cor = .05, balanced = .5, seed = 151), "mm_unbal_slopes")

# boundary fit: no block variance at all, the REML estimate is 0 (singular)
bnd <- function(seed) {
  set.seed(seed)
  d <- expand.grid(rep = 1:2, trt = c("t1", "t2", "t3"), block = sprintf("b%d", 1:5), stringsAsFactors = FALSE)
  d$y <- round(10 + c(t1 = 0, t2 = .6, t3 = 1.3)[d$trt] + rnorm(nrow(d), sd = 1), 2)
  d[, c("block", "trt", "y")]
}
w(bnd(161), "mm_boundary")
