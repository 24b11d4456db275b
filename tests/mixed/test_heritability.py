"""Heritability of a random genotype factor (vcomp.mixed.heritability) against R / ASReml."""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import _vcref  # noqa: E402
import vcomp  # noqa: E402
from vcomp.mixed.heritability import heritability_parts, mean_pairwise_variance  # noqa: E402

CASES = _vcref.cases("heritability")


@pytest.mark.parametrize("r, ref", CASES, ids=_vcref.ids(CASES))
def test_heritability_vs_r(r, ref):
    h = ref["heritability"]
    fit = vcomp.lmm(h["formula"], _vcref.data(r))
    for method in ("cullis", "piepho", "standard"):
        assert fit.heritability(h["group"], method=method) == pytest.approx(h[method], abs=1e-4), method
    parts = heritability_parts(fit, h["group"], fit=vcomp.mixed.model.fit)
    for k in ("vbar_blup", "vbar_blue", "rbar", "sigma2_g", "sigma2_e"):
        assert parts[k] == pytest.approx(h[k], rel=2e-3), k


def test_john_alpha_published_cullis():
    """ASReml's published Cullis H2 for John's alpha lattice."""
    d = vcomp.datasets.load("john_alpha")
    fit = vcomp.lmm("yield ~ rep + (1|gen) + (1|rep:block)", d)
    assert fit.heritability("gen") == pytest.approx(0.8091336, abs=1e-4)


def test_mean_pairwise_variance_brute_force():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 6))
    V = A @ A.T
    pairs = [V[i, i] + V[j, j] - 2 * V[i, j] for i in range(6) for j in range(i + 1, 6)]
    assert mean_pairwise_variance(V) == pytest.approx(np.mean(pairs))


def test_cullis_equals_standard_when_balanced_and_no_blocks():
    """One-way balanced genotype trial: PEV of differences is exact, the three definitions agree."""
    rng = np.random.default_rng(1)
    g = np.repeat(["G%02d" % i for i in range(12)], 4)
    rep = np.tile(["R1", "R2", "R3", "R4"], 12)
    y = rng.normal(0, 1, 12)[np.arange(48) // 4] + rng.normal(0, 0.4, 4)[np.arange(48) % 4] + rng.normal(0, 0.7, 48)
    import pandas as pd

    d = pd.DataFrame({"gen": g, "rep": rep, "y": y})
    fit = vcomp.lmm("y ~ 1 + (1|gen) + (1|rep)", d)
    h = [fit.heritability("gen", m) for m in ("cullis", "piepho", "standard")]
    assert h[0] == pytest.approx(h[2], abs=1e-8) and h[1] == pytest.approx(h[2], abs=1e-6)


def test_errors():
    d = vcomp.simulate.random_slopes(n_cluster=20, obs_per_cluster=6, seed=1)
    fit = vcomp.lmm("y ~ x + (x|cluster)", d)
    with pytest.raises(vcomp.VcompError, match="random intercept"):
        fit.heritability("cluster")
    with pytest.raises(vcomp.VcompError, match="not a grouping factor"):
        fit.heritability("x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit1 = vcomp.lmm("y ~ x + (1|cluster)", d)
    with pytest.raises(vcomp.VcompError, match="cullis"):
        fit1.heritability("cluster", method="broad")
    with pytest.raises(vcomp.VcompError, match="no random term"):
        fit1.heritability("cluster", method="piepho")
    assert 0 < fit1.heritability("cluster", "standard") < 1
