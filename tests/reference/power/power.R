# Exact power of balanced designs (noncentral F), the parameterization of shared/notes/power-and-layout.md,
# computed independently of vcomp: the plan is the full crossing of the factors (a cyclic square for the
# Latin square), mu the sum of the listed effects, SS_T(mu) from R's sequential anova of lm(mu ~ terms),
# the error stratum's expected mean square from the textbook EMS written out per scenario.
# Run: Rscript power.R  (writes power.json next to this script)
library(jsonlite)

labels <- function(f, n) if (is.character(n)) n else sprintf("%s%0*d", f, nchar(as.character(n)), seq_len(n))

crossed <- function(levels, reps = 1) {
  g <- expand.grid(lapply(names(levels), function(f) labels(f, levels[[f]])), stringsAsFactors = FALSE)
  names(g) <- names(levels)
  g[rep(seq_len(nrow(g)), each = reps), , drop = FALSE]
}

latin <- function(t, trt = "trt", row = "row", col = "col") {
  g <- expand.grid(i = 0:(t - 1), j = 0:(t - 1))
  d <- data.frame(labels(row, t)[g$i + 1], labels(col, t)[g$j + 1], labels(trt, t)[(g$i + g$j) %% t + 1],
                  stringsAsFactors = FALSE)
  names(d) <- c(row, col, trt)
  d
}

mu_of <- function(d, effects) {
  mu <- rep(0, nrow(d))
  for (term in names(effects)) {
    key <- do.call(paste, c(lapply(strsplit(term, ":")[[1]], function(f) d[[f]]), sep = ":"))
    e <- unlist(effects[[term]])
    hit <- key %in% names(e)
    mu[hit] <- mu[hit] + e[key[hit]]
  }
  mu
}

# scenario: builder, levels, reps, effects, components, the model's terms in textbook order,
# and per fixed term its error stratum and the error's EMS as a function of the components
scen <- list(
  list(name = "rcbd5x3", builder = 'vcomp.RCBD(treatment="trt", block="block")',
       levels = list(trt = c("ctl", "n1", "n2", "n3", "n4"), block = 3), reps = 1,
       effects = list(trt = list(n1 = 0.5, n2 = 1, n3 = 1.5, n4 = 1.2)), components = list(block = 1, Residual = 0.8),
       terms = "block + trt", error = list(trt = c("Residual", "Residual"))),
  list(name = "splitplot2x5x3", builder = 'vcomp.SplitPlot(whole="A", sub="B", block="block")',
       levels = list(block = 3, A = 2, B = 5), reps = 1,
       effects = list(A = list(A2 = 1.2), B = list(B2 = 0.4, B3 = 0.8, B5 = -0.3), "A:B" = list("A2:B5" = 1)),
       components = list(block = 0.7, "block:A" = 0.4, Residual = 0.5),
       terms = "block + A + block:A + B + A:B",
       error = list(A = c("block:A", "Residual + 5 * `block:A`"), B = c("Residual", "Residual"),
                    "A:B" = c("Residual", "Residual"))),
  list(name = "latin4", builder = 'vcomp.LatinSquare(treatment="trt", row="row", col="col")',
       levels = list(trt = 4, row = 4, col = 4), reps = 1, latin = TRUE,
       effects = list(trt = list(trt2 = 1, trt3 = 2, trt4 = 0.5)), components = list(row = 0.3, col = 0.2, Residual = 0.6),
       terms = "row + col + trt", error = list(trt = c("Residual", "Residual"))),
  list(name = "strip3x4x4", builder = 'vcomp.StripPlot(horizontal="H", vertical="V", block="block")',
       levels = list(block = 4, H = 3, V = 4), reps = 1,
       effects = list(H = list(H2 = 1, H3 = 1.5), V = list(V2 = 0.5, V4 = 1), "H:V" = list("H3:V4" = 1.5)),
       components = list(block = 1, "block:H" = 0.6, "block:V" = 0.3, Residual = 0.5),
       terms = "block + H + block:H + V + block:V + H:V",
       error = list(H = c("block:H", "Residual + 4 * `block:H`"), V = c("block:V", "Residual + 3 * `block:V`"),
                    "H:V" = c("Residual", "Residual"))),
  list(name = "splitsplit2x3x2x3", builder = 'vcomp.SplitSplitPlot(whole="A", sub="B", subsub="C", block="block")',
       levels = list(block = 3, A = 2, B = 3, C = 2), reps = 1,
       effects = list(A = list(A2 = 2), B = list(B2 = 0.8, B3 = 1.2), C = list(C2 = 0.6), "A:B:C" = list("A1:B1:C1" = 1)),
       components = list(block = 1, "block:A" = 0.5, "block:A:B" = 0.4, Residual = 0.5),
       terms = "block + A + block:A + B + A:B + block:A:B + C + A:C + B:C + A:B:C",
       error = list(A = c("block:A", "Residual + 2 * `block:A:B` + 6 * `block:A`"),
                    B = c("block:A:B", "Residual + 2 * `block:A:B`"), "A:B" = c("block:A:B", "Residual + 2 * `block:A:B`"),
                    C = c("Residual", "Residual"), "A:C" = c("Residual", "Residual"), "B:C" = c("Residual", "Residual"),
                    "A:B:C" = c("Residual", "Residual"))),
  list(name = "crd2x3r3", builder = 'vcomp.CRD(treatment=["A", "B"])',
       levels = list(A = 2, B = 3), reps = 3,
       effects = list(A = list(A2 = 1), B = list(B3 = 1), "A:B" = list("A2:B3" = -0.5)), components = list(Residual = 1),
       terms = "A + B + A:B", error = list(A = c("Residual", "Residual"), B = c("Residual", "Residual"),
                                           "A:B" = c("Residual", "Residual"))),
  list(name = "mixed_twoway", builder = 'vcomp.Design(fixed="machine", random=["worker", "worker:machine"])',
       levels = list(machine = 3, worker = 5), reps = 2,
       effects = list(machine = list(machine2 = 1, machine3 = 0.4)),
       components = list(worker = 1, "worker:machine" = 0.3, Residual = 0.5),
       terms = "machine + worker + machine:worker",
       error = list(machine = c("machine:worker", "Residual + 2 * `worker:machine`")))
)

alpha <- 0.05
out <- lapply(scen, function(s) {
  d <- if (isTRUE(s$latin)) latin(s$levels$trt) else crossed(s$levels, s$reps)
  for (f in names(d)) d[[f]] <- factor(d[[f]])
  d$mu <- mu_of(d, s$effects)
  a <- suppressWarnings(anova(lm(as.formula(paste("mu ~", s$terms)), data = d)))
  rownames(a) <- trimws(rownames(a))
  pw <- list()
  for (term in names(s$error)) {
    e <- s$error[[term]][1]
    e0 <- eval(parse(text = s$error[[term]][2]), envir = s$components)
    df1 <- a[term, "Df"]
    df2 <- a[e, "Df"]
    ncp <- a[term, "Sum Sq"] / e0
    p <- pf(qf(1 - alpha, df1, df2), df1, df2, ncp = ncp, lower.tail = FALSE)
    pw[[term]] <- list(power = p, ncp = ncp, df1 = df1, df2 = df2, error = e, error_ems = e0)
  }
  list(name = s$name, builder = s$builder, levels = s$levels, reps = s$reps, effects = s$effects,
       components = s$components, alpha = alpha, power = pw)
})
here <- tryCatch(dirname(sys.frame(1)$ofile), error = function(e) NULL)
if (is.null(here)) here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)))
writeLines(toJSON(list(R = R.version.string, scenarios = out), auto_unbox = TRUE, digits = NA, pretty = TRUE),
           file.path(here, "power.json"))
