"""The fast residual-structure path against a dense REML / Satterthwaite / Kenward-Roger reference.

Random designs with missing visits, every structure of the note, alone, with random intercepts,
with a nugget and with ``| trial``. The dense reference (``_dense_residual.py``) builds V from
the note's formulas; the fit must be its optimum and every inference number must agree.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp

from _dense_residual import DenseModel, model_matrix, random_matrices, residual_V
from _residual_data import environments, field, repeated

CASES = {
    "ar1": ("y ~ trt*time", "ar1(time | subj)", dict(seed=1, rho=0.6)),
    "ar1_block": ("y ~ trt + time + (1|block)", "ar1(time | subj)", dict(seed=2, blocks=4, n_sub=16)),
    "cs": ("y ~ trt + time + x", "cs(time | subj)", dict(seed=3)),
    "cs_negative": ("y ~ trt + time", "cs(time | subj)", dict(seed=4, rho=-0.25)),
    "us": ("y ~ trt + time", "us(time | subj)", dict(seed=5, n_sub=24, hetero=True)),
    "toep": ("y ~ trt*time", "toep(time | subj)", dict(seed=6, n_sub=20)),
    "ar1h": ("y ~ trt + time", "ar1h(time | subj)", dict(seed=7, n_sub=22, hetero=True)),
    "csh": ("y ~ trt + time + (1|block)", "csh(time | subj)", dict(seed=15, n_sub=24, hetero=True, blocks=3)),
    "us_group": ("y ~ grp + trt + time", "us(time | grp / subj)", dict(seed=9, n_sub=32, T=3, groups=2)),
    "us_block": ("y ~ trt + time + (1|block)", "us(time | subj)", dict(seed=16, n_sub=30, hetero=True, blocks=5,
                                                                       nested=True)),
    "toep_block": ("y ~ trt + time + (1|block)", "toep(time | subj)", dict(seed=17, n_sub=24, blocks=4)),
    "ar1h_slope": ("y ~ trt + x + (x|block)", "ar1h(time | subj)", dict(seed=22, n_sub=30, blocks=5, hetero=True)),
}


def _fit(formula, data, residual, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vcomp.lmm(formula, data, reml=reml, residual=residual)


def _dense(fit, formula, data, kind, **cols):
    rp = dict(zip(fit.residual_params["name"], fit.residual_params["estimate"]))
    names, vals = list(rp), list(rp.values())
    mats = random_matrices(fit.varcorr, data)
    vc = fit.varcorr
    for key in mats:
        row = vc[(vc["grp"] == key[0]) & (vc["var1"] == key[1]) & (vc["var2"].isna() if key[2] is None
                                                                   else vc["var2"] == key[2])]
        names.append(key)
        vals.append(float(row["vcov"].iloc[0]))
    X = model_matrix(formula, data)[0]
    dm = DenseModel(X, data["y"].to_numpy(), lambda par: residual_V(kind, data, par, **cols), names, mats)
    return dm, np.array(vals)


def _compare(fit, dm, v, names, two_rows):
    crit = dm.criterion(v)
    assert fit.reml_criterion == pytest.approx(crit, rel=1e-9, abs=1e-7)
    g = dm.gradient(v)
    assert np.max(np.abs(g * np.maximum(np.abs(v), 1e-2))) < 2e-3      # an optimum of the dense criterion
    dm.setup(v)
    np.testing.assert_allclose(fit.fixef.to_numpy(), dm.beta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fit.vcov.to_numpy(), dm.Phi, rtol=1e-6, atol=1e-10)
    for ddf, ref in (("satterthwaite", dm.satterthwaite), ("kenward-roger", dm.kenward_roger)):
        ct = fit.coef_table(ddf)
        for j in range(len(names)):
            L = np.zeros(len(names))
            L[j] = 1
            w = ref(L)
            assert ct["se"].iloc[j] == pytest.approx(w["se"], rel=1e-6)
            assert ct["df"].iloc[j] == pytest.approx(w["den_df"], rel=2e-4)
        got = fit.contrast(two_rows, ddf).iloc[0]
        w = ref(two_rows)
        assert got["num_df"] == w["num_df"]
        assert got["den_df"] == pytest.approx(w["den_df"], rel=2e-4)
        assert got["F"] == pytest.approx(w["F"], rel=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_repeated_measures_against_dense(case):
    formula, residual, kw = CASES[case]
    data = repeated(**kw)
    fit = _fit(formula, data, residual)
    spec = vcomp.formula.parse_residual(residual)
    dm, v = _dense(fit, formula, data, spec.kind, time="time", subject="subj", group=spec.group)
    names = list(fit.fixef.index)
    L = np.zeros((2, len(names)))
    L[0, 1], L[1, 2] = 1.0, -1.0
    L[1, -1] = 1.0
    _compare(fit, dm, v, names, L)


def test_diag_with_random_blocks_against_dense():
    data = environments()
    formula = "y ~ env*gen + (1|env:block)"
    fit = _fit(formula, data, "diag(1 | env)")
    data = data.assign(**{"env:block": data["env"] + ":" + data["block"]})
    dm, v = _dense(fit, formula, data, "diag", group="env")
    names = list(fit.fixef.index)
    L = np.zeros((2, len(names)))
    L[0, 1], L[1, 3] = 1.0, 1.0
    _compare(fit, dm, v, names, L)


@pytest.mark.parametrize("trials,missing,nugget,seed", [(1, 0.0, False, 4), (2, 0.1, False, 5), (1, 0.05, True, 8),
                                                         (2, 0.0, True, 8)])
def test_spatial_against_dense(trials, missing, nugget, seed):
    data = field(nrow=8, ncol=5, trials=trials, missing=missing, seed=seed, nugget=0.5 if nugget else 0.0)
    formula = "y ~ rep + gen" + (" + (1|plot)" if nugget else "")
    if trials > 1:
        formula = formula.replace("rep", "trial + trial:rep")
    residual = "ar1(row):ar1(col)" + (" | trial" if trials > 1 else "")
    fit = _fit(formula, data, residual)
    dm, v = _dense(fit, formula, data, "ar1ar1", row="row", col="col", trial="trial" if trials > 1 else None)
    names = list(fit.fixef.index)
    L = np.zeros((2, len(names)))
    L[0, -1], L[1, -2] = 1.0, 1.0
    _compare(fit, dm, v, names, L)


def test_spatial_with_random_replicates_against_dense():
    data = field(nrow=8, ncol=6, trials=1, seed=9)
    fit = _fit("y ~ gen + (1|rep)", data, "ar1(row):ar1(col)")
    dm, v = _dense(fit, "y ~ gen + (1|rep)", data, "ar1ar1", row="row", col="col")
    names = list(fit.fixef.index)
    L = np.zeros((2, len(names)))
    L[0, 1], L[1, 2] = 1.0, 1.0
    _compare(fit, dm, v, names, L)


def test_ml_criterion_matches_dense():
    data = repeated(seed=11)
    fit = _fit("y ~ trt + time", data, "ar1(time | subj)", reml=False)
    rp = dict(zip(fit.residual_params["name"], fit.residual_params["estimate"]))
    X = model_matrix("y ~ trt + time", data)[0]
    V = residual_V("ar1", data, rp, time="time", subject="subj")
    Vi = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ data["y"].to_numpy())
    r = data["y"].to_numpy() - X @ beta
    dev = len(r) * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + r @ Vi @ r
    assert -2 * fit.loglik == pytest.approx(dev, rel=1e-9)
    np.testing.assert_allclose(fit.fixef.to_numpy(), beta, rtol=1e-6)
    assert np.isnan(fit.reml_criterion)


def test_gls_cs_equals_random_intercept():
    """cs(time | subj) with rho > 0 is (1 | subj): same REML optimum, tests and df."""
    data = repeated(seed=12, rho=0.0, n_sub=20)
    rng = np.random.default_rng(0)
    data["y"] = data["y"] + data["subj"].map({s: rng.normal(0, 1.5) for s in data["subj"].unique()})
    a = _fit("y ~ trt*time", data, "cs(time | subj)")
    b = _fit("y ~ trt*time + (1|subj)", data, None)
    assert a.reml_criterion == pytest.approx(b.reml_criterion, abs=1e-6)
    for ddf in ("satterthwaite", "kenward-roger"):
        pd.testing.assert_frame_equal(a.anova(ddf=ddf), b.anova(ddf=ddf), rtol=1e-4)
        pd.testing.assert_frame_equal(a.coef_table(ddf=ddf), b.coef_table(ddf=ddf), rtol=1e-4)
