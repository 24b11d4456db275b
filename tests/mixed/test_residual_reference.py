"""Residual structures against frozen R references (tests/reference/covstruct/covstruct.R).

Dense REML in R (cross-checked with nlme where it has the structure), lmerTest's Satterthwaite
(observed information) and pbkrtest's Kenward-Roger engine fed with V and dV/dtheta
(the note's ``expected_linear``). R is not needed to run these tests.
"""
from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from _residual_data import check_tests, key

HERE = pathlib.Path(__file__).resolve().parents[1] / "reference" / "covstruct"
REFS = json.loads((HERE / "covstruct.json").read_text())
CASES = [k for k in REFS if isinstance(REFS[k], dict) and "reml" in REFS[k]]


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
    check_tests(fit, want, r["contrast"], ddf, se=1e-5, df=1e-3, f=1e-4)
