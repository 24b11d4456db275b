"""Pattern cross-products W'BW against the direct sum over blocks."""
from __future__ import annotations

import numpy as np
import pytest

from vcomp.formula import parse_residual
from vcomp.mixed.residual import build_structure
from vcomp.mixed.residual_xp import PatternCrossprods

from _residual_data import field, repeated


def _direct(W, patterns, Bs):
    out = np.zeros((W.shape[1], W.shape[1]))
    for p, B in zip(patterns, Bs):
        for r in p.rows:
            out += W[r].T @ B @ W[r]
    return out


@pytest.mark.parametrize("band,budget", [(None, 1 << 30), (1, 1 << 30), (None, 0), (2, 1 << 30)])
def test_M_and_contract(band, budget):
    d = repeated(n_sub=25, T=5, seed=4)
    _, lay = build_structure(parse_residual("us(time | subj)"), d)
    rng = np.random.default_rng(0)
    W = rng.normal(size=(len(d), 4))
    xp = PatternCrossprods(W, lay.patterns, [band] * len(lay.patterns), budget=budget)
    Bs = [rng.normal(size=(p.k, p.k)) for p in lay.patterns]          # not symmetric, not banded
    np.testing.assert_allclose(xp.M(Bs), _direct(W, lay.patterns, Bs), rtol=1e-12, atol=1e-10)
    Bs[0] = None
    np.testing.assert_allclose(xp.M(Bs), _direct(W, lay.patterns[1:], Bs[1:]), rtol=1e-12, atol=1e-10)
    G = rng.normal(size=(4, 4))
    G = G + G.T
    H = xp.contract(G)
    lag = lambda k: np.abs(np.subtract.outer(np.arange(k), np.arange(k)))  # noqa: E731
    Bb = [np.where(lag(p.k) <= (band if band is not None else p.k), rng.normal(size=(p.k, p.k)), 0.0)
          for p in lay.patterns]
    want = np.sum(G * _direct(W, lay.patterns, Bb))
    assert sum(np.sum(B * h) for B, h in zip(Bb, H)) == pytest.approx(want, rel=1e-10)


def test_direct_patterns_for_a_grid():
    d = field(nrow=6, ncol=4, trials=1)
    _, lay = build_structure(parse_residual("ar1(row):ar1(col)"), d)
    W = np.random.default_rng(1).normal(size=(len(d), 3))
    xp = PatternCrossprods(W, lay.patterns)
    assert not xp.stored.any()                      # one large block: multiplied out each time
    B = [np.eye(lay.patterns[0].k)]
    np.testing.assert_allclose(xp.M(B), W.T @ W, rtol=1e-12)


@pytest.mark.parametrize("budget", [1 << 30, 7 * 16 * 8])
def test_banded_storage_widens_for_a_full_B(budget):
    d = repeated(n_sub=30, T=4, seed=5, missing=0.0)
    _, lay = build_structure(parse_residual("ar1(time | subj)"), d)
    W = np.random.default_rng(2).normal(size=(len(d), 4))
    xp = PatternCrossprods(W, lay.patterns, [1] * len(lay.patterns), budget=budget)
    assert xp.stored.all()
    tri = [np.diag(np.ones(p.k)) + np.diag(np.ones(p.k - 1), 1) for p in lay.patterns]
    np.testing.assert_allclose(xp.M(tri), _direct(W, lay.patterns, tri), rtol=1e-12)
    full = [np.random.default_rng(3).normal(size=(p.k, p.k)) for p in lay.patterns]
    np.testing.assert_allclose(xp.M(full), _direct(W, lay.patterns, full), rtol=1e-12)
    assert xp.stored.all() == (budget > 10 ** 6)
    np.testing.assert_allclose(xp.M(tri), _direct(W, lay.patterns, tri), rtol=1e-12)
