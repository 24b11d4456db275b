"""The access layer of the variance-component inference to a fit (vcomp.mixed.fitparts)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import vcomp
from vcomp.mixed import fitparts as F


@pytest.fixture(scope="module")
def fits():
    oats = vcomp.datasets.load("oats")
    d = vcomp.simulate.random_slopes(n_cluster=25, obs_per_cluster=6, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [vcomp.lmm("yield ~ variety*nitro + (1|block) + (1|block:variety)", oats),
                vcomp.lmm("yield ~ nitro + (1|block/variety)", oats, reml=False),
                vcomp.lmm("y ~ x + (x|cluster)", d)]


def test_criterion_pieces_reproduce_the_criterion(fits):
    for m in fits:
        for scale in (1.0, 0.5, 1.7):
            th = m.theta * scale
            ldL2, M = F.criterion_pieces(m, th)
            assert F.profiled_deviance(ldL2, M, m.nobs, m.reml) == pytest.approx(m._criterion(th), abs=1e-8)
        ldL2, M = F.criterion_pieces(m, m.theta)
        # with sigma held at its estimate the criterion is the same (sigma is the profiled optimum)
        assert F.profiled_deviance(ldL2, M, m.nobs, m.reml, sigma=m.sigma) == pytest.approx(-2 * m.loglik, abs=1e-8)
        # beta from M is the fit's beta (original units)
        p = M.shape[0] - 1
        assert np.allclose(np.linalg.solve(M[:p, :p], M[:p, p]), m.fixef, rtol=1e-8, atol=1e-8)


def test_fixed_coefficient_profile_minimum_is_at_the_estimate(fits):
    m = fits[1]  # ML fit
    ldL2, M = F.criterion_pieces(m, m.theta)
    b = m.fixef.to_numpy()
    d0 = F.profiled_deviance(ldL2, M, m.nobs, False, fixed=(1, b[1]))
    assert d0 == pytest.approx(m.deviance, abs=1e-8)
    assert F.profiled_deviance(ldL2, M, m.nobs, False, fixed=(1, b[1] + 1.0)) > d0


def test_ml_optimum(fits):
    m = fits[0]
    theta, dev = F.ml_optimum(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = vcomp.lmm(m.formula, m.data, reml=False)
    assert dev == pytest.approx(ml.deviance, abs=1e-6)
    assert np.allclose(theta, ml.theta, atol=1e-4)


def test_random_pev_is_hendersons_c22(fits):
    m = fits[0]
    X = m._X
    Z = m.Z.toarray()
    s2 = m.sigma ** 2
    G = s2 * (m._Lambda() @ m._Lambda().T).toarray()
    C = np.block([[X.T @ X, X.T @ Z], [Z.T @ X, Z.T @ Z + s2 * np.linalg.inv(G)]])
    Ci = s2 * np.linalg.inv(C)
    for t in F.re_layout(m):
        sl = slice(X.shape[1] + t.offset, X.shape[1] + t.offset + t.nlev * t.k)
        assert np.allclose(F.random_pev(m, t), Ci[sl, sl], rtol=1e-7, atol=1e-10)


def test_written_terms_and_lme4_names(fits):
    w = F.random_terms_as_written(fits[1])
    assert [x.group for x in w] == ["block", "block:variety"]
    assert [x.lme4_group for x in w] == ["block", "variety:block"]
    assert [x.lme4_group for x in F.random_terms_as_written(fits[0])] == ["block", "block:variety"]
    w = F.random_terms_as_written(fits[2])
    assert w[0].terms == ("x",) and w[0].intercept


def test_refit_keeps_rows_and_roles(fits):
    m = fits[0]
    red = F.reduced_model(m, random=[w for w in F.random_terms_as_written(m) if w.group == "block"], text="t")
    r = F.refit(m, red, True, vcomp.mixed.model.fit)
    assert r.nobs == m.nobs and list(r.fixef.index) == list(m.fixef.index)
    assert len(r.theta) == 1


def _central(f, th, h=1e-6):
    return np.array([(f(th + h * e) - f(th - h * e)) / (2 * h) for e in np.eye(len(th))])


@pytest.mark.parametrize("held", [False, True], ids=["sigma-profiled", "sigma-held"])
def test_criterion_gradient_is_the_derivative(fits, held):
    """The analytic gradient of profiled_deviance (sigma profiled, or held: the kernel with its degrees of
    freedom set to pwrss / sigma^2) against central differences of criterion_pieces."""
    for m in fits:
        th = np.asarray(m.theta) * 1.2 + 0.05
        sigma = 0.8 * m.sigma if held else None
        ldL2, M, g = F.criterion_gradient(m, th, m.reml, sigma=sigma)
        f = lambda t: F.profiled_deviance(*F.criterion_pieces(m, t), m.nobs, m.reml, sigma=sigma)  # noqa: E731
        assert F.profiled_deviance(ldL2, M, m.nobs, m.reml, sigma=sigma) == pytest.approx(f(th), abs=1e-9)
        assert np.allclose(g, _central(f, th), rtol=1e-5, atol=1e-5 * np.max(np.abs(g)))


def test_fixed_coef_criterion_is_the_held_coefficient_deviance(fits):
    for m in fits:
        th = np.asarray(m.theta) * 0.9 + 0.02
        for j in range(min(m.fixef.size, 3)):
            b = float(m.fixef.iloc[j]) + 0.5
            fj = F.fixed_coef_criterion(m, j, b)
            v, g = fj(th)
            f = lambda t: F.profiled_deviance(*F.criterion_pieces(m, t), m.nobs, False, fixed=(j, b))  # noqa: E731
            assert v == pytest.approx(f(th), abs=1e-8)
            assert np.allclose(g, _central(f, th), rtol=1e-5, atol=1e-5 * np.max(np.abs(g)))
