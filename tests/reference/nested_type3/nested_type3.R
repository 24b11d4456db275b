# SAS type III for designs that are rank deficient only through unequal nesting.
# Run from this folder:  LC_ALL=C Rscript nested_type3.R
# Writes the simulated data (CSV) and nested_type3.json: type III SS from car::Anova(lm, type = 3)
# with explicit within-outer-level sum contrasts for nested terms (sum contrasts elsewhere), and the
# outer factor's SS from the cell-means hypothesis "equal unweighted (hierarchical) means".
suppressPackageStartupMessages(library(car))
options(contrasts = c("contr.sum", "contr.poly"))

within <- function(outer, inner) {
  # columns: sum contrasts of `inner` within each level of `outer` (levels present only)
  outer <- factor(outer); cols <- list()
  for (g in levels(outer)) {
    idx <- outer == g; lv <- sort(unique(as.character(inner[idx]))); k <- length(lv)
    if (k < 2) next
    C <- contr.sum(k); M <- matrix(0, length(inner), k - 1)
    M[idx, ] <- C[match(as.character(inner[idx]), lv), , drop = FALSE]
    cols[[g]] <- M
  }
  do.call(cbind, cols)
}

cellmean_ss <- function(y, cell, Lcell) {
  # SS of L m = 0, m = cell means (cells in order of levels(cell)), D = diag(counts)
  m <- tapply(y, cell, mean); n <- tapply(y, cell, length)
  Lm <- Lcell %*% m; S <- Lcell %*% diag(1 / n, length(n)) %*% t(Lcell)
  as.numeric(t(Lm) %*% solve(S, Lm))
}

outer_L <- function(cells, outer_of_cell, weight) {
  # rows: (mean_g - mean_last) of weighted cell means, weight = within-outer weights summing to 1
  g <- factor(outer_of_cell); G <- levels(g); W <- matrix(0, length(G), length(cells))
  for (i in seq_along(G)) W[i, g == G[i]] <- weight[g == G[i]]
  W[-length(G), , drop = FALSE] - matrix(W[length(G), ], length(G) - 1, length(cells), byrow = TRUE)
}

out <- list()

## 2-stage nested, 2-4 samples per batch, 1-3 determinations (labels reused across batches)
set.seed(11)
rows <- list()
for (b in 1:6) { ns <- sample(2:4, 1); eb <- rnorm(1, 0, 2)
  for (s in 1:ns) { es <- rnorm(1, 0, 1.2); r <- sample(1:3, 1)
    rows[[length(rows) + 1]] <- data.frame(batch = paste0("B", b), sample = paste0("s", s),
                                           y = round(50 + eb + es + rnorm(r, 0, 0.6), 3)) } }
d2 <- do.call(rbind, rows); write.csv(d2, "nested2.csv", row.names = FALSE)
Xs <- within(d2$batch, d2$sample)
fit <- lm(y ~ batch + Xs, data = transform(d2, batch = factor(batch)))
a3 <- Anova(fit, type = 3)
cell <- factor(paste(d2$batch, d2$sample, sep = ":"))
cb <- sub(":.*", "", levels(cell)); w <- 1 / as.numeric(table(cb)[cb])
out$nested2 <- list(batch = a3["batch", "Sum Sq"], `batch:sample` = a3["Xs", "Sum Sq"],
                    batch_cellmeans = cellmean_ss(d2$y, cell, outer_L(levels(cell), cb, w)))

## 3-stage nested: lot / bag / sub, unequal at both inner levels
set.seed(12)
rows <- list()
for (l in 1:5) { nb <- sample(2:4, 1); el <- rnorm(1, 0, 2)
  for (b in 1:nb) { ns <- sample(1:3, 1); eb <- rnorm(1, 0, 1.5)
    for (s in 1:ns) { r <- sample(1:3, 1); es <- rnorm(1, 0, 1)
      rows[[length(rows) + 1]] <- data.frame(lot = paste0("L", l), bag = paste0("b", b), sub = paste0("u", s),
                                             y = round(30 + el + eb + es + rnorm(r, 0, 0.5), 3)) } } }
d3 <- do.call(rbind, rows); write.csv(d3, "nested3.csv", row.names = FALSE)
Xb <- within(d3$lot, d3$bag)
Xu <- within(paste(d3$lot, d3$bag), d3$sub)
fit <- lm(y ~ lot + Xb + Xu, data = transform(d3, lot = factor(lot)))
a3 <- Anova(fit, type = 3)
cell <- factor(paste(d3$lot, d3$bag, d3$sub, sep = ":"))
cl <- sub(":.*", "", levels(cell)); clb <- sub(":[^:]*$", "", levels(cell))
nsub <- as.numeric(table(clb)[clb])                            # sub cells in the cell's bag
nbag <- tapply(clb, cl, function(x) length(unique(x)))[cl]     # bags in the cell's lot
out$nested3 <- list(lot = a3["lot", "Sum Sq"], `lot:bag` = a3["Xb", "Sum Sq"], `lot:bag:sub` = a3["Xu", "Sum Sq"],
                    lot_cellmeans = cellmean_ss(d3$y, cell, outer_L(levels(cell), cl, 1 / (nsub * nbag))))

## split-plot with sub-samples as a term: block, A, block:A, block:A:plant (2-4 plants per whole plot)
set.seed(13)
rows <- list()
for (bl in 1:4) for (a in 1:3) { np <- sample(2:4, 1); ew <- rnorm(1, 0, 1)
  for (p in 1:np) { r <- sample(1:2, 1); ep <- rnorm(1, 0, 0.8)
    rows[[length(rows) + 1]] <- data.frame(block = paste0("r", bl), A = paste0("a", a), plant = paste0("p", p),
                                           y = round(20 + bl + 0.5 * a + ew + ep + rnorm(r, 0, 0.4), 3)) } }
ds <- do.call(rbind, rows); write.csv(ds, "splitplot_plants.csv", row.names = FALSE)
Xp <- within(paste(ds$block, ds$A), ds$plant)
fit <- lm(y ~ block * A + Xp, data = transform(ds, block = factor(block), A = factor(A)))
a3 <- Anova(fit, type = 3)
cell <- factor(paste(ds$block, ds$A, ds$plant, sep = ":"))
parts <- do.call(rbind, strsplit(levels(cell), ":"))
wp <- paste(parts[, 1], parts[, 2]); np <- as.numeric(table(wp)[wp])
nblock <- length(unique(parts[, 1]))
out$splitplot_plants <- list(block = a3["block", "Sum Sq"], A = a3["A", "Sum Sq"], `block:A` = a3["block:A", "Sum Sq"],
                             `block:A:plant` = a3["Xp", "Sum Sq"],
                             A_cellmeans = cellmean_ss(ds$y, cell, outer_L(levels(cell), parts[, 2], 1 / (np * nblock))))

out$r_versions <- list(R = paste(R.version$major, R.version$minor, sep = "."), car = as.character(packageVersion("car")))
writeLines(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "nested_type3.json")
