"""The five visible acceptance cases of the residual structures (copied from shared/refdata/covstruct).

nlme / lmerTest / pbkrtest / emmeans references made by the project's oracle; Kenward-Roger is
the note's ``expected_linear`` variant. LS-means use ``MixedModel.means`` when it exists, else the
same emmeans weights through ``contrast`` (equal weights over the other factors, covariates at
their mean).
"""
from __future__ import annotations

import itertools
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from _residual_data import check_tests, key

HERE = pathlib.Path(__file__).resolve().parents[1] / "reference" / "covstruct" / "visible"
CASES = sorted(p.stem for p in HERE.glob("*.json"))


@pytest.fixture(scope="module", params=CASES)
def case(request):
    r = json.loads((HERE / (request.param + ".json")).read_text())
    d = pd.read_csv(HERE / (r["csv"] + ".csv"))
    for v in r["factors"]:
        d[v] = d[v].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = vcomp.lmm(r["formula"], d, reml=True, residual=r["residual"])
    return r, d, fit


def test_optimum_and_parameters(case):
    r, _, fit = case
    assert -fit.reml_criterion / 2 == pytest.approx(r["reml"]["loglik"], abs=1e-4)
    got = dict(zip(fit.residual_params["name"], fit.residual_params["estimate"]))
    for p in r["reml"]["residual_params"]:
        assert got[p["name"]] == pytest.approx(p["estimate"], rel=2e-3, abs=2e-4 if p["name"].startswith("rho") else 0)
    vc = {(key(g), key(a) if isinstance(a, str) else None, key(b) if isinstance(b, str) else None): v
          for g, a, b, v in fit.varcorr[["grp", "var1", "var2", "vcov"]].itertuples(index=False)}
    for x in r["reml"]["random"]:
        k = (key(x["grp"]), key(x["var1"]), key(x["var2"]) if x["var2"] else None)
        assert vc[k] == pytest.approx(x["vcov"], rel=2e-3)
    pos = {key(n): i for i, n in enumerate(fit.fixef.index)}
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    for c in r["reml"]["coef"]:
        i = pos[key(c["name"])]
        assert abs(fit.fixef.iloc[i] - c["estimate"]) <= 1e-4 * max(abs(c["estimate"]), c["se"])
        assert se[i] == pytest.approx(c["se"], rel=1e-4)


def _lsmeans_L(fit, r, d):
    """emmeans' weights: the grid of every factor level combination, covariates at their mean."""
    from _dense_residual import model_matrix

    from vcomp.terms import parse_formula
    used = list(dict.fromkeys(v for t in parse_formula(r["formula"]).fixed for v in t.variables))
    facs = [v for v in used if not pd.api.types.is_numeric_dtype(d[v])]
    grid = pd.DataFrame(list(itertools.product(*[sorted(d[f].unique()) for f in facs])), columns=facs)
    for v in used:
        if v not in facs:
            grid[v] = d[v].mean()
    _, names = model_matrix(r["formula"], d)
    Xg = model_matrix(r["formula"], d, rows=grid)[0]
    order = [names.index(n) for n in fit.fixef.index]
    return {lv: Xg[(grid[r["means_term"]] == lv).to_numpy()][:, order].mean(axis=0)
            for lv in sorted(d[r["means_term"]].unique())}


@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger"])
def test_inference(case, ddf):
    r, d, fit = case
    want = r["satterthwaite"] if ddf == "satterthwaite" else r["kenward_roger"]["expected_linear"]
    check_tests(fit, want, r["contrast"], ddf, se=1e-4, df=5e-3, f=2e-3)
    if hasattr(fit, "means"):
        tab = fit.means(r["means_term"], ddf=ddf).table
        got = {str(k): (row["mean"], row["se"], row["df"]) for k, row in tab.iterrows()}
    else:
        got = {}
        for lv, l in _lsmeans_L(fit, r, d).items():
            t = fit.contrast(l, ddf).iloc[0]
            got[str(lv)] = (t["estimate"], t["se"], t["den_df"])
    for w in want["means"]:
        m, se, df = got[str(w["level"])]
        assert abs(m - w["mean"]) <= 1e-4 * max(abs(w["mean"]), w["se"])
        assert se == pytest.approx(w["se"], rel=1e-4)
        assert df == pytest.approx(w["df"], rel=5e-3)
