"""Kenward-Roger type III anova: vcomp vs lmerTest + pbkrtest (same data, same run).

Cases
-----
* random slopes ``y ~ x + trt + (x|cluster)``: 20,000 rows (200 clusters), and 100,000 rows
  (200 and 1,000 clusters) for vcomp only;
* crossed ``y ~ trt + (1|plate) + (1|sample)``: 40 x 40 = 1,600 rows, and 200 x 200 for vcomp only.

Target: vcomp's KR anova (ingredients + table, on a fitted model) at most 1/100 of
``anova(m, ddf = "Kenward-Roger")`` in lmerTest/pbkrtest, and well under a second at 100,000
rows.  R is timed when ``Rscript`` is on the PATH (only the anova call, on a model fitted
beforehand, as for vcomp).

One grouping factor (the random-slopes cases) uses the per-level block path of
``vcomp.inference._pieces`` (batched ``k x k`` algebra, cost independent of n after one pass);
several factors the ``q x q`` pieces with Z'Z kept sparse (A^-1 from the criterion's blocked factor
for large q).  The default environment is used: vcomp limits its own BLAS threads.

Usage: ``python benchmarks/bench_kr.py [--quick] [--no-r]`` (``--quick``: the two R-compared cases only).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

import vcomp
import vcomp.inference  # noqa: F401  (import scipy.stats etc. before timing)
import scipy.stats  # noqa: F401


def random_slopes(n_cluster: int, per: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(n_cluster), per)
    x = rng.normal(size=cl.size)
    trt = rng.integers(0, 3, n_cluster)[cl]
    b0 = rng.normal(scale=0.5, size=n_cluster)
    b1 = rng.normal(scale=0.25, size=n_cluster)
    y = 1 + 0.5 * x + 0.2 * trt + b0[cl] + b1[cl] * x + rng.normal(size=cl.size)
    return pd.DataFrame({"y": y, "x": x, "trt": np.array(["t0", "t1", "t2"])[trt],
                         "cluster": ["c%04d" % c for c in cl]})


def crossed(n_plate: int, n_sample: int, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p, s = np.meshgrid(np.arange(n_plate), np.arange(n_sample), indexing="ij")
    p, s = p.ravel(), s.ravel()
    trt = rng.integers(0, 4, p.size)
    y = 10 + 0.3 * trt + rng.normal(size=n_plate)[p] + rng.normal(scale=2, size=n_sample)[s] \
        + rng.normal(size=p.size)
    return pd.DataFrame({"y": y, "trt": np.array(["a", "b", "c", "d"])[trt],
                         "plate": ["p%03d" % i for i in p], "sample": ["s%03d" % i for i in s]})


def time_vcomp(formula: str, data: pd.DataFrame) -> tuple[float, float, pd.DataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        m = vcomp.lmm(formula, data)
        t1 = time.perf_counter()
        tab = m.anova(ddf="kenward-roger", type=3)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, tab


R_CODE = r"""
suppressMessages({library(lmerTest); library(pbkrtest)})
d <- read.csv("%s", stringsAsFactors = TRUE)
m <- lmer(%s, d, REML = TRUE)
t <- system.time(a <- anova(m, ddf = "Kenward-Roger", type = 3))[["elapsed"]]
cat("TIME", t, "\n"); print(a)
"""


def time_r(formula: str, data: pd.DataFrame) -> float | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "d.csv")
        data.to_csv(csv, index=False)
        code = os.path.join(tmp, "bench.R")
        with open(code, "w") as fh:
            fh.write(R_CODE % (csv, formula))
        out = subprocess.run(["Rscript", code], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("TIME"):
            return float(line.split()[1])
    print("  R failed:", out.stderr.strip().splitlines()[-1:] if out.stderr else "")
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the two cases compared with R")
    ap.add_argument("--no-r", action="store_true", help="do not time R")
    args = ap.parse_args()
    cases = [("random slopes, 20,000 rows, 200 clusters", "y ~ x + trt + (x|cluster)", random_slopes(200, 100), True),
             ("crossed (1|plate)+(1|sample), 40 x 40", "y ~ trt + (1|plate) + (1|sample)", crossed(40, 40), True)]
    if not args.quick:
        cases += [("random slopes, 100,000 rows, 200 clusters", "y ~ x + trt + (x|cluster)",
                   random_slopes(200, 500), False),
                  ("random slopes, 100,000 rows, 1,000 clusters", "y ~ x + trt + (x|cluster)",
                   random_slopes(1000, 100), False),
                  ("crossed (1|plate)+(1|sample), 200 x 200", "y ~ trt + (1|plate) + (1|sample)",
                   crossed(200, 200), False)]
    print("Kenward-Roger type III anova (times in seconds; vcomp KR = ingredients + table on a fitted model)")
    print("OPENBLAS_NUM_THREADS=%s; load %.1f" % (os.environ.get("OPENBLAS_NUM_THREADS", "unset"), os.getloadavg()[0]))
    for label, formula, data, with_r in cases:
        fit, kr, tab = time_vcomp(formula, data)
        line = "%-48s n=%7d  vcomp fit %.3f  vcomp KR %.4f" % (label, len(data), fit, kr)
        if not with_r and len(data) >= 100000:
            line += "  (target: well under 1 s)"
        if with_r and not args.no_r:
            tr = time_r(formula, data)
            if tr is not None:
                line += "  | lmerTest+pbkrtest KR %.2f  ratio %.4f (target <= 0.01)" % (tr, kr / tr)
        print(line)
        print("   ", "; ".join("%s: F=%.4g den_df=%.5g" % (k, v["F"], v["den_df"]) for k, v in tab.iterrows()))


if __name__ == "__main__":
    main()
