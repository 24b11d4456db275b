"""Shared by the benchmark scripts: timing the peers (glmm from PyPI, R scripts) in the same run."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import warnings

import pandas as pd


def time_glmm(formula: str, d: pd.DataFrame) -> tuple[float, float, str] | None:
    """glmm's REML fit (PyPI, Rust core) when installed: (seconds, REML criterion, evaluation counts)."""
    try:
        import glmm
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        f = glmm.fit(d, formula, reml=True, satterthwaite=False)
        t = time.perf_counter() - t0
    return t, -2.0 * float(f.loglik), "%s evaluations + %s gradients" % (f.n_eval, f.n_grad)


def rscript(script: str, d: pd.DataFrame, *args: str, timeout: float = 3600.0) -> list[str] | None:
    """Run an R script as ``Rscript script data.csv *args`` in a temporary folder.

    Returns the whitespace-separated tokens of its standard output, or None (no Rscript, a failure
    or a timeout: the reason is printed).
    """
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv, scr = os.path.join(tmp, "d.csv"), os.path.join(tmp, "t.R")
        d.to_csv(csv, index=False)
        with open(scr, "w") as fh:
            fh.write(script)
        try:
            out = subprocess.run(["Rscript", scr, csv, *args], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            print("  R timed out: %s" % exc)
            return None
    tokens = out.stdout.split()
    if out.returncode != 0 or not tokens:
        print("  R failed: %s" % out.stderr[-300:])
        return None
    return tokens
