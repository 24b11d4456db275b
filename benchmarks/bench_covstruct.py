"""Benchmark vcomp.lmm(..., residual=...) against nlme (when Rscript is available) in the same run.

Cases (REML, the same simulated data for both tools)
-----------------------------------------------------
* AR(1) gls ``y ~ block + trt*date``, ``ar1(date | plot)``: 2,000 plots x 6 dates (12,000 rows),
  100 blocks x 20 plots (5 treatments x 4), 129 coefficients. nlme: ``gls(..., corAR1(form = ~ pos | plot))``.
  Target: vcomp <= 1/20 of nlme's time.
* UN 6 x 6 gls, ``us(date | plot)``: 5,000 plots x 6 dates (30,000 rows), 100 blocks x 50 plots
  (10 treatments x 5), 159 coefficients. nlme: ``corSymm(form = ~ pos | plot)`` + ``varIdent(form = ~ 1 | date)``.
  Target: vcomp <= 1/100 of nlme's time.
* Also (no target): CS gls, and ``(1|block)`` + AR(1) (nlme ``lme``), 1,000 plots x 6 dates.

Each evaluation of the criterion costs the same whatever the number of plots (pattern
cross-products, see ``vcomp/mixed/residual_xp.py``); the ``--scaling`` option shows it.

Timings are wall-clock and CPU seconds of the fit (both tools single-threaded); on a loaded machine
the CPU ratio is the steadier one. The target is met when both ratios are within it.

Usage: ``python benchmarks/bench_covstruct.py [--quick] [--no-r] [--scaling] [--only TEXT]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import vcomp  # noqa: E402
from _peers import rscript  # noqa: E402


def sim_dates(n_block: int, n_trt: int, reps: int, n_date: int = 6, rho: float = 0.6, seed: int = 1,
              hetero: bool = False, missing: float = 0.0) -> pd.DataFrame:
    """RCBD (``reps`` plots of each treatment per block) measured on ``n_date`` dates, AR(1) errors."""
    rng = np.random.default_rng(seed)
    nplot = n_block * n_trt * reps
    block = np.repeat(np.arange(n_block), n_trt * reps)
    trt = np.tile(np.repeat(np.arange(n_trt), reps), n_block)
    sd = np.linspace(1.0, 2.0, n_date) if hetero else np.ones(n_date)
    lag = np.abs(np.subtract.outer(np.arange(n_date), np.arange(n_date)))
    C = rho ** lag * np.outer(sd, sd)
    e = rng.multivariate_normal(np.zeros(n_date), C, size=nplot)
    beff = rng.normal(0, 1, n_block)
    teff = rng.normal(0, 0.5, (n_trt, n_date)).cumsum(axis=1)
    y = 20 + beff[block][:, None] + teff[trt] + np.arange(n_date)[None, :] + e
    d = pd.DataFrame({
        "plot": np.repeat(["p%05d" % i for i in range(nplot)], n_date),
        "block": np.repeat(["b%03d" % b for b in block], n_date),
        "trt": np.repeat(["t%02d" % t for t in trt], n_date),
        "date": np.tile(["d%d" % (j + 1) for j in range(n_date)], nplot),
        "y": y.ravel(),
    })
    if missing:
        d = d[rng.random(len(d)) >= missing].reset_index(drop=True)
    return d


def time_vcomp(formula: str, d: pd.DataFrame, residual: str) -> tuple[float, float, "vcomp.MixedModel"]:
    """Wall-clock and CPU seconds of one fit (both single-threaded here, as nlme is)."""
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = vcomp.lmm(formula, d, residual=residual)
    return time.perf_counter() - t0, time.process_time() - c0, fit


R_SCRIPT = r"""
suppressMessages(library(nlme))
args <- commandArgs(TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE)
d$pos <- as.integer(factor(d$date))
kind <- args[2]
f <- y ~ block + trt*date
ctl <- glsControl(maxIter = 200, msMaxIter = 200)
st <- system.time({
  m <- switch(kind,
    ar1 = gls(f, d, correlation = corAR1(form = ~ pos | plot), method = "REML"),
    cs  = gls(f, d, correlation = corCompSymm(form = ~ 1 | plot), method = "REML"),
    us  = gls(f, d, correlation = corSymm(form = ~ pos | plot), weights = varIdent(form = ~ 1 | date),
              method = "REML", control = ctl),
    lme_ar1 = lme(y ~ trt*date, random = ~ 1 | block, d, correlation = corAR1(form = ~ pos | block/plot),
                  method = "REML"))
})
cat(sprintf("%.6f %.6f %.8f\n", st[["elapsed"]], st[["user.self"]] + st[["sys.self"]], as.numeric(logLik(m))))
"""


TIMEOUT = [3600.0]


def time_nlme(kind: str, d: pd.DataFrame) -> tuple[float, float, float] | None:
    """nlme's wall-clock and CPU seconds and REML log-likelihood (None without R)."""
    out = rscript(R_SCRIPT, d, kind, timeout=TIMEOUT[0])
    return (float(out[-3]), float(out[-2]), float(out[-1])) if out else None


def run(name: str, formula: str, residual: str, kind: str, d: pd.DataFrame, target: float | None,
        use_r: bool) -> None:
    tv, cv, fit = time_vcomp(formula, d, residual)
    line = "%-30s n=%6d p=%3d  vcomp %6.2fs (cpu %6.2fs)  logLik %.4f" % (name, len(d), fit.fixef.size, tv, cv,
                                                                        fit.loglik)
    r = time_nlme(kind, d) if use_r else None
    if r is not None:
        tr, cr, ll = r
        ratio, cratio = tv / tr, cv / cr
        line += "  | nlme %7.2fs (cpu %7.2fs)  logLik %.4f  ratio %.4f (cpu %.4f)" % (tr, cr, ll, ratio, cratio)
        if target is not None:
            line += "  (target <= %.3f: %s)" % (target, "ok" if max(ratio, cratio) <= target else "MISSED")
    print(line, flush=True)


def scaling() -> None:
    """Time per criterion evaluation against the number of plots (same p)."""
    for nb in (10, 40, 160):
        d = sim_dates(nb, 5, 4)
        fit = vcomp.lmm("y ~ trt*date", d, residual="us(date | plot)")
        crit = fit._residual.criterion   # the fitted criterion (documented internal of MixedModel)
        x = fit._residual.x
        t0 = time.perf_counter()
        for _ in range(50):
            crit(x)
        print("us(date | plot): %5d plots  %.3f ms per evaluation" % (nb * 20, (time.perf_counter() - t0) / 50 * 1e3))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--no-r", action="store_true", help="do not run nlme")
    ap.add_argument("--scaling", action="store_true", help="time per evaluation vs number of plots")
    ap.add_argument("--only", default="", help="run the cases whose name contains this text")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for one nlme fit")
    a = ap.parse_args(argv)
    use_r = not a.no_r
    TIMEOUT[0] = a.timeout
    if a.scaling:
        scaling()
        return
    f = "y ~ block + trt*date"
    # import and first-call costs (patsy, numpy/scipy modules) out of the timings, as R's library() is
    time_vcomp(f, sim_dates(2, 2, 2), "ar1(date | plot)")
    if a.quick:
        d = sim_dates(10, 5, 4)
        run("AR(1) gls, 200 plots", f, "ar1(date | plot)", "ar1", d, None, use_r)
        run("UN gls, 200 plots", f, "us(date | plot)", "us", sim_dates(10, 5, 4, hetero=True), None, use_r)
        return
    cases = [
        ("AR(1) gls, 2,000 x 6", f, "ar1(date | plot)", "ar1", lambda: sim_dates(100, 5, 4), 1 / 20),
        ("CS gls, 1,000 x 6", f, "cs(date | plot)", "cs", lambda: sim_dates(20, 10, 5), None),
        ("(1|block) + AR(1), 1,000 x 6", "y ~ trt*date + (1|block)", "ar1(date | plot)", "lme_ar1",
         lambda: sim_dates(20, 10, 5), None),
        ("UN gls, 1,000 x 6", f, "us(date | plot)", "us", lambda: sim_dates(20, 10, 5, hetero=True), None),
        ("UN gls, 5,000 x 6", f, "us(date | plot)", "us", lambda: sim_dates(100, 10, 5, hetero=True), 1 / 100),
    ]
    for name, formula, residual, kind, data, target in cases:
        if a.only and a.only not in name:
            continue
        run(name, formula, residual, kind, data(), target, use_r)

if __name__ == "__main__":
    main(sys.argv[1:])
