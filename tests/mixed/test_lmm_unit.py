"""Edge cases and internal consistency of vcomp.lmm (no R needed)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import vcomp
from vcomp import DataError, DroppedRowsWarning, FormulaError, SingularFitWarning


def sim(n_cluster=30, per=8, seed=3):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_cluster), per)
    x = rng.normal(size=g.size)
    y = 1 + .5 * x + rng.normal(0, .7, n_cluster)[g] + rng.normal(0, .3, n_cluster)[g] * x + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Series(g).map("g{:02d}".format),
                         "h": np.tile(np.arange(per), n_cluster)})


def quiet(*a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vcomp.lmm(*a, **k)


def test_dense_path_agrees_with_block_path():
    d = sim()
    m1 = quiet("y ~ x + (x|g)", d)
    # the same model through the q x q kernel: add a negligible crossed factor? compare criterion directly
    from vcomp.mixed.criterion import GeneralKernel
    gk = GeneralKernel(m1._re_terms, m1._cp.general(m1._re_terms))
    assert m1._std.criterion(gk(m1._theta, True), True, m1.nobs, 2) == pytest.approx(m1.reml_criterion, rel=1e-10)
    s = gk.solve(m1._theta, True)
    assert np.allclose(s["b_terms"][0], m1._sol["b_terms"][0], atol=1e-8)
    assert np.allclose(s["condvar_terms"][0], m1._sol["condvar_terms"][0], atol=1e-10)


def test_sparse_path_agrees_with_dense(monkeypatch):
    d = sim()
    m = quiet("y ~ x + (1|g) + (1|h)", d)
    from vcomp.mixed import criterion
    monkeypatch.setattr(criterion, "DENSE_MAX_Q", 0)
    gk = criterion.GeneralKernel(m._re_terms, m._cp)
    assert not gk.dense
    assert m._std.criterion(gk(m._theta, True), True, m.nobs, 2) == pytest.approx(m.reml_criterion, rel=1e-10)


def test_fitted_residuals_predict_and_Z():
    d = sim()
    m = quiet("y ~ x + (x|g)", d)
    assert np.allclose(m.fitted() + m.residuals(), d["y"])
    assert np.allclose(m.predict(d), m.fitted())
    new = d.iloc[:3].copy()
    new["g"] = "unseen"
    assert np.allclose(m.predict(new), m.fixef["Intercept"] + m.fixef["x"] * new["x"])
    assert m.Z.shape == (m.nobs, 60) and sp.issparse(m._Lambda())
    # V-based GLS check on a small problem: beta = (X'V^-1X)^-1 X'V^-1 y
    Z, L = m.Z.toarray(), m._Lambda().toarray()
    V = m.sigma ** 2 * (np.eye(m.nobs) + Z @ L @ L.T @ Z.T)
    Vi = np.linalg.inv(V)
    X = m._X
    beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ m._y)
    assert np.allclose(beta, m.fixef.to_numpy(), atol=1e-8)
    assert np.allclose(np.linalg.inv(X.T @ Vi @ X), m.vcov.to_numpy(), rtol=1e-6)
    # BLUP: b = G Z' V^-1 (y - X beta)
    b = m.sigma ** 2 * L @ L.T @ Z.T @ Vi @ (m._y - X @ beta)
    assert np.allclose(b, m.b, atol=1e-7)


def test_theta_layout_and_private_attrs():
    m = quiet("y ~ x + (x|g) + (1|h)", sim())
    t = m._re_terms
    assert [r.group for r in t] == ["g", "h"]  # decreasing number of levels
    assert t[0].theta_slice == slice(0, 3) and t[1].theta_slice == slice(3, 4)
    assert t[0].coef_names == ["(Intercept)", "x"] and t[0].k == 2 and t[0].nlev == 30
    assert m._fixed.colnames == ["Intercept", "x"] and list(m._fixed.assign) == [-1, 0]
    assert m._criterion(m.theta) == pytest.approx(m.reml_criterion)


def test_uncorrelated_names():
    m = quiet("y ~ x + (x||g)", sim())
    assert list(m.varcorr["grp"]) == ["g", "g.1", "Residual"]
    assert list(m.ranef["g"].columns) == ["Intercept", "x"]


def test_dropped_rows_and_no_mutation():
    d = sim()
    d.loc[3, "x"] = np.nan
    before = d.copy()
    with pytest.warns(DroppedRowsWarning):
        m = vcomp.lmm("y ~ x + (1|g)", d)
    assert m.nobs == len(d) - 1 and m.n_dropped == 1
    pd.testing.assert_frame_equal(d, before)


def test_bad_input():
    d = sim()
    with pytest.raises(DataError, match="levels"):
        vcomp.lmm("y ~ x + (1|id)", d.assign(id=np.arange(len(d))))
    with pytest.raises(DataError, match="not numeric"):
        vcomp.lmm("g ~ x + (1|h)", d)
    with pytest.raises(DataError, match="at least 2"):
        vcomp.lmm("y ~ x + (1|one)", d.assign(one="a"))
    with pytest.raises(FormulaError):
        vcomp.lmm("y ~ x", d)


def test_integer_grouping_factor_and_summary():
    d = sim()
    d["gi"] = d["g"].str[1:].astype(int)
    a = quiet("y ~ x + (1|g)", d)
    b = quiet("y ~ x + (1|gi)", d)
    assert a.reml_criterion == pytest.approx(b.reml_criterion)
    s = str(a)
    assert "REML criterion" in s and "Random effects" in s and "Fixed effects" in s and "Residual" in s


def test_singular_warns():
    rng = np.random.default_rng(5)
    d = pd.DataFrame({"y": rng.normal(size=40), "g": np.repeat(list("abcdefgh"), 5)})
    with pytest.warns(SingularFitWarning):
        m = vcomp.lmm("y ~ 1 + (1|g)", d)
    assert m.singular and m.theta[0] == 0.0


def test_rank_deficient_fixed_dropped():
    d = sim()
    d["x2"] = 2 * d["x"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("y ~ x + x2 + (1|g)", d)
    assert list(m.fixef.index) == ["Intercept", "x"]
