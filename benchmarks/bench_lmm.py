"""Benchmark vcomp.lmm against lme4 (when Rscript is available) in the same run.

Cases
-----
* random intercept + slope ``y ~ x + (x|cluster)``: 2,000 clusters x 100 rows (200,000 rows)
  and 10,000 x 100 (1,000,000 rows). Targets: vcomp <= 1/4 and <= 1/10 of lme4's time,
  peak memory < 2 GB at 1e6 rows.
* crossed ``y ~ 1 + (1|plate) + (1|sample)``, 1,000 plates x 50 samples.

Usage: ``python benchmarks/bench_lmm.py [--quick] [--no-r]``.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings

# The default environment: vcomp limits its own BLAS threads (vcomp/_threads.py).
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import vcomp  # noqa: E402
from _peers import rscript, time_glmm  # noqa: E402


def sim_slopes(n_cluster: int, per: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_cluster), per)
    x = rng.normal(size=g.size)
    b0 = rng.normal(0, 0.5, n_cluster)
    b1 = rng.normal(0, 0.25, n_cluster)
    y = 1 + 0.5 * x + b0[g] + b1[g] * x + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "cluster": pd.Series(g).map("c{:05d}".format)})


def sim_crossed(n_plate: int, n_sample: int, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = np.repeat(np.arange(n_plate), n_sample)
    s = np.tile(np.arange(n_sample), n_plate)
    y = 20 + rng.normal(0, 1, n_plate)[p] + rng.normal(0, 2, n_sample)[s] + rng.normal(0, 0.5, p.size)
    return pd.DataFrame({"y": y, "plate": pd.Series(p).map("p{:04d}".format),
                         "sample": pd.Series(s).map("s{:03d}".format)})


def time_vcomp(formula: str, d: pd.DataFrame) -> tuple[float, "vcomp.MixedModel"]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = vcomp.lmm(formula, d)
    return time.perf_counter() - t0, fit


R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE)
f <- as.formula(args[2])
t <- system.time(m <- lmer(f, d, REML = TRUE))[["elapsed"]]
cat(sprintf("%.6f %.8f\n", t, REMLcrit(m)))
"""


def time_lme4(formula: str, d: pd.DataFrame) -> tuple[float, float] | None:
    out = rscript(R_SCRIPT, d, formula, timeout=1800)
    return (float(out[-2]), float(out[-1])) if out else None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(name: str, formula: str, d: pd.DataFrame, target: float | None, use_r: bool,
        glmm_target: float | None = None, repeat: int = 3) -> None:
    """vcomp's first fit (against lme4's first fit in a fresh R process), then ``repeat`` alternating
    vcomp / glmm fits in this process: the glmm ratio is of the medians (both warm: the allocator's
    pages are the same for both, and whichever runs second no longer profits from the first)."""
    tv, fit = time_vcomp(formula, d)
    line = "%-34s n=%9d  vcomp %7.2fs (%d evaluations, %d gradients)  REMLcrit %.4f  [load %.1f]" % (
        name, len(d), tv, fit._opt.nfev, fit._opt.ngev, fit.reml_criterion, os.getloadavg()[0])
    g = time_glmm(formula, d)
    if g is not None:
        tvs, tgs = [], []
        for _ in range(repeat):
            tvs.append(time_vcomp(formula, d)[0])
            tgs.append(time_glmm(formula, d)[0])
        mv, mg = float(np.median(tvs)), float(np.median(tgs))
        line += "  | median of %d: vcomp %.3fs, glmm %.3fs (%s)  REMLcrit %.4f  ratio %.2f" % (
            repeat, mv, mg, g[2], g[1], mv / mg)
        if glmm_target is not None:
            line += " (target <= %.1f: %s)" % (glmm_target, "ok" if mv / mg <= glmm_target else "MISSED")
    r = time_lme4(formula, d) if use_r else None
    if r is not None:
        tr, crit = r
        ratio = tv / tr
        line += "  | lme4 %7.2fs  REMLcrit %.4f  ratio %.3f" % (tr, crit, ratio)
        if target is not None:
            line += "  (target <= %.3f: %s)" % (target, "ok" if ratio <= target else "MISSED")
    line += "  peak RSS %.0f MB" % peak_rss_mb()
    print(line, flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--no-r", action="store_true", help="do not run lme4")
    a = ap.parse_args(argv)
    use_r = not a.no_r
    if a.quick:
        run("slopes 200 x 20", "y ~ x + (x|cluster)", sim_slopes(200, 20), None, use_r)
        run("crossed 100 x 10", "y ~ 1 + (1|plate) + (1|sample)", sim_crossed(100, 10), None, use_r)
        return
    run("slopes 2,000 x 100", "y ~ x + (x|cluster)", sim_slopes(2000, 100), 1 / 4, use_r)
    run("crossed 1,000 x 50", "y ~ 1 + (1|plate) + (1|sample)", sim_crossed(1000, 50), None, use_r)
    run("slopes 10,000 x 100", "y ~ x + (x|cluster)", sim_slopes(10000, 100), 1 / 10, use_r, 1.0)
    if peak_rss_mb() > 2048:
        print("peak RSS above 2 GB")


if __name__ == "__main__":
    main(sys.argv[1:])
