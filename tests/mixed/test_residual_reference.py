"""Residual structures against frozen R references (tests/reference/covstruct/covstruct.R).

Dense REML in R (cross-checked with nlme where it has the structure), lmerTest's Satterthwaite
(observed information) and pbkrtest's Kenward-Roger engine fed with V and dV/dtheta
(the note's ``expected_linear``). R is not needed to run these tests.
"""
from __future__ import annotations

import json
import pathlib
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp

HERE = pathlib.Path(__file__).resolve().parents[1] / "reference" / "covstruct"
REFS = json.loads((HERE / "covstruct.json").read_text())
CASES = [k for k in REFS if isinstance(REFS[k], dict) and "reml" in REFS[k]]


def key(name: str) -> str:
    """R's ``trialF0:repR1`` and patsy's ``trial[F0]:rep[T.R1]`` -> one key."""
    s = "Intercept" if name in ("(Intercept)", "Intercept") else str(name)
    s = re.sub(r"\[(?:T\.)?([^\]]*)\]", r"\1", s)
    return ":".join(sorted(s.split(":")))


@pytest.fixture(scope="module", params=CASES)
def case(request):
    r = REFS[request.param]
    data = pd.read_csv(HERE / (r["csv"] + ".csv"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = vcomp.lmm(r["formula"], data, residual=r["residual"])
    return r, fit


def test_reml_optimum(case):
    r, fit = case
    assert -fit.reml_criterion / 2 == pytest.approx(r["reml"]["loglik"], abs=1e-6)
    if "nlme" in r:
        assert r["nlme"]["loglik"] == pytest.approx(r["reml"]["loglik"], abs=1e-4)
    got = dict(zip(fit.residual_params["name"], fit.residual_params["estimate"]))
    for p in r["reml"]["residual_params"]:
        assert got[p["name"]] == pytest.approx(p["estimate"], rel=2e-4, abs=2e-5)
    vc = fit.varcorr
    for g in r["reml"]["random"]:
        row = vc[(vc["grp"] == g["grp"])]
        assert len(row) == 1
        assert row["vcov"].iloc[0] == pytest.approx(g["vcov"], rel=2e-4)


def test_fixed_effects(case):
    r, fit = case
    pos = {key(n): i for i, n in enumerate(fit.fixef.index)}
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    assert len(pos) == len(r["reml"]["coef"])
    for c in r["reml"]["coef"]:
        i = pos[key(c["name"])]
        assert fit.fixef.iloc[i] == pytest.approx(c["estimate"], abs=1e-5 * max(abs(c["estimate"]), c["se"]))
        assert se[i] == pytest.approx(c["se"], rel=1e-5)


@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger"])
def test_inference(case, ddf):
    r, fit = case
    want = r["satterthwaite" if ddf == "satterthwaite" else "kenward_roger"]
    ct = fit.coef_table(ddf)
    ct.index = [key(n) for n in ct.index]
    for c in want["coef"]:
        row = ct.loc[key(c["name"])]
        assert row["se"] == pytest.approx(c["se"], rel=1e-5)
        assert row["df"] == pytest.approx(c["df"], rel=1e-3)
    an = fit.anova(ddf=ddf, type=3)
    an.index = [key(t) for t in an.index]
    for term, w in want["anova"].items():
        g = an.loc[key(term)]
        assert g["num_df"] == w["num_df"]
        assert g["den_df"] == pytest.approx(w["den_df"], rel=1e-3)
        assert g["F"] == pytest.approx(w["F"], rel=1e-4)
    cols = [key(c) for c in r["contrast"]["columns"]]
    order = [cols.index(key(n)) for n in fit.fixef.index]
    L = np.asarray(r["contrast"]["L"], dtype=float)[:, order]
    g = fit.contrast(L, ddf).iloc[0]
    w = want["contrast"]
    assert g["num_df"] == w["num_df"]
    assert g["den_df"] == pytest.approx(w["den_df"], rel=1e-3)
    assert g["F"] == pytest.approx(w["F"], rel=1e-4)
