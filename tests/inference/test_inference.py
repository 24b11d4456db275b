"""Satterthwaite / Kenward-Roger inference (vcomp.inference): frozen R values, balanced-design
identities, singular fits, caching, contrast validation, and the cross-product maths against a
brute-force dense implementation of pbkrtest's formulas on a small case."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp._errors import VcompError
from vcomp.inference import anova_table, coef_table, contrast_table, contrast_test, vcov_kr
from vcomp.inference import _pieces
from vcomp.inference.kernel import model_pieces

REF = os.path.join(os.path.dirname(__file__), "..", "reference")


def _fit(formula, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vcomp.lmm(formula, data)


def _ref_fit(name):
    with open(os.path.join(REF, name + ".json")) as fh:
        r = json.load(fh)
    d = pd.read_csv(os.path.join(REF, r["csv"] + ".csv"))
    facs = set(r.get("factors") or [])
    for t in r.get("terms") or []:
        facs.update(t.split(":"))
    for v in facs:
        if v in d.columns:
            d[v] = d[v].astype(str)
    return r, _fit(r["lmer"], d)


@pytest.fixture(scope="module")
def oats():
    return _fit("yield ~ variety*nitro + (1|block) + (1|block:variety)", vcomp.datasets.load("oats"))


# ---------------------------------------------------------------- frozen R values
def test_stroup_frozen_values():
    """lmerTest 3.1-3 / pbkrtest 0.5.2 on the SAS PROC MIXED split-plot (stroup_splitplot.json)."""
    r, m = _ref_fit("stroup_splitplot")
    ct = coef_table(m, "satterthwaite")
    assert ct.loc["Intercept", "df"] == pytest.approx(4.67824471610184, rel=1e-4)
    assert ct.loc["Intercept", "se"] == pytest.approx(4.66741034589465, rel=1e-5)
    kr = coef_table(m, "kenward-roger")
    assert kr.iloc[1]["df"] == pytest.approx(8.80660210240899, rel=1e-4)
    an = anova_table(m, "satterthwaite")
    assert an.loc["a", "den_df"] == pytest.approx(6.0, rel=1e-4)
    assert an.loc["a", "F"] == pytest.approx(4.06957403759055, rel=1e-5)


def test_shrink_base_frozen_values():
    """Correlated random slopes: KR adjusted SE differs from the model SE (shrink_base.json)."""
    r, m = _ref_fit("shrink_base")
    kr = coef_table(m, "KR")
    want = {c["name"]: c for c in r["reml"]["coef_kenward_roger"]}
    assert kr.loc["x", "se"] == pytest.approx(want["x"]["se"], rel=2e-3)
    assert kr.loc["x", "df"] == pytest.approx(want["x"]["df"], rel=2e-3)
    st = coef_table(m)
    want = {c["name"]: c for c in r["reml"]["coef_satterthwaite"]}
    assert st.loc["x", "df"] == pytest.approx(want["x"]["df"], rel=2e-3)


@pytest.mark.parametrize("name", ["sim_splitplot_drop25", "john_alpha", "mm_crossed", "mm_uncorr_slopes"])
def test_reference_cases(name):
    """Coefficient tables and type III / type I anova against R (tolerance 2e-3, 5e-2 singular)."""
    r, m = _ref_fit(name)
    ref = r["reml"]
    dtol = 5e-2 if ref["singular"] else 2e-3
    for method, key in (("satterthwaite", "satterthwaite"), ("kenward-roger", "kenward_roger")):
        ct = coef_table(m, method)
        got = sorted(zip(ct["estimate"], ct["se"], ct["df"]))
        want = sorted((c["estimate"], c["se"], c["df"]) for c in ref["coef_" + key])
        for g, w in zip(got, want):
            assert g[1] == pytest.approx(w[1], rel=2e-3)
            assert g[2] == pytest.approx(w[2], rel=dtol, abs=1e-3)
        for typ, akey in ((3, "anova_"), (1, "anova1_")):
            if akey + key not in ref:
                continue
            an = {":".join(sorted(k.split(":"))): v for k, v in anova_table(m, method, typ).iterrows()}
            for term, w in ref[akey + key].items():
                g = an[":".join(sorted(term.split(":")))]
                assert int(g["num_df"]) == w["num_df"]
                assert g["den_df"] == pytest.approx(w["den_df"], rel=dtol, abs=1e-3)
                assert g["F"] == pytest.approx(w["F"], rel=2e-3)


# ---------------------------------------------------------------- balanced designs
@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger"])
def test_oats_stratum_df(oats, ddf):
    an = anova_table(oats, ddf)
    assert an.loc["variety", "den_df"] == pytest.approx(10.0, rel=1e-6)
    assert an.loc["nitro", "den_df"] == pytest.approx(45.0, rel=1e-6)
    assert an.loc["variety:nitro", "den_df"] == pytest.approx(45.0, rel=1e-6)
    assert list(an["num_df"]) == [2, 3, 6]


def test_oats_kr_equals_satterthwaite_F(oats):
    """Balanced, interior fit: KR's scaled F equals the unadjusted Wald F (lambda = 1, Phi_A = Phi)."""
    s = anova_table(oats, "satterthwaite")
    k = anova_table(oats, "kenward-roger")
    np.testing.assert_allclose(s["F"], k["F"], rtol=1e-6)
    np.testing.assert_allclose(vcov_kr(oats).values, oats.vcov.values, rtol=1e-6, atol=1e-9)


def test_anova_types_oats(oats):
    """Balanced: types I, II and III agree."""
    a1, a2, a3 = (anova_table(oats, "satterthwaite", t) for t in (1, "II", "III"))
    for a in (a1, a2):
        np.testing.assert_allclose(a.loc[a3.index, "F"], a3["F"], rtol=1e-8)
        np.testing.assert_allclose(a.loc[a3.index, "den_df"], a3["den_df"], rtol=1e-6)


# ---------------------------------------------------------------- singular fits
@pytest.mark.parametrize("name", ["mm_boundary", "gomez_splitsplit"])
def test_singular_fit_never_crashes(name):
    r, m = _ref_fit(name)
    for ddf in ("satterthwaite", "kenward-roger"):
        ct = coef_table(m, ddf)
        assert np.all(np.isfinite(ct["df"])) and np.all(ct["df"] > 0)
        an = anova_table(m, ddf)
        assert np.all(np.isfinite(an["F"]))
    want = {c["name"]: c["df"] for c in r["reml"]["coef_satterthwaite"]}
    got = coef_table(m)
    for name_, df in want.items():
        key = "Intercept" if name_ == "(Intercept)" else name_
        if key in got.index:
            assert got.loc[key, "df"] == pytest.approx(df, rel=5e-2)


# ---------------------------------------------------------------- caching
def test_ingredients_cached(oats, monkeypatch):
    model_pieces(oats)
    calls = []
    real = _pieces.model_pieces_auto
    monkeypatch.setattr("vcomp.inference.kernel.model_pieces_auto", lambda *a, **k: calls.append(1) or real(*a, **k))
    anova_table(oats, "kenward-roger")
    anova_table(oats, "kenward-roger")
    anova_table(oats, "satterthwaite", 1)
    coef_table(oats, "KR")
    contrast_table(oats, np.eye(len(oats.fixef))[1])
    assert calls == []
    assert oats._inference_cache["n_computed"] == 1


def test_model_methods_delegate(oats):
    pd.testing.assert_frame_equal(oats.coef_table(ddf="Kenward-Roger"), coef_table(oats, "kenward-roger"))
    pd.testing.assert_frame_equal(oats.anova(), anova_table(oats))


# ---------------------------------------------------------------- contrasts
def test_contrast_forms_agree(oats):
    names = list(oats.fixef.index)
    j = names.index("nitro[T.0.6cwt]")
    L = np.zeros(len(names))
    L[j] = 1.0
    a = contrast_table(oats, L)
    b = contrast_table(oats, {"nitro[T.0.6cwt]": 1.0})
    c = contrast_table(oats, pd.Series({"nitro[T.0.6cwt]": 1.0}))
    for x in (b, c):
        pd.testing.assert_frame_equal(a, x)
    ct = coef_table(oats)
    assert a["den_df"].iloc[0] == pytest.approx(ct.loc["nitro[T.0.6cwt]", "df"])
    assert a["F"].iloc[0] == pytest.approx(ct.loc["nitro[T.0.6cwt]", "t"] ** 2)
    assert list(a.columns[:4]) == ["num_df", "den_df", "F", "p"]


def test_multirow_contrast_matches_anova(oats):
    """The F test of the nitro main-effect rows equals the type III anova row (balanced)."""
    names = list(oats.fixef.index)
    L = np.zeros((3, len(names)))
    for i, lv in enumerate(["0.2cwt", "0.4cwt", "0.6cwt"]):
        L[i, names.index("nitro[T.%s]" % lv)] = 1.0
        for v in ("Marvellous", "Victory"):
            L[i, names.index("variety[T.%s]:nitro[T.%s]" % (v, lv))] = 1.0 / 3
    for ddf in ("satterthwaite", "kenward-roger"):
        r = contrast_test(oats, L, ddf)
        a = anova_table(oats, ddf).loc["nitro"]
        assert r["num_df"] == 3
        assert r["F"] == pytest.approx(a["F"], rel=1e-8)
        assert r["den_df"] == pytest.approx(a["den_df"], rel=1e-6)


def test_contrast_errors(oats):
    p = len(oats.fixef)
    with pytest.raises(VcompError, match="shape"):
        contrast_table(oats, np.ones(p + 1))
    with pytest.raises(VcompError, match="unknown coefficient 'nitro'"):
        contrast_table(oats, {"nitro": 1})
    with pytest.raises(VcompError, match="all zeros"):
        contrast_table(oats, np.zeros(p))
    with pytest.raises(VcompError, match="ddf must be"):
        coef_table(oats, "bogus")
    with pytest.raises(VcompError, match="type must be"):
        anova_table(oats, "satterthwaite", 4)
    with pytest.raises(ValueError):
        contrast_table(oats, "abc")


@pytest.mark.parametrize("spelling", ["Kenward-Roger", "KR", "kenward_roger", "kr"])
def test_ddf_spellings(oats, spelling):
    pd.testing.assert_frame_equal(coef_table(oats, spelling), coef_table(oats, "kenward-roger"))


def test_type3_coding_independent():
    """Type III F and df do not depend on the coding (here: another reference level of each factor)."""
    d = pd.read_csv(os.path.join(REF, "sim_splitplot_drop25.csv"))
    for v in ("A", "B", "block"):
        d[v] = d[v].astype(str)
    m1 = _fit("y ~ A*B + (1|block) + (1|block:A)", d)
    d2 = d.copy()
    for v in ("A", "B"):
        last = sorted(d2[v].unique())[-1]
        d2[v] = np.where(d2[v] == last, "0" + last, d2[v])   # the last level becomes the baseline
    m2 = _fit("y ~ A*B + (1|block) + (1|block:A)", d2)
    assert list(m1.fixef.index) != list(m2.fixef.index)
    for ddf in ("satterthwaite", "kenward-roger"):
        a1, a2 = anova_table(m1, ddf), anova_table(m2, ddf)
        np.testing.assert_allclose(a1["F"].values, a2["F"].values, rtol=1e-5)
        # Satterthwaite's multi-df den_df depends on the rows of L (as in lmerTest): close, not equal
        np.testing.assert_allclose(a1["den_df"].values, a2["den_df"].values, rtol=2e-3)


# ---------------------------------------------------------------- maths vs dense brute force
def _dense_reference(X, y, Z, terms, theta, sigma):
    """pbkrtest's vcovAdj and the REML derivatives with explicit n x n matrices (tiny n only)."""
    n = len(y)
    Zd = Z.toarray()
    s2 = sigma ** 2
    G, gam = [], []
    for b in terms:
        Lt = b.lam(theta[b.theta_slice])
        cov = s2 * Lt @ Lt.T
        Zt = Zd[:, b.offset:b.offset + b.q]
        for j in range(b.k):
            for i in range(j, b.k):
                E = np.zeros((b.k, b.k))
                E[i, j] = E[j, i] = 1
                G.append(Zt @ np.kron(np.eye(b.nlev), E) @ Zt.T)
                gam.append(cov[i, j])
    G.append(np.eye(n))
    gam.append(s2)
    Sig = sum(g * Gi for g, Gi in zip(gam, G))
    Si = np.linalg.inv(Sig)
    Phi = np.linalg.inv(X.T @ Si @ X)
    Pm = Si - Si @ X @ Phi @ X.T @ Si
    ng = len(G)
    P = [-X.T @ Si @ Gi @ Si @ X for Gi in G]
    IE2 = np.array([[np.trace(Pm @ G[a] @ Pm @ G[c]) for c in range(ng)] for a in range(ng)])
    Hobs = np.array([[-IE2[a, c] + 2 * y @ Pm @ G[a] @ Pm @ G[c] @ Pm @ y for c in range(ng)]
                     for a in range(ng)])
    W = 2 * np.linalg.inv(IE2)
    U = sum(W[a, c] * (X.T @ Si @ G[a] @ Si @ G[c] @ Si @ X - P[a] @ Phi @ P[c])
            for a in range(ng) for c in range(ng))
    return Phi, P, IE2, Hobs, Phi + 2 * Phi @ U @ Phi


def test_cross_product_maths_match_dense():
    rng = np.random.default_rng(1)
    n, g = 60, 8
    cl = rng.integers(0, g, n)
    bl = rng.integers(0, 3, n)
    x = rng.normal(size=n)
    d = pd.DataFrame({"cl": cl.astype(str), "bl": bl.astype(str), "x": x,
                      "y": 1 + 0.5 * x + rng.normal(size=g)[cl] + 0.3 * rng.normal(size=g)[cl] * x
                      + rng.normal(size=3)[bl] + rng.normal(size=n)})
    m = _fit("y ~ x + (x|cl) + (1|bl)", d)
    from vcomp.mixed.reterm import z_matrix

    Z = z_matrix(m._re_terms, n)  # internal (term-scaled) columns, as the cross-products
    pc = _pieces.compute_pieces(m._cp, m._re_terms, m._theta, m.sigma_int)
    Phi, P, IE2, Hobs, PhiA = _dense_reference(m._Xi, m._std.y(m._y), Z, m._re_terms, m._theta, m.sigma_int)
    np.testing.assert_allclose(pc.Phi, Phi, rtol=1e-8)
    np.testing.assert_allclose(m._std.vcov(pc.Phi), m.vcov.values, rtol=1e-4)
    for a, b in zip(pc.P, P):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10 * np.abs(b).max())
    np.testing.assert_allclose(pc.IE2, IE2, rtol=1e-7)
    np.testing.assert_allclose(pc.Hobs, Hobs, rtol=1e-6, atol=1e-8 * np.abs(Hobs).max())
    np.testing.assert_allclose(_pieces.kr_vcov_pieces(pc)["PhiA"], PhiA, rtol=1e-7)
    # at an interior REML optimum the deviance gradient in gamma vanishes
    if not m.singular:
        assert np.max(np.abs(pc.grad)) < 1e-3 * np.max(np.abs(np.diag(pc.IE2)))
