"""Results do not depend on the units or offsets of the data (issue 9, item 4).

Under y -> a y + b (a in [1e-12, 1e12], |b| up to 1e9 sd(y)) and x -> x + 1e6 for a covariate,
REML/ML variance components scale by a^2, Satterthwaite and Kenward-Roger df, F and p stay;
classical SS/EMS/MoM scale by a^2 (EMS stay); the cross-check notes stay (numbers scale).
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import vcomp

REL = 1e-6


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def _design_data(seed: int, drop: int, covariate: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    nb, na, nc = 4, 3, 3
    rows = [(b, a, c) for b in range(nb) for a in range(na) for c in range(nc)]
    d = pd.DataFrame(rows, columns=["block", "A", "B"]).astype(str)
    y = (rng.normal(size=nb)[d.block.astype(int)] * 1.5 + rng.normal(size=nb * na)[d.block.astype(int) * na
         + d.A.astype(int)] + 0.4 * d.B.astype(int) + rng.normal(size=len(d)))
    d["y"] = 10.0 + y
    if covariate:
        d["x"] = rng.normal(size=len(d))
        d["y"] += 0.7 * d["x"]
    if drop:
        d = d.drop(index=rng.choice(len(d), size=drop, replace=False)).reset_index(drop=True)
    return d


def _summary(fit) -> dict:
    out = {"vc": fit.varcorr["vcov"].to_numpy()}
    for ddf in ("satterthwaite", "kenward-roger"):
        a = fit.anova(ddf=ddf)
        out[ddf] = a[["den_df", "F", "p"]].to_numpy()
    return out


def _close(a, b, rel=REL, floor=1e-8):
    """Relative agreement, with an absolute floor of ``floor`` times the largest value (components near 0)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.maximum(np.abs(b), floor * np.nanmax(np.abs(b)))
    assert np.all(np.abs(a - b) <= rel * scale + 1e-12), (a, b)


def _strip(notes):
    return [re.sub(r"-?\d[\d.e+-]*", "#", n) for n in notes]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), log_a=st.floats(-12, 12), b_sd=st.floats(-1e9, 1e9), drop=st.integers(0, 4))
@example(seed=1999, log_a=1.0, b_sd=789541980.0, drop=4)
def test_response_units_and_offsets(seed, log_a, b_sd, drop):
    d = _design_data(seed, drop, covariate=False)
    a = 10.0 ** log_a
    b = b_sd * a * float(d["y"].std())
    d2 = d.assign(y=a * d["y"] + b)
    des = vcomp.SplitPlot("A", "B", "block")
    f1, f2 = _quiet(des.lmm, d, "y"), _quiet(des.lmm, d2, "y")
    s1, s2 = _summary(f1), _summary(f2)
    _close(s2["vc"] / a ** 2, s1["vc"], rel=1e-6, floor=1.0)
    for k in ("satterthwaite", "kenward-roger"):
        _close(s2[k], s1[k], rel=1e-4)
    st_ = 1 if drop else 3
    # against the y that a*y + b represents in floating point (an offset of 1e9 SDs leaves ~7 of its
    # digits; a small sum of squares then carries the data's own rounding, not vcomp's)
    d1 = d.assign(y=(d2["y"] - b) / a)
    c1, c2 = _quiet(des.anova, d1, "y", ss_type=st_), _quiet(des.anova, d2, "y", ss_type=st_)
    _close(c2.table["SS"].to_numpy() / a ** 2, c1.table["SS"].to_numpy(), rel=1e-6)
    _close(c2.ems.to_numpy(), c1.ems.to_numpy(), rel=1e-9)
    _close(c2.components["raw"].to_numpy() / a ** 2, c1.components["raw"].to_numpy(), rel=1e-6, floor=1.0)
    n1, n2 = _quiet(des.crosscheck, d, "y").notes, _quiet(des.crosscheck, d2, "y").notes
    assert _strip(n1) == _strip(n2)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), shift=st.sampled_from([1e3, 1e6, -1e6]), log_a=st.floats(-1, 6))
def test_covariate_offset_and_scale(seed, shift, log_a):
    # (a shift of 1e6 on a covariate of SD 10^log_a keeps ~16 - 6 + log_a digits of it: log_a >= -1 keeps 1e-9)
    d = _design_data(seed, 2, covariate=True)
    d2 = d.assign(x=d["x"] * 10.0 ** log_a + shift)
    f1 = _quiet(vcomp.lmm, "y ~ A + B + x + (1|block) + (1|block:A)", d)
    f2 = _quiet(vcomp.lmm, "y ~ A + B + x + (1|block) + (1|block:A)", d2)
    s1, s2 = _summary(f1), _summary(f2)
    _close(s2["vc"], s1["vc"], rel=1e-6, floor=1.0)
    for k in ("satterthwaite", "kenward-roger"):
        _close(s2[k], s1[k], rel=1e-4)
    des = vcomp.Design(fixed="A + B + x", random=["block", "block:A"], covariates=["x"])
    c1, c2 = _quiet(des.anova, d, "y", ss_type=1), _quiet(des.anova, d2, "y", ss_type=1)
    _close(c2.table["SS"].to_numpy(), c1.table["SS"].to_numpy(), rel=1e-6)
    _close(c2.components["raw"].to_numpy(), c1.components["raw"].to_numpy(), rel=1e-6, floor=1.0)


@pytest.mark.parametrize("a", [1e5, 1e12, 1e-12])
def test_satterthwaite_at_extreme_scales_no_division_by_zero(a):
    oats = vcomp.datasets.load("oats")
    des = vcomp.SplitPlot("variety", "nitro", "block")
    ref = _quiet(des.lmm, oats, "yield").coef_table()
    got = _quiet(des.lmm, oats.assign(**{"yield": a * oats["yield"]}), "yield").coef_table()
    _close(got["df"], ref["df"], rel=1e-5)
    _close(got["se"] / a, ref["se"], rel=1e-5)
