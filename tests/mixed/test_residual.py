"""Residual structure classes: parameters, blocks, derivatives, layout."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcomp.formula import parse_residual
from vcomp.mixed.residual import Pattern, acf_to_pacf, build_structure, pacf_to_acf

from _residual_data import environments, field, repeated

SPECS = {
    "ar1": ("ar1(time | subj)", dict(seed=1)),
    "cs": ("cs(time | subj)", dict(seed=2)),
    "us": ("us(time | subj)", dict(seed=3)),
    "toep": ("toep(time | subj)", dict(seed=4)),
    "ar1h": ("ar1h(time | subj)", dict(seed=5)),
    "csh": ("csh(time | subj)", dict(seed=6)),
    "us_group": ("us(time | grp / subj)", dict(seed=7, groups=3, n_sub=30)),
}


def _structure(name, nugget=None):
    if name == "diag":
        return build_structure(parse_residual("diag(1 | env)"), environments(), nugget)
    if name.startswith("ar1ar1"):
        d = field(nrow=5, ncol=4, trials=2, missing=0.1)
        return build_structure(parse_residual("ar1(row):ar1(col) | trial"), d, nugget)
    text, kw = SPECS[name]
    return build_structure(parse_residual(text), repeated(**kw), nugget)


ALL = list(SPECS) + ["diag", "ar1ar1"]


def _xi(st_, seed):
    return np.random.default_rng(seed).normal(0, 0.4, st_.n_xi)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("nugget", [None, "plot"])
def test_relative_and_natural_blocks_agree(name, nugget):
    st_, lay = _structure(name, nugget)
    xi = _xi(st_, 1)
    s2 = 2.5
    gam = st_.natural(xi, s2)
    assert len(gam) == len(st_.infer_names)
    for pat in lay.patterns:
        R = st_.cov_derivs(pat, gam)[0]
        np.testing.assert_allclose(R, s2 * st_.rel_cov(pat, xi), rtol=1e-12, atol=1e-12)
        np.linalg.cholesky(R)                                   # positive definite for any xi


@pytest.mark.parametrize("name", ALL)
def test_derivatives_match_finite_differences(name):
    st_, lay = _structure(name, "plot")
    gam = st_.natural(_xi(st_, 2), 1.7)
    for pat in lay.patterns[:4]:
        R, d1, d2 = st_.cov_derivs(pat, gam)
        for a in range(len(gam)):
            h = 1e-6 * max(abs(gam[a]), 1e-2)
            e = np.zeros(len(gam))
            e[a] = h
            Rp, d1p, _ = st_.cov_derivs(pat, gam + e)
            Rm, d1m, _ = st_.cov_derivs(pat, gam - e)
            np.testing.assert_allclose(d1.get(a, 0 * R), (Rp - Rm) / (2 * h), rtol=1e-6, atol=1e-7)
            for b in range(a, len(gam)):
                fd = (d1p.get(b, 0 * R) - d1m.get(b, 0 * R)) / (2 * h)
                np.testing.assert_allclose(d2.get((a, b), 0 * R), fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_reported_names_and_values(name):
    st_, lay = _structure(name)
    gam = st_.natural(_xi(st_, 3), 3.0)
    rep = st_.reported(gam)
    assert len(rep) == len(st_.names) == len(set(st_.names))
    for nm, v in zip(st_.names, rep):
        if nm.startswith("rho"):
            assert -1 < v < 1
        else:
            assert nm.startswith("sigma2") and v > 0


def test_parameter_names_follow_the_note():
    d = repeated(seed=1, T=3)
    assert build_structure(parse_residual("ar1(time | subj)"), d)[0].names == ["sigma2", "rho"]
    assert build_structure(parse_residual("toep(time | subj)"), d)[0].names == ["sigma2", "rho:lag1", "rho:lag2"]
    assert build_structure(parse_residual("csh(time | subj)"), d)[0].names == \
        ["sigma2:t1", "sigma2:t2", "sigma2:t3", "rho"]
    assert build_structure(parse_residual("us(time | subj)"), d)[0].names == \
        ["sigma2:t1", "sigma2:t2", "sigma2:t3", "rho:t1:t2", "rho:t1:t3", "rho:t2:t3"]
    g = repeated(seed=1, T=2, groups=2, n_sub=8)
    assert build_structure(parse_residual("us(time | grp / subj)"), g)[0].names == \
        ["sigma2:G0:t1", "sigma2:G0:t2", "rho:G0:t1:t2", "sigma2:G1:t1", "sigma2:G1:t2", "rho:G1:t1:t2"]
    f = field(nrow=3, ncol=3)
    assert build_structure(parse_residual("ar1(row):ar1(col)"), f)[0].names == ["sigma2", "rho:row", "rho:col"]
    assert build_structure(parse_residual("diag(1 | env)"), environments(n_env=2))[0].names == \
        ["sigma2:E0", "sigma2:E1"]


def test_positions_are_ranks_not_values():
    """Days 36, 43, 44 are adjacent positions (SAS REPEATED, mmrm), not lags 7 and 1."""
    d = pd.DataFrame({"s": ["a"] * 3 + ["b"] * 2, "day": [36, 43, 44, 36, 44], "y": [1.0, 2, 3, 4, 5]})
    st_, lay = build_structure(parse_residual("ar1(day | s)"), d)
    R = {p.k: st_.cov_derivs(p, np.array([1.0, 0.5]))[0] for p in lay.patterns}
    np.testing.assert_allclose(R[3][0], [1, 0.5, 0.25])
    np.testing.assert_allclose(R[2][0], [1, 0.25])                 # days 36 and 44: two positions apart


def test_patterns_group_equal_blocks():
    d = repeated(n_sub=40, T=4, missing=0.0, seed=3)
    st_, lay = build_structure(parse_residual("us(time | subj)"), d)
    assert len(lay.patterns) == 1 and lay.patterns[0].count == 40 and lay.nblocks == 40
    # AR(1) depends on lags only: shifted patterns share a matrix
    d2 = d[~((d["time"] == "t1") & (d["subj"] < "S20")) & ~((d["time"] == "t4") & (d["subj"] >= "S20"))]
    st_, lay = build_structure(parse_residual("ar1(time | subj)"), d2)
    assert len(lay.patterns) == 1 and lay.patterns[0].count == 40
    st_, lay = build_structure(parse_residual("us(time | subj)"), d2)
    assert len(lay.patterns) == 2
    rows = np.sort(np.concatenate([p.rows.ravel() for p in lay.patterns]))
    np.testing.assert_array_equal(rows, np.arange(len(d2)))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-0.95, 0.95), min_size=1, max_size=6))
def test_pacf_maps_to_positive_definite_toeplitz(phi):
    rho = pacf_to_acf(np.array(phi))
    T = len(rho) + 1
    full = np.concatenate([[1.0], rho])
    C = full[np.abs(np.subtract.outer(np.arange(T), np.arange(T)))]
    assert np.min(np.linalg.eigvalsh(C)) > 0
    np.testing.assert_allclose(acf_to_pacf(rho), phi, atol=1e-8)


def test_pattern_properties():
    p = Pattern(0, np.arange(3), np.arange(6).reshape(2, 3))
    assert p.k == 3 and p.count == 2


@pytest.mark.parametrize("name", ["us", "us_group"])
def test_unstructured_jacobian(name):
    st_, _ = _structure(name)
    xi = _xi(st_, 4)
    h = 1e-6
    fd = np.column_stack([(st_.natural(xi + h * e, 1.0) - st_.natural(xi - h * e, 1.0)) / (2 * h)
                          for e in np.eye(len(xi))])
    np.testing.assert_allclose(st_.natural_jacobian(xi), fd, atol=1e-7)
