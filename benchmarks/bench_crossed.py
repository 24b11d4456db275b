"""Crossed random effects at scale: vcomp vs lme4 (+ lmerTest/pbkrtest) and glmm, side by side.

Cases
-----
* InstEval (lme4's data set: 73,421 ratings, 2,972 students x 1,128 lecturers x 14 departments),
  ``y ~ service + (1|s) + (1|d) + (1|dept)``: REML fit, then the Kenward-Roger type III anova.
  Targets: REML <= 0.10 x lme4 and at or ahead of glmm; KR anova <= 2 s (pbkrtest cannot: 73k x 73k).
  The data are exported from R into ``benchmarks/data/insteval.csv`` (ignored by git) when Rscript
  with lme4 is present; otherwise a simulated data set of the same shape is used.
* A multi-environment trial at breeding scale: 2,000 genotypes x 50 environments (each environment
  tests 1,000 genotypes in 2 replicates: 100,000 rows; half the environments irrigated, ``mgmt``),
  ``y ~ mgmt + (1|gen) + (1|env) + (1|gen:env)``: REML + KR (test of ``mgmt``) in a few seconds.

glmm (PyPI, Rust core) is timed when installed (``pip install glmm``), R when ``Rscript`` is on the PATH.
Each line prints the machine's 1-minute load average.

Usage: ``python benchmarks/bench_crossed.py [--no-r] [--no-glmm] [--case insteval|met]``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
import warnings

import numpy as np
import pandas as pd

import vcomp
from _peers import rscript, time_glmm

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
IE_FORMULA = "y ~ service + (1|s) + (1|d) + (1|dept)"
MET_FORMULA = "y ~ mgmt + (1|gen) + (1|env) + (1|gen:env)"


def load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def insteval() -> tuple[pd.DataFrame, str]:
    """lme4's InstEval (exported once from R), else a simulated data set of the same shape."""
    path = os.path.join(DATA, "insteval.csv")
    if not os.path.exists(path) and shutil.which("Rscript"):
        os.makedirs(DATA, exist_ok=True)
        subprocess.run(["Rscript", "-e", 'data(InstEval, package="lme4"); write.csv(InstEval, "%s", row.names=FALSE)'
                        % path], capture_output=True, check=False)
    if os.path.exists(path):
        d = pd.read_csv(path)
        src = "lme4 InstEval"
    else:
        rng = np.random.default_rng(3)
        s = rng.integers(0, 2972, 73421)
        dept_of_d = rng.integers(0, 14, 1128)
        d_ = (s * 7 + rng.integers(0, 60, s.size)) % 1128
        y = np.clip(np.round(3.2 + rng.normal(0, .32, 2972)[s] + rng.normal(0, .52, 1128)[d_]
                             + rng.normal(0, .08, 14)[dept_of_d[d_]] + rng.normal(0, 1.18, s.size)), 1, 5)
        d = pd.DataFrame({"s": s, "d": d_, "dept": dept_of_d[d_], "service": rng.integers(0, 2, s.size), "y": y})
        src = "simulated InstEval shape"
    for c in ("s", "d", "dept", "service"):
        d[c] = d[c].astype(str)
    return d[["y", "service", "s", "d", "dept"]], src


def met(n_gen=2000, n_env=50, per_env=1000, reps=2, seed=5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n_env):
        g = rng.choice(n_gen, per_env, replace=False)
        rows.append(np.column_stack([np.repeat(g, reps), np.full(per_env * reps, e)]))
    ge = np.vstack(rows)
    gen, env = ge[:, 0], ge[:, 1]
    mgmt = (env % 2 == 0)
    y = (50 + 3.0 * mgmt + rng.normal(0, 2, n_gen)[gen] + rng.normal(0, 5, n_env)[env]
         + rng.normal(0, 1.5, (n_gen, n_env))[gen, env] + rng.normal(0, 2, len(gen)))
    return pd.DataFrame({"y": y, "mgmt": np.where(mgmt, "irrigated", "rainfed"),
                         "gen": pd.Series(gen).map("G{:04d}".format),
                         "env": pd.Series(env).map("E{:02d}".format)})


def time_vcomp(formula: str, d: pd.DataFrame, kr: bool = True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        m = vcomp.lmm(formula, d)
        t1 = time.perf_counter()
        tab = m.anova(ddf="kenward-roger") if kr else None
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, m, tab


R_CODE = r"""
suppressMessages(library(lme4))
args <- commandArgs(TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE)
for (v in strsplit(args[2], ",")[[1]]) d[[v]] <- factor(d[[v]])
t <- system.time(m <- lmer(as.formula(args[3]), d, REML = TRUE))[["elapsed"]]
cat(sprintf("%.6f %.8f\n", t, REMLcrit(m)))
"""


def time_lme4(formula: str, d: pd.DataFrame, factors: list[str]):
    out = rscript(R_CODE, d, ",".join(factors), formula)
    return (float(out[-2]), float(out[-1])) if out else None


def run(label, formula, d, factors, use_r, use_glmm, target_r=None, repeat: int = 3):
    """vcomp's first fit (against lme4's first fit in a fresh R process) and its KR anova; then
    ``repeat`` alternating vcomp / glmm fits, compared on their medians (both warm)."""
    tv, tk, m, tab = time_vcomp(formula, d)
    print("%s  n=%d  [%s]" % (label, len(d), load()), flush=True)
    print("  vcomp REML %.2f s (criterion %.4f, %d evaluations + %d gradients)  KR anova %.2f s"
          % (tv, m.reml_criterion, m._opt.nfev, m._opt.ngev, tk), flush=True)
    if tab is not None:
        print("   ", "; ".join("%s: F=%.4g den_df=%.6g" % (k, r["F"], r["den_df"]) for k, r in tab.iterrows()))
    if use_glmm:
        tvs, tgs, g = [], [], None
        for _ in range(repeat):
            tvs.append(time_vcomp(formula, d, kr=False)[0])
            g = time_glmm(formula, d)
            if g is None:
                break
            tgs.append(g[0])
        if g is not None:
            mv, mg = float(np.median(tvs)), float(np.median(tgs))
            print("  median of %d alternating fits: vcomp %.2f s, glmm %.2f s (criterion %.4f, %s)  ratio vcomp/glmm "
                  "%.2f (target <= 1)  [%s]" % (repeat, mv, mg, g[1], g[2], mv / mg, load()), flush=True)
    if use_r:
        r = time_lme4(formula, d, factors)
        if r is not None:
            line = "  lme4 REML %.2f s (criterion %.4f)  ratio vcomp/lme4 %.3f" % (r[0], r[1], tv / r[0])
            if target_r is not None:
                line += " (target <= %.2f: %s)" % (target_r, "ok" if tv / r[0] <= target_r else "MISSED")
            print(line + "  [%s]" % load(), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--no-glmm", action="store_true")
    ap.add_argument("--case", choices=["insteval", "met", "all"], default="all")
    a = ap.parse_args()
    if a.case in ("insteval", "all"):
        d, src = insteval()
        run("InstEval (%s), %s" % (src, IE_FORMULA), IE_FORMULA, d, ["s", "d", "dept", "service"],
            not a.no_r, not a.no_glmm, 0.10)
    if a.case in ("met", "all"):
        d = met()
        run("MET 2,000 genotypes x 50 environments, %s" % MET_FORMULA, MET_FORMULA, d, ["gen", "env", "mgmt"],
            not a.no_r, not a.no_glmm)


if __name__ == "__main__":
    main()
