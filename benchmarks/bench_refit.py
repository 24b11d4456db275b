"""Simulated refits with Kenward-Roger tests, the loop of a power analysis: vcomp vs lmerTest (same run).

Case: a 72-row split-plot (6 blocks x 3 whole-plot x 4 sub-plot levels, the oats layout),
``y ~ A*B + (1|block) + (1|block:A)``; 200 response vectors simulated on the plan.

- vcomp: ``fit = design.lmm(first)``, then ``fit.refit(y)`` and ``.anova(ddf="kenward-roger")``
  for each of the others (the loop of :func:`vcomp.power.simulated_power`; the median of three
  runs of the whole loop), and the whole ``design.power(..., nsim=200)`` call;
- R: ``m <- lmer(...)`` (lmerTest) for each response and ``anova(m, ddf = "Kenward-Roger")`` (lmerTest +
  pbkrtest) for each, on the same 200 responses.

Target (issue 13): the vcomp loop in at most 1/50 of R's (about 1 s for 200 refits and tests).
``MixedModel.refit`` reuses the coding, the terms, Z'Z, Z'X, X'X, the kernel's structure and the
hypothesis matrices; only X'y, Z'y and y'y are recomputed, and θ is warm-started.

Usage: ``python benchmarks/bench_refit.py [--quick] [--no-r]`` (``--quick``: 20 refits).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import vcomp  # noqa: E402
import vcomp.inference  # noqa: E402,F401  (imports before timing)
from vcomp.simulate import NoiseModel, expected_values  # noqa: E402
from _peers import rscript  # noqa: E402

LEVELS = {"A": 3, "B": 4, "block": 6}
EFFECTS = {"A": {"A2": 0.5}, "B": {"B2": 0.3, "B3": 0.6}}
COMPONENTS = {"block": 1.0, "block:A": 0.5, "Residual": 0.5}

R_CODE = r"""
suppressMessages({library(lmerTest); library(pbkrtest)})
d <- read.csv(commandArgs(TRUE)[1], stringsAsFactors = TRUE)
Y <- as.matrix(d[, grep("^sim_", names(d))])
d$y <- Y[, 1]
m0 <- lmer(y ~ A*B + (1|block) + (1|block:A), d)
# lme4's refit() returns a plain merMod, whose anova() ignores ddf= (no Kenward-Roger test at all), so
# the loop refits with lmerTest's lmer (a model lmerTest can test) and asks for the KR table
t <- system.time(for (i in seq_len(ncol(Y))) {
  d$y <- Y[, i]; m <- lmer(y ~ A*B + (1|block) + (1|block:A), d); a <- anova(m, ddf = "Kenward-Roger")
  stopifnot("DenDF" %in% names(a))
})[["elapsed"]]
cat(t, "\n")
"""


def responses(nsim: int, seed: int = 1):
    design = vcomp.SplitPlot(whole="A", sub="B", block="block")
    rng = np.random.default_rng(seed)
    plan = design.layout(LEVELS, seed=rng)
    mu = expected_values(design, plan, EFFECTS)
    noise = NoiseModel(design, plan, COMPONENTS)
    return design, plan, np.column_stack([mu + noise.draw(rng) for _ in range(nsim)])


def time_vcomp(design, plan, Y) -> float:
    data = plan.drop(columns="plot").copy()
    data["y"] = Y[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        fit = design.lmm(data, "y")
        fit.anova(ddf="kenward-roger")
        for j in range(1, Y.shape[1]):
            fit.refit(Y[:, j]).anova(ddf="kenward-roger")
        return time.perf_counter() - t0


def time_r(plan, Y) -> float | None:
    """R's loop on the same responses (columns ``sim_1 ...`` next to the plan), timed inside R."""
    d = plan.drop(columns="plot").copy()
    sims = pd.DataFrame(Y, columns=["sim_%d" % (j + 1) for j in range(Y.shape[1])])
    out = rscript(R_CODE, pd.concat([d.reset_index(drop=True), sims], axis=1), timeout=3600)
    return float(out[-1]) if out else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-r", action="store_true")
    a = ap.parse_args()
    nsim = 20 if a.quick else 200
    design, plan, Y = responses(nsim)
    # the loop is short next to R's (tens of seconds): the median of three runs spread around R's loop,
    # so that one burst of other load on the machine does not decide the ratio
    runs = [time_vcomp(design, plan, Y) for _ in range(2)]
    t0 = time.perf_counter()
    design.power(LEVELS, EFFECTS, COMPONENTS, nsim=nsim, seed=1, progress=False)
    tp = time.perf_counter() - t0
    tr = None if a.no_r else time_r(plan, Y)
    runs.append(time_vcomp(design, plan, Y))      # two runs before R's loop and one after it
    tv = float(np.median(runs))
    print("split-plot, %d rows, %d simulated refits + KR anova" % (len(plan), nsim))
    print("  vcomp fit.refit loop     %7.2f s  (%.1f ms per refit and test; median of %s s)"
          % (tv, 1e3 * tv / nsim, ", ".join("%.2f" % r for r in runs)))
    print("  vcomp design.power(nsim) %7.2f s" % tp)
    if tr is not None:
        print("  R lmerTest refit loop    %7.2f s  (%.1f ms per refit and test)" % (tr, 1e3 * tr / nsim))
        print("  ratio vcomp / R          %7.3f  (target <= 0.02)" % (tv / tr))


if __name__ == "__main__":
    main()
