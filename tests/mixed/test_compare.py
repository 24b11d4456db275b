"""Likelihood-ratio comparisons (vcomp.compare, MixedModel.ranova; vcomp.mixed.compare) against lme4 / lmerTest."""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import _vcref  # noqa: E402
import vcomp  # noqa: E402
from vcomp.mixed.compare import reduced_formulas  # noqa: E402

RANOVA = _vcref.cases("ranova")
COMPARE = [(r, ref, k) for r, ref in _vcref.cases("compare") for k in range(len(ref["compare"]))]


def _quiet(f, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*a, **k)


def _key(name: str) -> str:
    return name.replace(" ", "").replace("(Intercept)", "Intercept")


def _cmp_row(g, x, cols, probs, what):
    if int(g["npar"]) != x["npar"]:
        probs.append("%s npar %s vs %s" % (what, g["npar"], x["npar"]))
    for c, tol in cols:
        if not _vcref.rel(g[c], x[c], 2e-3 if c in ("chisq", "LRT") else 0.0, tol):
            probs.append("%s %s %.6f vs %.6f" % (what, c, g[c], x[c]))
    if x["df"] is not None and int(round(g["df"])) != x["df"]:
        probs.append("%s df %s vs %s" % (what, g["df"], x["df"]))
    if not _vcref.rel(g["p"], x["p"], 2e-3, 1e-6):
        probs.append("%s p %.6g vs %.6g" % (what, g["p"], x["p"]))


@pytest.mark.parametrize("r, ref", RANOVA, ids=_vcref.ids(RANOVA))
def test_ranova_vs_lmertest(r, ref):
    fit = _quiet(vcomp.lmm, ref["lmer"], _vcref.data(r))
    tab = fit.ranova()
    assert [_key(i) for i in tab.index] == [_key(x["name"]) for x in ref["ranova"]]  # names and order as lmerTest
    probs = []
    for (name, g), x in zip(tab.iterrows(), ref["ranova"]):
        _cmp_row(g, x, (("loglik", 1e-4), ("AIC", 2e-4), ("LRT", 2e-4)), probs, name)
    assert not probs, "\n".join(probs)


@pytest.mark.parametrize("r, ref, k", COMPARE, ids=["%s-%d" % (r["name"], k) for r, _, k in COMPARE])
def test_compare_vs_lme4(r, ref, k):
    c = ref["compare"][k]
    d = _vcref.data(r)
    fits = [_quiet(vcomp.lmm, f, d) for f in c["models"]]
    tab = _quiet(vcomp.compare, *fits, refit=c["refit"])
    assert [_key(i) for i in tab.index] == [_key(x["formula"]) for x in c["rows"]]
    probs = []
    for (name, g), x in zip(tab.iterrows(), c["rows"]):
        _cmp_row(g, x, (("AIC", 2e-4), ("BIC", 2e-4), ("loglik", 1e-4), ("deviance", 2e-4), ("chisq", 2e-4)),
                 probs, name)
    assert not probs, "\n".join(probs)


@pytest.fixture(scope="module")
def slopes():
    return vcomp.simulate.random_slopes(n_cluster=40, obs_per_cluster=8, seed=4)


def test_compare_refit_uses_ml_and_sorts(slopes):
    m1 = vcomp.lmm("y ~ x + (x|cluster)", slopes)
    m0 = _quiet(vcomp.lmm, "y ~ 1 + (1|cluster)", slopes)
    tab = vcomp.compare(m1, m0)
    assert list(tab.index) == [m0.formula, m1.formula]
    ml = [_quiet(vcomp.lmm, f, slopes, reml=False) for f in (m0.formula, m1.formula)]
    assert np.allclose(tab["loglik"], [m.loglik for m in ml], atol=1e-6)
    assert tab["chisq"].iloc[1] == pytest.approx(2 * (ml[1].loglik - ml[0].loglik), abs=1e-5)
    assert np.isnan(tab["chisq"].iloc[0]) and np.isnan(tab["p"].iloc[0])
    assert list(tab.columns) == ["npar", "AIC", "BIC", "loglik", "deviance", "chisq", "df", "p"]
    assert "ML" in str(tab)


def test_compare_refit_false_warns_for_different_fixed_effects(slopes):
    m1 = vcomp.lmm("y ~ x + (1|cluster)", slopes)
    m0 = vcomp.lmm("y ~ 1 + (1|cluster)", slopes)
    with pytest.warns(vcomp.VcompWarning, match="REML"):
        tab = vcomp.compare(m1, m0, refit=False)
    assert tab["loglik"].iloc[1] == pytest.approx(m1.loglik)


def test_compare_errors(slopes):
    m1 = vcomp.lmm("y ~ x + (1|cluster)", slopes)
    m2 = vcomp.lmm("y ~ x + (1|cluster)", slopes.iloc[:-8])
    with pytest.raises(vcomp.VcompError, match="observations"):
        vcomp.compare(m1, m2)
    other = slopes.assign(y=slopes["y"] * 2)
    with pytest.raises(vcomp.VcompError, match="response"):
        vcomp.compare(m1, vcomp.lmm("y ~ x + (1|cluster)", other))
    with pytest.raises(vcomp.VcompError):
        vcomp.compare()
    with pytest.raises(vcomp.VcompError, match="fitted mixed model"):
        vcomp.compare(m1, pd.DataFrame())


def test_ranova_single_term_is_lm_and_keeps_codings():
    d = vcomp.datasets.load("dyestuff")
    fit = vcomp.lmm("yield ~ 1 + (1|batch)", d)
    tab = fit.ranova()
    assert list(tab.index) == ["<none>", "(1 | batch)"]
    y = d["yield"].to_numpy(float)
    n = len(y)
    rss = np.sum((y - y.mean()) ** 2)
    reml_ll = -0.5 * (np.log(n) + (n - 1) * (1 + np.log(2 * np.pi * rss / (n - 1))))  # lm's REML log-likelihood
    assert tab.loc["(1 | batch)", "loglik"] == pytest.approx(reml_ll, abs=1e-8)
    assert tab.loc["(1 | batch)", "npar"] == 2


def test_reduced_formulas_follow_lmertest():
    d = vcomp.simulate.random_slopes(n_cluster=20, obs_per_cluster=6, seed=1)
    d["z"] = np.random.default_rng(0).normal(size=len(d))
    fit = _quiet(vcomp.lmm, "y ~ x + (x + z|cluster)", d)
    red = dict(reduced_formulas(fit))
    assert set(red) == {"x in (x + z | cluster)", "z in (x + z | cluster)"}
    assert [str(r.expr) for r in red["x in (x + z | cluster)"].random] == ["z"]


def test_compare_refits_a_residual_structure_by_ml_as_nlme():
    """compare() of fits with and without residual= refits both by ML; the likelihoods are nlme's."""
    import json
    ref_dir = os.path.join(os.path.dirname(__file__), "..", "reference", "residual_compare")
    with open(os.path.join(ref_dir, "ar1_ml.json")) as fh:
        ref = json.load(fh)
    d = pd.read_csv(os.path.join(ref_dir, "ar1.csv"), dtype={"subj": str, "trt": str})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m1 = vcomp.lmm("y ~ trt + (1|subj)", d, residual="ar1(time | subj)")
        m0 = vcomp.lmm("y ~ trt + (1|subj)", d)
    assert m1.loglik == pytest.approx(ref["loglik_reml_ar1"], abs=5e-5)
    tab = vcomp.compare(m0, m1)
    np.testing.assert_allclose(tab["loglik"].to_numpy(), [ref["loglik_ml_iid"], ref["loglik_ml_ar1"]], atol=5e-5)
    assert "residual=ar1(time | subj)" in tab.index[1]
    with pytest.raises(vcomp.VcompError, match="residual="):
        m1.ranova()
    with pytest.raises(vcomp.VcompError, match="method='wald'"):
        m1.confint(method="profile")
