"""Small simulated data sets for the residual-structure tests (tests only)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest


def repeated(n_sub: int = 18, T: int = 4, missing: float = 0.15, seed: int = 0, rho: float = 0.5,
             groups: int = 0, hetero: bool = False, blocks: int = 0, nested: bool = False) -> pd.DataFrame:
    """Subjects (3 treatments) measured at T times with visits missing at random (>= 2 kept per subject).

    Columns: ``subj``, ``trt``, ``time`` (``t1``..), ``x`` (a covariate), ``y``; ``grp`` (subjects
    nested in groups, as ``us(time | grp / subj)`` wants, with labels repeated across groups) and
    ``block`` (crossing the subjects, or containing them with ``nested``) when asked for.
    """
    rng = np.random.default_rng(seed)
    rows = []
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    beff = rng.normal(0, 1.0, max(blocks, 1))
    for s in range(n_sub):
        g = s % groups if groups else 0
        sd = np.linspace(1, 1.8, T) * (1 + 0.5 * g) if hetero or groups else np.ones(T)
        C = (rho ** lag) * np.outer(sd, sd)
        e = rng.multivariate_normal(np.zeros(T), C)
        keep = rng.random(T) >= missing
        if keep.sum() < 2:
            keep[rng.choice(T, 2, replace=False)] = True
        trt = "T%d" % (s % 3)
        for t in range(T):
            if not keep[t]:
                continue
            b = (s if nested else s + t) % blocks if blocks else 0
            x = rng.normal()
            y = 10 + 0.5 * (s % 3) + 0.3 * t + 0.4 * x + beff[b] + e[t]
            row = {"subj": "S%02d" % (s // groups if groups else s), "trt": trt, "time": "t%d" % (t + 1),
                   "x": x, "y": y}
            if groups:
                row["grp"] = "G%d" % g
            if blocks:
                row["block"] = "B%d" % b
            rows.append(row)
    return pd.DataFrame(rows)


def environments(n_env: int = 3, n_block: int = 3, n_gen: int = 6, seed: int = 1) -> pd.DataFrame:
    """Multi-environment trial with a residual SD per environment and random blocks."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n_env):
        sd = 0.5 + 0.6 * e
        for b in range(n_block):
            be = rng.normal(0, 0.7)
            for g in range(n_gen):
                rows.append({"env": "E%d" % e, "block": "R%d" % b, "gen": "G%d" % g,
                             "y": 5 + e + 0.3 * g + be + rng.normal(0, sd)})
    return pd.DataFrame(rows)


def field(nrow: int = 8, ncol: int = 6, trials: int = 1, missing: float = 0.0, seed: int = 2,
          nugget: float = 0.0) -> pd.DataFrame:
    """Field trial(s) on a grid: ``row``, ``col`` (integers), ``rep`` (blocks of 2 rows), ``gen``, ``plot``."""
    rng = np.random.default_rng(seed)
    rows = []
    lr = np.abs(np.subtract.outer(np.arange(nrow), np.arange(nrow)))
    lc = np.abs(np.subtract.outer(np.arange(ncol), np.arange(ncol)))
    C = np.kron(0.6 ** lc, 0.4 ** lr)          # column-major order of the grid
    for tr in range(trials):
        e = rng.multivariate_normal(np.zeros(nrow * ncol), 2.0 * C) + rng.normal(0, np.sqrt(nugget) + 1e-12,
                                                                                 nrow * ncol)
        k = 0
        for c in range(ncol):
            for r in range(nrow):
                gen = (r % 2) * ncol + (c + r // 2) % ncol
                if rng.random() >= missing:
                    rows.append({"trial": "F%d" % tr, "row": r + 1, "col": c + 1, "rep": "R%d" % (r // 2),
                                 "gen": "G%02d" % gen, "plot": "F%dP%03d" % (tr, k),
                                 "y": 20 + 0.2 * gen + e[k]})
                k += 1
    return pd.DataFrame(rows)


def key(name: str) -> str:
    """R's ``trialF0:repR1`` and patsy's ``trial[F0]:rep[T.R1]`` -> one key."""
    s = "Intercept" if name in ("(Intercept)", "Intercept") else str(name)
    s = re.sub(r"\[(?:T\.)?([^\]]*)\]", r"\1", s)
    return ":".join(sorted(s.split(":")))


def check_tests(fit, want: dict, contrast: dict, ddf: str, *, se: float, df: float, f: float) -> None:
    """Coefficient t tests, type III F tests and one contrast of ``fit`` against a reference's
    ``want`` (``coef``, ``anova``, ``contrast``), to relative tolerances for SEs, df and F."""
    ct = fit.coef_table(ddf)
    ct.index = [key(n) for n in ct.index]
    for c in want["coef"]:
        row = ct.loc[key(c["name"])]
        assert row["se"] == pytest.approx(c["se"], rel=se)
        assert row["df"] == pytest.approx(c["df"], rel=df)
    an = fit.anova(ddf=ddf, type=3)
    an.index = [key(t) for t in an.index]
    for term, w in want["anova"].items():
        g = an.loc[key(term)]
        assert g["num_df"] == w["num_df"]
        assert g["den_df"] == pytest.approx(w["den_df"], rel=df)
        assert g["F"] == pytest.approx(w["F"], rel=f)
    cols = [key(c) for c in contrast["columns"]]
    L = np.asarray(contrast["L"], dtype=float)[:, [cols.index(key(n)) for n in fit.fixef.index]]
    g = fit.contrast(L, ddf).iloc[0]
    assert g["num_df"] == want["contrast"]["num_df"]
    assert g["den_df"] == pytest.approx(want["contrast"]["den_df"], rel=df)
    assert g["F"] == pytest.approx(want["contrast"]["F"], rel=f)
