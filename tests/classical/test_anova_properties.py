"""Invariances of the classical ANOVA (hypothesis) and Cornfield-Tukey EMS for balanced designs."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vcomp

OATS = vcomp.datasets.load("oats")
SPLIT = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")
COLS = ["df", "SS", "MS", "F", "p", "den_df"]


def _unbalanced(seed: int, frac: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    keep = rng.random(len(OATS)) > frac
    keep[:12] = True  # keep block I complete (every variety:nitro cell present)
    keep[~OATS.duplicated(["block", "variety"]).to_numpy()] = True  # no whole plot lost entirely
    d = OATS.loc[keep].copy()
    d["yield"] = d["yield"] + rng.normal(0, 5, len(d))
    return d


def _same(a, b, rel=1e-8):
    pd.testing.assert_frame_equal(a.table[COLS], b.table[COLS], rtol=rel, check_dtype=False)
    pd.testing.assert_frame_equal(a.ems, b.ems, rtol=rel, atol=1e-9)
    pd.testing.assert_frame_equal(a.components, b.components, rtol=1e-6, atol=1e-8)


SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(seed=st.integers(0, 10_000), frac=st.floats(0.0, 0.25), ss_type=st.sampled_from([1, 2, 3]))
def test_row_order_irrelevant(seed, frac, ss_type):
    d = _unbalanced(seed, frac)
    perm = d.sample(frac=1.0, random_state=seed)
    _same(SPLIT.anova(d, "yield", ss_type), SPLIT.anova(perm, "yield", ss_type))


@SETTINGS
@given(seed=st.integers(0, 10_000), frac=st.floats(0.0, 0.25), c=st.floats(1e-3, 1e3), ss_type=st.sampled_from([1, 3]))
def test_scaling_response(seed, frac, c, ss_type):
    d = _unbalanced(seed, frac)
    d2 = d.assign(**{"yield": d["yield"] * c})
    a, b = SPLIT.anova(d, "yield", ss_type), SPLIT.anova(d2, "yield", ss_type)
    np.testing.assert_allclose(b.table["SS"], a.table["SS"] * c ** 2, rtol=1e-7)
    np.testing.assert_allclose(b.table["F"], a.table["F"], rtol=1e-7)
    np.testing.assert_allclose(b.table["den_df"], a.table["den_df"], rtol=1e-7)
    np.testing.assert_allclose(b.components["raw"], a.components["raw"] * c ** 2, rtol=1e-6, atol=1e-9 * c ** 2)
    pd.testing.assert_frame_equal(a.ems, b.ems, rtol=1e-8, atol=1e-9)


@SETTINGS
@given(seed=st.integers(0, 10_000), frac=st.floats(0.0, 0.25), ss_type=st.sampled_from([1, 2, 3]))
def test_relabelling_levels(seed, frac, ss_type):
    d = _unbalanced(seed, frac)
    rng = np.random.default_rng(seed)
    d2 = d.copy()
    for col in ("block", "variety", "nitro"):
        levels = sorted(d[col].unique())
        new = ["L%03d" % i for i in rng.permutation(len(levels))]
        d2[col] = d[col].map(dict(zip(levels, new)))
    _same(SPLIT.anova(d, "yield", ss_type), SPLIT.anova(d2, "yield", ss_type), rel=1e-7)


def test_integer_and_categorical_factors_equivalent():
    d = OATS.copy()
    d2 = d.copy()
    d2["block"] = d2["block"].map({b: i for i, b in enumerate(sorted(d.block.unique()))})
    d2["variety"] = d2["variety"].astype("category")
    _same(SPLIT.anova(d, "yield"), SPLIT.anova(d2, "yield"))


def test_cornfield_tukey_oats():
    res = SPLIT.anova(OATS, "yield")
    e = res.ems
    # a blocks, b varieties, c nitro levels: 6 x 3 x 4
    assert e.loc["block", "block"] == pytest.approx(12)
    assert e.loc["block", "block:variety"] == pytest.approx(4)
    assert e.loc["block:variety", "block:variety"] == pytest.approx(4)
    assert e.loc["block:variety", "block"] == pytest.approx(0, abs=1e-10)
    assert e.loc["variety", "block:variety"] == pytest.approx(4)
    assert e.loc["variety", "block"] == pytest.approx(0, abs=1e-10)
    assert e.loc["nitro"].drop("Residual").abs().max() < 1e-10
    assert (e["Residual"] == 1).all()
    assert res.ems_text["block"] == "Var(Residual) + 4 Var(block:variety) + 12 Var(block)"
    assert res.ems_text["variety"] == "Var(Residual) + 4 Var(block:variety) + Q(variety)"
    assert res.error_terms["variety"] == {"block:variety": 1.0}
    assert res.error_terms["nitro"] == {"Residual": 1.0}
    assert res.table.loc["variety", "error"] == "block:variety"
    assert res.table.loc["variety", "den_df"] == pytest.approx(10)
    # balanced: types I, II, III agree
    for t in (1, 2):
        _same(res, SPLIT.anova(OATS, "yield", ss_type=t))


def test_cornfield_tukey_split_split_and_strip():
    rng = np.random.default_rng(3)
    idx = pd.MultiIndex.from_product([range(3), range(2), range(3), range(4)], names=["r", "a", "b", "c"])
    d = idx.to_frame(index=False).astype(str)
    d["y"] = rng.normal(size=len(d))
    res = vcomp.SplitSplitPlot(whole="a", sub="b", subsub="c", block="r").anova(d, "y")
    e = res.ems
    assert e.loc["r", "r"] == pytest.approx(24)
    assert e.loc["r", "r:a"] == pytest.approx(12)
    assert e.loc["r", "r:a:b"] == pytest.approx(4)
    assert e.loc["a", "r:a"] == pytest.approx(12)
    assert e.loc["b", "r:a:b"] == pytest.approx(4) and abs(e.loc["b", "r:a"]) < 1e-10
    assert res.table.loc["c", "error"] == "Residual"
    strip = vcomp.StripPlot(horizontal="a", vertical="b", block="r")
    d2 = d[d.c == "0"]
    e = strip.anova(d2, "y").ems
    # r blocks=3, a=2, b=3: block coefficient a*b=6, block:a b=3, block:b a=2
    assert e.loc["r", "r"] == pytest.approx(6)
    assert e.loc["a", "r:a"] == pytest.approx(3)
    assert e.loc["b", "r:b"] == pytest.approx(2)
    assert e.loc["a:b", "r:a"] == pytest.approx(0, abs=1e-10)


def test_synthesized_denominator_text():
    d = _unbalanced(5, 0.2)
    res = SPLIT.anova(d, "yield", ss_type=3)
    synth = [s for s, c in res.error_terms.items() if len(c) > 1]
    assert synth, "expected a synthesized denominator for unbalanced data"
    s = synth[0]
    assert "MS(" in res.table.loc[s, "error"]
    den = sum(c * res.table.loc[k, "MS"] for k, c in res.error_terms[s].items())
    assert res.table.loc[s, "F"] == pytest.approx(res.table.loc[s, "MS"] / den)
