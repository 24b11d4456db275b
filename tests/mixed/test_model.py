"""MixedModel methods of vcomp/mixed/model.py: refit."""
import warnings

import numpy as np
import pytest

import vcomp


def _fit():
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    d = des.simulate({"A": 3, "B": 3, "block": 4}, {"block": 1.0, "block:A": 0.5, "Residual": 0.5},
                     effects={"A": {"A2": 1.0}}, seed=3)
    return des, d, des.lmm(d, "y")


def test_refit_equals_a_new_fit():
    des, d, fit = _fit()
    y2 = np.random.default_rng(1).normal(size=len(d)) + d["y"].to_numpy()
    new = fit.refit(y2)
    d2 = d.copy()
    d2["y"] = y2
    ref = des.lmm(d2, "y")
    np.testing.assert_allclose(new.fixef, ref.fixef, rtol=1e-6)
    assert new.reml_criterion == pytest.approx(ref.reml_criterion, abs=1e-4)
    np.testing.assert_allclose(new.anova(ddf="kenward-roger")["F"], ref.anova(ddf="kenward-roger")["F"], rtol=1e-4)
    # the original fit is unchanged
    assert fit.reml_criterion == pytest.approx(des.lmm(d, "y").reml_criterion, abs=1e-8)


def test_warm_started_refits_reach_the_fresh_optimum(monkeypatch):
    """Refits from an interior fit take the warm-started quasi-Newton path and land where fresh fits do;
    draws whose optimum is near a zero component fall back to the full optimiser."""
    from vcomp.simulate import NoiseModel, expected_values
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    rng = np.random.default_rng(5)
    plan = des.layout({"A": 3, "B": 4, "block": 6}, seed=rng)
    mu = expected_values(des, plan, {"A": {"A2": 0.5}, "B": {"B2": 0.3}})
    noise = NoiseModel(des, plan, {"block": 1.0, "block:A": 0.3, "Residual": 0.5})
    d = plan.drop(columns="plot")
    import vcomp.mixed.model as mm
    paths = []
    real = mm.refine_theta
    monkeypatch.setattr(mm, "refine_theta", lambda *a, **k: paths.append(real(*a, **k) is not None) or real(*a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = des.lmm(d.assign(y=mu + noise.draw(rng)), "y")
        assert not fit.singular
        for _ in range(25):
            y = mu + noise.draw(rng)
            new, fresh = fit.refit(y), des.lmm(d.assign(y=y), "y")
            assert new.reml_criterion == pytest.approx(fresh.reml_criterion, abs=1e-7)
            np.testing.assert_allclose(new.theta, fresh.theta, rtol=1e-4, atol=1e-5)
    assert sum(paths) >= 20


def test_refine_theta_declines_at_a_boundary():
    from vcomp.mixed.optimize import refine_theta
    f = lambda x: float(x @ x)  # noqa: E731
    fg = lambda x: (float(x @ x), 2 * x)  # noqa: E731
    lower = np.zeros(2)
    assert refine_theta(f, fg, np.array([1e-3, 1.0]), lower, 2 * np.eye(2)) is None
    r = refine_theta(lambda x: float((x - 1) @ (x - 1)), lambda x: (float((x - 1) @ (x - 1)), 2 * (x - 1)),
                     np.array([0.5, 2.0]), lower, 2 * np.eye(2))
    np.testing.assert_allclose(r.theta, [1.0, 1.0])
    assert r.converged and r.nfev <= 3


@pytest.mark.parametrize("bad, match", [
    (np.ones(5), "5 values but the model has 36"),
    (np.r_[np.ones(35), np.nan], "missing or infinite"),
    (np.ones(36), "constant"),
    (["a"] * 36, "numeric"),
])
def test_refit_bad_y(bad, match):
    _, _, fit = _fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(vcomp.DataError, match=match):
            fit.refit(bad)


def test_refit_from_a_boundary_fit_finds_the_fresh_optimum():
    """A first fit with every component at zero must not trap the refits there (warm start on a flat bound)."""
    from vcomp.simulate import NoiseModel, expected_values
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    rng = np.random.default_rng(3)
    plan = des.layout({"A": 3, "B": 4, "block": 6}, seed=rng)
    mu = expected_values(des, plan, {"A": {"A2": 0.5}, "B": {"B2": 0.3, "B3": 0.6}})
    noise = NoiseModel(des, plan, {"block": 0.05, "block:A": 0.02, "Residual": 1.0})
    Y = [mu + noise.draw(rng) for _ in range(17)]
    d = plan.drop(columns="plot")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = des.lmm(d.assign(y=Y[0]), "y")
        assert fit.singular and np.all(fit.theta == 0)
        for j in (2, 16):  # draws where a refit warm-started at theta = 0 stayed there
            fresh = des.lmm(d.assign(y=Y[j]), "y")
            assert fit.refit(Y[j]).reml_criterion == pytest.approx(fresh.reml_criterion, abs=1e-6)


def test_refit_of_a_blocked_crossed_fit_equals_a_new_fit():
    """A crossed fit too large for the whole dense system (blocked factor) refits on the kept analysis."""
    import pandas as pd
    rng = np.random.default_rng(7)
    p_, s_ = np.meshgrid(np.arange(160), np.arange(60), indexing="ij")
    d = pd.DataFrame({"plate": p_.ravel().astype(str), "sample": s_.ravel().astype(str)})
    d = d.sample(frac=0.6, random_state=1).reset_index(drop=True)
    d["x"] = rng.normal(size=len(d))
    u, v = rng.normal(0, 1, 160), rng.normal(0, 2, 60)
    pi, si = d["plate"].astype(int).to_numpy(), d["sample"].astype(int).to_numpy()
    y1 = d["x"] + u[pi] + v[si] + rng.normal(0, 0.5, len(d))
    y2 = 0.5 * u[pi] + v[si] + rng.normal(0, 1.0, len(d))
    f = "y ~ x + (1|plate) + (1|sample)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = vcomp.lmm(f, d.assign(y=y1))
        new, ref = fit.refit(y2), vcomp.lmm(f, d.assign(y=y2))
        assert new.reml_criterion == pytest.approx(ref.reml_criterion, abs=1e-6)
        np.testing.assert_allclose(new.theta, ref.theta, rtol=1e-5)
        np.testing.assert_allclose(new.anova(ddf="kenward-roger").to_numpy(),
                                   ref.anova(ddf="kenward-roger").to_numpy(), rtol=1e-5)
        np.testing.assert_allclose(new.ranef["plate"].to_numpy(), ref.ranef["plate"].to_numpy(),
                                   rtol=1e-5, atol=1e-8)
