"""The per-level block path of the inference ingredients (one grouping factor) equals the dense
``q x q`` path: every ingredient and the final df / F / SE, on several single-factor models."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp.inference import _pieces
from vcomp.inference.kenward_roger import kr_1d, kr_md
from vcomp.inference.kernel import model_pieces
from vcomp.inference.satterthwaite import satterthwaite_1d, satterthwaite_md
from vcomp.mixed.crossprod import single_factor
from vcomp.mixed.reterm import z_matrix

RTOL = 1e-9


def _fit(formula, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vcomp.lmm(formula, data)


def _data(g=12, per=(4, 12), seed=3, slope_sd=0.4, mean=5.0):
    """Unbalanced groups (``per`` = range of rows per level), a covariate and a 3-level treatment."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(per[0], per[1] + 1, g)
    cl = np.repeat(np.arange(g), sizes)
    n = cl.size
    x = rng.normal(size=n)
    z = rng.uniform(-1, 1, n)
    trt = rng.integers(0, 3, g)[cl]
    y = (mean + 0.5 * x + 0.3 * trt + rng.normal(size=g)[cl] + slope_sd * rng.normal(size=g)[cl] * x
         + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": x, "z": z, "trt": np.array(["a", "b", "c"])[trt],
                         "cl": ["g%02d" % c for c in cl]})


def _singular_data():
    d = _data(g=10, per=(5, 8), seed=11, slope_sd=0.0)
    rng = np.random.default_rng(5)
    d["y"] = 2.0 + 0.5 * d["x"] + rng.normal(size=len(d))  # no group variance at all
    return d


CASES = {
    "intercept": ("y ~ x + trt + (1|cl)", _data),
    "correlated_slopes": ("y ~ x + trt + (x|cl)", _data),
    "uncorrelated": ("y ~ x + trt + (x||cl)", _data),
    "two_terms_same_factor": ("y ~ x*trt + (1|cl) + (0+x|cl)", _data),
    "three_coefs_unbalanced": ("y ~ x + z + trt + (x + z|cl)", lambda: _data(g=15, per=(3, 20), seed=7)),
    "singular": ("y ~ x + trt + (x|cl)", _singular_data),
}


def _rel(a, b, scale=None):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    s = np.max(np.abs(b)) if scale is None else scale
    return float(np.max(np.abs(a - b)) / max(s, 1e-300)) if a.size else 0.0


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    formula, make = CASES[request.param]
    m = _fit(formula, make())
    args = (m._cp, m._re_terms, m._theta, m.sigma_int)
    dense = _pieces.model_pieces_auto(*args, path="dense")
    block = _pieces.model_pieces_auto(*args, path="block")
    return request.param, m, dense, block


def test_single_factor_detection(case):
    name, m, _, _ = case
    assert single_factor(m._re_terms) and m._cp.block
    assert not single_factor([])


def test_singular_case_is_singular():
    m = _fit(CASES["singular"][0], _singular_data())
    assert m.singular


def test_every_ingredient_matches(case):
    name, m, dn, bl = case
    assert [v.name for v in bl.varpars] == [v.name for v in dn.varpars]
    np.testing.assert_allclose(bl.gamma, dn.gamma, rtol=0, atol=0)
    assert _rel(bl.beta, dn.beta) < RTOL
    assert _rel(bl.Phi, dn.Phi) < RTOL
    for a, b in zip(bl.P, dn.P):
        assert _rel(a, b) < RTOL
    assert set(bl.Q) == set(dn.Q)
    for k in dn.Q:
        assert _rel(bl.Q[k], dn.Q[k]) < RTOL, k
    assert _rel(bl.IE2, dn.IE2) < RTOL
    assert _rel(bl.Hobs, dn.Hobs) < RTOL
    # the gradient vanishes at an interior optimum: compare on the scale of its terms
    assert _rel(bl.grad, dn.grad, scale=np.max(np.abs(np.diag(dn.IE2)))) < RTOL
    kb, kd = _pieces.kr_vcov_pieces(bl), _pieces.kr_vcov_pieces(dn)
    assert _rel(kb["PhiA"], kd["PhiA"]) < RTOL
    assert _rel(kb["W"], kd["W"]) < 1e-7
    sb, sd = _pieces.satterthwaite_pieces(bl), _pieces.satterthwaite_pieces(dn)
    assert _rel(sb["hessian"], sd["hessian"]) < RTOL
    assert _rel(sb["jac"], sd["jac"]) < RTOL
    assert _rel(sb["vcov_varpar"], sd["vcov_varpar"]) < 1e-7


def test_final_results_match(case):
    name, m, dn, bl = case
    p = len(dn.beta)
    tol = 1e-7 if name == "singular" else RTOL
    for j in range(p):
        L = np.eye(p)[j]
        for fun in (kr_1d, satterthwaite_1d):
            rb, rd = fun(bl, L), fun(dn, L)
            for key in ("estimate", "se", "df", "t"):
                assert rb[key] == pytest.approx(rd[key], rel=tol, abs=1e-12), (fun.__name__, j, key)
    L = np.eye(p)[1:]
    for fun in (kr_md, satterthwaite_md):
        rb, rd = fun(bl, L), fun(dn, L)
        assert rb["num_df"] == rd["num_df"]
        for key in ("den_df", "F"):
            assert rb[key] == pytest.approx(rd[key], rel=tol), (fun.__name__, key)


def test_model_uses_block_path_and_tables_match(case, monkeypatch):
    """anova / coef_table through the model (block path) equal the dense-path tables."""
    name, m, dn, bl = case
    m.__dict__.pop("_inference_cache", None)
    called = []
    real = _pieces.compute_pieces
    monkeypatch.setattr(_pieces, "compute_pieces", lambda *a, **k: called.append(1) or real(*a, **k))
    tabs_block = [m.anova("KR"), m.anova("satterthwaite"), m.coef_table("KR"), m.coef_table()]
    assert called == []  # the dense path was not used
    monkeypatch.undo()
    m.__dict__.pop("_inference_cache", None)
    pc = model_pieces(m)
    m._inference_cache["pieces"] = _pieces.model_pieces_auto(m._cp, m._re_terms, m._theta, m.sigma_int,
                                                             path="dense")
    m._inference_cache["pieces"].beta = pc.beta
    tabs_dense = [m.anova("KR"), m.anova("satterthwaite"), m.coef_table("KR"), m.coef_table()]
    tol = 1e-7 if name == "singular" else RTOL
    for tb, td in zip(tabs_block, tabs_dense):
        pd.testing.assert_frame_equal(tb, td, rtol=tol, atol=1e-300)
    m.__dict__.pop("_inference_cache", None)


def test_multi_factor_uses_dense_path():
    d = _data()
    d["blk"] = np.where(np.arange(len(d)) % 2 == 0, "b1", "b2")
    d.loc[np.arange(len(d)) % 3 == 0, "blk"] = "b3"
    m = _fit("y ~ x + (1|cl) + (1|blk)", d)
    assert not single_factor(m._re_terms) and not m._cp.block
    with pytest.raises(ValueError):
        _pieces.model_pieces_auto(m._cp, m._re_terms, m._theta, m.sigma_int, path="block")


def test_level_crossprods_match_z():
    formula, make = CASES["two_terms_same_factor"]
    m = _fit(formula, make())
    cp = m._cp
    Z = z_matrix(m._re_terms, len(m._y)).toarray()
    # dense Z is term-major; per level the block form puts the terms side by side
    g, K = cp.S.shape[0], cp.S.shape[1]
    cols = [t.offset + lev * t.k + c for lev in range(g) for t in m._re_terms for c in range(t.k)]
    Zl = Z[:, cols].reshape(len(m._y), g, K)
    yi = m._std.y(m._y)
    np.testing.assert_allclose(cp.S, np.einsum("nla,nlb->lab", Zl, Zl), atol=1e-10)
    np.testing.assert_allclose(cp.ZX, np.einsum("nla,np->lap", Zl, m._Xi), atol=1e-10)
    np.testing.assert_allclose(cp.Zy, np.einsum("nla,n->la", Zl, yi), atol=1e-10)
    gen = cp.general(m._re_terms)
    np.testing.assert_allclose(gen.ZtZ.toarray(), Z.T @ Z, atol=1e-10)
    np.testing.assert_allclose(gen.ZtX, Z.T @ m._Xi, atol=1e-10)
