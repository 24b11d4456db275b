"""Confidence intervals of method-of-moments components (vcomp.classical.intervals)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import _vcref  # noqa: E402
import _rcompare as rc  # noqa: E402
import vcomp  # noqa: E402
from vcomp.classical.intervals import mls_interval, satterthwaite_interval  # noqa: E402

CI = [(r, ref, t) for r, ref in _vcref.cases("components_ci") for t in (1, 3)
      if ref["components_ci"].get("type%d" % t)]


@pytest.mark.parametrize("r, ref, ss_type", CI, ids=["%s-type%d" % (r["name"], t) for r, _, t in CI])
def test_components_ci_vs_r(r, ref, ss_type):
    res = rc.design(r).anova(rc.data(r), r["response"], ss_type=ss_type)
    probs = []
    for level, rows in ref["components_ci"]["type%d" % ss_type].items():
        scale = max(abs(x["estimate"]) for x in rows) or 1.0
        for method in ("satterthwaite", "mls"):
            ci = res.components_ci(level=float(level), method=method)
            got = {rc.norm_term(k): v for k, v in ci.iterrows()}
            for x in rows:
                g = got[rc.norm_term(x["component"])]
                if not _vcref.rel(g["estimate"], x["estimate"], 1e-7, 1e-9 * scale):
                    probs.append("%s estimate %r vs %r" % (x["component"], g["estimate"], x["estimate"]))
                if not _vcref.rel(g["df"], x["df"], 1e-7):
                    probs.append("%s df %r vs %r" % (x["component"], g["df"], x["df"]))
                for side in ("lower", "upper"):
                    if not _vcref.rel(g[side], x[method][side], 2e-3, 1e-9 * scale):
                        probs.append("%s(%s) %s %s %.8g vs %.8g" % (method, level, x["component"], side, g[side],
                                                                     x[method][side]))
    assert not probs, "\n".join(probs)


def _oats_res(ss_type=3):
    return vcomp.SplitPlot("variety", "nitro", "block").anova(vcomp.datasets.load("oats"), "yield", ss_type=ss_type)


def test_residual_is_exact_chi2_both_ways():
    res = _oats_res()
    ms, df = res.table.loc["Residual", "MS"], res.table.loc["Residual", "df"]
    exact = (df * ms / stats.chi2.ppf(0.975, df), df * ms / stats.chi2.ppf(0.025, df))
    for method in ("satterthwaite", "mls"):
        row = res.components_ci(method=method).loc["Residual"]
        assert row["lower"] == pytest.approx(exact[0], rel=1e-12)
        assert row["upper"] == pytest.approx(exact[1], rel=1e-12)
        assert row["df"] == pytest.approx(df)


def test_columns_index_and_no_mutation():
    res = _oats_res()
    before = res.components.copy()
    ci = res.components_ci(level=0.9)
    assert list(ci.columns[:3]) == ["estimate", "lower", "upper"]
    assert list(ci.index) == list(res.components.index)
    assert np.allclose(ci["estimate"], res.components["estimate"])
    pd.testing.assert_frame_equal(res.components, before)
    assert isinstance(ci, pd.DataFrame)


def test_truncated_component():
    d = vcomp.datasets.load("oats").copy()
    rng = np.random.default_rng(3)
    d["yield"] = rng.normal(100, 10, len(d))  # no block or whole-plot variation: some raw MoM < 0
    res = vcomp.SplitPlot("variety", "nitro", "block").anova(d, "yield")
    neg = res.components.index[res.components["raw"] < 0]
    assert len(neg)
    sat = res.components_ci(method="satterthwaite")
    mls = res.components_ci(method="mls")
    for c in neg:
        assert sat.loc[c, "lower"] == 0 and sat.loc[c, "upper"] == 0
        assert mls.loc[c, "lower"] == 0 and mls.loc[c, "upper"] >= 0
        assert sat.loc[c, "estimate"] == 0 and sat.loc[c, "raw"] < 0


@pytest.mark.parametrize("bad", [dict(method="exact"), dict(level=1.2), dict(level=0), dict(level="high")])
def test_bad_options_raise(bad):
    with pytest.raises(vcomp.VcompError) as e:
        _oats_res().components_ci(**bad)
    assert ("method" in str(e.value) and "mls" in str(e.value)) or "level" in str(e.value)


def test_printing():
    ci = _oats_res().components_ci(method="mls")
    text = str(ci)
    assert "modified large-sample" in text and "block:variety" in text
    assert "|" in ci.to_markdown() and "\\toprule" in ci.to_latex() and "<table>" in ci._repr_html_()


@settings(max_examples=60, deadline=None)
@given(ms=st.lists(st.floats(0.1, 100), min_size=2, max_size=3),
       df=st.lists(st.integers(1, 40), min_size=3, max_size=3),
       c=st.lists(st.floats(-1, 1).filter(lambda v: abs(v) > 0.05), min_size=2, max_size=3),
       level=st.sampled_from([0.8, 0.9, 0.95]))
def test_intervals_bracket_a_positive_estimate(ms, df, c, level):
    k = min(len(ms), len(c))
    ms, c, df = np.array(ms[:k]), np.array(c[:k]), np.array(df[:k], dtype=float)
    est, nu, lo, hi = satterthwaite_interval(c, ms, df, level)
    mlo, mhi = mls_interval(c, ms, df, level)
    if est > 0 and nu >= 1:  # (with fractional df < 1 the chi-square quantiles need not bracket the estimate)
        assert 0 <= lo <= est <= hi
        assert 0 <= mlo <= est <= mhi
        # a wider level gives a wider interval
        _, _, lo2, hi2 = satterthwaite_interval(c, ms, df, level + 0.04)
        assert lo2 <= lo and hi2 >= hi
    elif est <= 0:
        assert lo == hi == 0 and mlo == 0


def test_single_mean_square_mls_is_exact():
    ms, df = np.array([4.0]), np.array([7.0])
    lo, hi = mls_interval(np.array([0.5]), ms, df, 0.95)
    assert lo == pytest.approx(7 * 2 / stats.chi2.ppf(0.975, 7), rel=1e-12)
    assert hi == pytest.approx(7 * 2 / stats.chi2.ppf(0.025, 7), rel=1e-12)
