"""Profile and Wald confidence intervals of mixed models (vcomp.mixed.profile) against frozen exact R roots."""
from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import _vcref  # noqa: E402
import vcomp  # noqa: E402
from vcomp.mixed.fitparts import re_layout  # noqa: E402
from vcomp.mixed.profile import SdCor, profile_evaluations, vc_row_names  # noqa: E402

CASES = _vcref.cases("confint")
PROFILE = [(r, ref, reml) for r, ref in CASES for reml in (True, False)]


def _fit(r, ref, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vcomp.lmm(ref["lmer"], _vcref.data(r), reml=reml)


def _canon(name: str) -> str:
    """``g.1:x`` -> ``g:x``; ``(Intercept)`` -> ``Intercept``; factor order in the group free."""
    parts = name.replace("(Intercept)", "Intercept").split(":")
    return name if name == "Residual" else ":".join(parts)


def _vc_key(name: str, fit) -> frozenset:
    """Match a confint row to an R row: the group's factors as a set, then the coefficient names."""
    if name == "Residual":
        return frozenset(["Residual"])
    groups = {t.group for t in re_layout(fit)}
    parts = name.replace("(Intercept)", "Intercept").split(":")
    for g in sorted(groups, key=lambda g: -len(g.split(":"))):
        k = len(g.split(":"))
        if set(parts[:k]) == set(g.split(":")):
            return frozenset([frozenset(g.split(":"))] + [("v", p) for p in parts[k:]])
    raise AssertionError(name)


@pytest.mark.parametrize("r, ref, reml", PROFILE, ids=["%s-%s" % (r["name"], "reml" if m else "ml")
                                                        for r, _, m in PROFILE])
def test_profile_vs_exact_r_roots(r, ref, reml):
    fit = _fit(r, ref, reml)
    ci = fit.confint(level=ref["level"], method="profile")
    p = fit.fixef.size
    vc, fe = ci.iloc[:len(ci) - p], ci.iloc[len(ci) - p:]
    got = {_vc_key(k, fit): v for k, v in vc.iterrows()}
    want = ref["confint"]["profile"]["reml" if reml else "ml"]["varcomp"]
    probs = []
    sc = max(abs(x["estimate"]) for x in want)
    for x in want:
        g = got[_vc_key(x["name"], fit)]
        for side in ("estimate", "lower", "upper"):
            if not _vcref.rel(g[side], x[side], 2e-3, 1e-5 * sc):
                probs.append("%s %s %.7g vs R %.7g" % (x["name"], side, g[side], x[side]))
    # fixed rows: ML profile, whatever the fit (matched by position: R's model.matrix order)
    for (name, g), x in zip(fe.iterrows(), ref["confint"]["profile"]["fixed"]):
        width = x["upper"] - x["lower"]
        for side in ("lower", "upper"):
            if not abs(g[side] - x[side]) <= max(2e-3 * abs(x[side]), 1e-4 * width):
                probs.append("%s %s %.7g vs R %.7g" % (name, side, g[side], x[side]))
    assert not probs, "\n".join(probs)


@pytest.mark.parametrize("r, ref", CASES, ids=_vcref.ids(CASES))
def test_wald_vs_r(r, ref):
    for reml in (True, False):
        fit = _fit(r, ref, reml)
        ci = fit.confint(method="wald")
        fe = ci.iloc[len(ci) - fit.fixef.size:]
        for (name, g), x in zip(fe.iterrows(), ref["confint"]["wald"]["reml" if reml else "ml"]):
            assert g["estimate"] == pytest.approx(x["estimate"], rel=1e-5, abs=1e-8)
            assert g["lower"] == pytest.approx(x["lower"], rel=2e-3)
            assert g["upper"] == pytest.approx(x["upper"], rel=2e-3)
        assert ci.iloc[:len(ci) - fit.fixef.size][["lower", "upper"]].isna().all().all()


@pytest.fixture(scope="module")
def oats():
    return vcomp.datasets.load("oats")


def test_index_and_scale(oats):
    fit = vcomp.lmm("yield ~ nitro + (1|block) + (1|block:variety)", oats)
    ci = fit.confint(method="wald")
    assert list(ci.index[:3]) == vc_row_names(fit) == ["block:variety:(Intercept)", "block:(Intercept)", "Residual"]
    assert list(ci.index[3:]) == list(fit.fixef.index)
    assert np.allclose(ci["estimate"].iloc[:3], fit.varcorr["sdcor"])
    z = stats.norm.ppf(0.975)
    se = np.sqrt(np.diag(fit.vcov))
    assert np.allclose(ci["upper"].iloc[3:], fit.fixef + z * se)


def test_profile_uses_stored_crossproducts(oats, monkeypatch):
    """The profile never goes back to the data: no new cross-products, no refit."""
    fit = vcomp.lmm("yield ~ nitro + (1|block) + (1|block:variety)", oats)
    import vcomp.mixed.crossprod as cp
    import vcomp.mixed.model as mm

    def boom(*a, **k):
        raise AssertionError("the profile recomputed cross-products or refitted")

    monkeypatch.setattr(cp, "crossproducts", boom)
    monkeypatch.setattr(mm, "fit", boom)
    ci = fit.confint(level=0.9)
    assert ci.loc["Residual", "lower"] < fit.sigma < ci.loc["Residual", "upper"]


def test_profile_bound_is_a_root(oats):
    """At a bound of sigma, the criterion minimised over the other parameter exceeds its minimum by
    exactly the chi-square cut-off."""
    from scipy.optimize import minimize_scalar

    from vcomp.mixed.fitparts import criterion_pieces, profiled_deviance

    fit = vcomp.lmm("yield ~ nitro + (1|block)", oats)
    ci = fit.confint(level=0.95)
    sd_hat = ci.loc["block:(Intercept)", "estimate"]
    for v in ci.loc["Residual", ["lower", "upper"]]:
        def d(sd_block, v=v):
            return profiled_deviance(*criterion_pieces(fit, np.array([sd_block / v])), fit.nobs, True, sigma=v)
        best = minimize_scalar(d, bounds=(0, 20 * sd_hat), method="bounded", options={"xatol": 1e-10}).fun
        assert best - fit.reml_criterion == pytest.approx(stats.chi2.ppf(0.95, 1), abs=2e-4)


def test_sdcor_round_trip():
    d = vcomp.simulate.random_slopes(n_cluster=30, obs_per_cluster=8, seed=2)
    fit = vcomp.lmm("y ~ x + (x|cluster)", d)
    sc = SdCor(re_layout(fit))
    theta, sigma = sc.to_theta(sc.from_fit(fit.varcorr))
    assert sigma == pytest.approx(fit.sigma)
    assert np.allclose(theta, fit.theta, atol=1e-10)
    assert sc.to_theta(np.array([1.0, 1.5, 2.0, 1.0])) is None  # |cor| > 1
    assert sc.kind == ["sd", "sd", "cor", "sigma"]


def test_bad_options(oats):
    fit = vcomp.lmm("yield ~ nitro + (1|block)", oats)
    with pytest.raises(vcomp.VcompError, match="profile"):
        fit.confint(method="boot")
    with pytest.raises(vcomp.VcompError, match="level"):
        fit.confint(level=95)


def test_printing(oats):
    ci = vcomp.lmm("yield ~ nitro + (1|block)", oats).confint()
    assert "profile" in str(ci) and "Residual" in str(ci)
    assert ci.to_markdown().count("|") > 10 and "\\bottomrule" in ci.to_latex()
    assert isinstance(ci.loc[["Residual"]], pd.DataFrame)


def test_parm_selects_rows(oats):
    fit = vcomp.lmm("yield ~ nitro + (1|block)", oats)
    full = fit.confint()
    vc = fit.confint(parm="theta_")
    assert list(vc.index) == ["block:(Intercept)", "Residual"]
    pd.testing.assert_frame_equal(pd.DataFrame(vc), pd.DataFrame(full.loc[vc.index]), rtol=1e-6)
    one = fit.confint(parm=["Residual", "Intercept"])
    assert list(one.index) == ["Residual", "Intercept"]
    assert np.allclose(one[["lower", "upper"]], full.loc[one.index, ["lower", "upper"]], rtol=1e-6)
    assert list(fit.confint(method="wald", parm="beta_").index) == list(fit.fixef.index)
    with pytest.raises(vcomp.VcompError, match="theta_"):
        fit.confint(parm="sigma")


# ------------------------------------------------------------------ cost of a profile
OATS_F = "yield ~ nitro*variety + (1|block/variety)"
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference", "profile",
                       "oats_profile.json")) as _fh:
    OATS_REF = json.load(_fh)  # exact R roots (tests/reference/profile/oats_profile.R)
#: criterion evaluations (kernel calls) of one parameter's two bounds
BUDGET = 40


def _check_bounds(fit, ci, prof, fixed, rel):
    """confint rows against frozen exact roots (variance rows matched by group, fixed rows by position)."""
    p = fit.fixef.size
    vc, fe = ci.iloc[:len(ci) - p], ci.iloc[len(ci) - p:]
    got = {_vc_key(k, fit): v for k, v in vc.iterrows()}
    probs = []
    for x in prof:
        g = got[_vc_key(x["name"], fit)]
        for side in ("lower", "upper"):
            if not _vcref.rel(g[side], x[side], rel, 1e-8):
                probs.append("%s %s %.9g vs R %.9g" % (x["name"], side, g[side], x[side]))
    for (name, g), x in zip(fe.iterrows(), fixed):
        for side in ("lower", "upper"):
            if not _vcref.rel(g[side], x[side], rel):
                probs.append("%s %s %.9g vs R %.9g" % (name, side, g[side], x[side]))
    return probs


@pytest.mark.parametrize("reml", [True, False], ids=["reml", "ml"])
def test_oats_profile_cost_and_exact_roots(oats, reml):
    """Each parameter of the oats split plot costs a few dozen criterion evaluations, and its bounds are
    the exact roots R finds (to 1e-5, far inside the 2e-3 of the acceptance check)."""
    fit = vcomp.lmm(OATS_F, oats, reml=reml)
    pe = profile_evaluations(fit, 0.95)
    assert pe["evaluations"].max() <= BUDGET, pe
    assert pe.attrs["setup"] <= 3 * len(fit.theta) + 8  # Hessians at the optimum (sdcor scale; theta for ML)
    ci = fit.confint(0.95)
    assert np.array_equal(pe[["lower", "upper"]].to_numpy(), ci[["lower", "upper"]].to_numpy())
    ref = OATS_REF["confint"]["profile"]
    probs = _check_bounds(fit, ci, ref["reml" if reml else "ml"]["varcomp"], ref["fixed"], 1e-5)
    assert not probs, "\n".join(probs)


def _on_boundary(fit) -> bool:
    vc = fit.varcorr
    sd = vc["sdcor"][vc["var2"].isna() & (vc["grp"] != "Residual")]
    cor = vc["sdcor"][vc["var2"].notna()]
    return bool((sd <= 1e-6 * fit.sigma).any() or (cor.abs() >= 1 - 1e-6).any())


@pytest.mark.parametrize("r, ref", CASES, ids=_vcref.ids(CASES))
def test_profile_cost_on_frozen_cases(r, ref):
    """Every parameter's profile is a few dozen evaluations (<= 40; <= 60 with correlated random slopes,
    whose correlation profile can run into +-1 with the slope SD at zero), the bounds unchanged: the
    exact R roots to 1e-5.
    A fit on the boundary (an SD at zero, a correlation at +-1) takes the derivative-free profile
    (vcomp.mixed.profile_robust): its rows (the fixed rows: when the ML fit is on the boundary) are
    checked for their bounds only."""
    fits = {reml: _fit(r, ref, reml) for reml in (True, False)}
    for reml, fit in fits.items():
        pe = profile_evaluations(fit, ref["level"])
        p = fit.fixef.size
        fast = [not _on_boundary(fit)] * (len(pe) - p) + [not _on_boundary(fits[False])] * p
        ev = pe["evaluations"].to_numpy()[fast]
        # correlated random slopes: a correlation whose profile runs into +-1 with a slope SD at zero
        slopes = any(t.k > 1 and t.correlated for t in re_layout(fit))
        assert ev.max(initial=0) <= (60 if slopes else BUDGET), pe
        assert ev.size == 0 or ev.mean() <= 36, pe
        prof = ref["confint"]["profile"]
        ci = fit.confint(level=ref["level"])
        probs = _check_bounds(fit, ci, prof["reml" if reml else "ml"]["varcomp"], prof["fixed"], 1e-5)
        assert not probs, "\n".join(probs)


def test_profile_evaluations_parm(oats):
    fit = vcomp.lmm(OATS_F, oats)
    one = profile_evaluations(fit, 0.9, parm=["Residual"])
    assert list(one.index) == ["Residual"] and list(one.columns) == ["lower", "upper", "evaluations"]
    assert 0 < one["evaluations"].iloc[0] <= BUDGET
    assert np.allclose(one[["lower", "upper"]], fit.confint(0.9, parm="Residual")[["lower", "upper"]])
