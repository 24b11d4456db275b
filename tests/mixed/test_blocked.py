"""The trailing-block kinds of the blocked factor (``plain``, ``scaled``, ``struct``) give the same numbers."""
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp.mixed import blocked, criterion


def _met(n_gen=240, n_env=6, seed=4):
    rng = np.random.default_rng(seed)
    gen = np.repeat(np.arange(n_gen), 2 * n_env)
    env = np.tile(np.repeat(np.arange(n_env), 2), n_gen)
    keep = rng.random(gen.size) > 0.15                         # unbalanced: some cells with one replicate
    gen, env = gen[keep], env[keep]
    y = (rng.normal(size=n_gen)[gen] + 2 * rng.normal(size=n_env)[env]
         + rng.normal(size=(n_gen, n_env))[gen, env] + rng.normal(size=gen.size))
    return pd.DataFrame({"y": y, "x": rng.normal(size=gen.size), "gen": gen.astype(str), "env": env.astype(str)})


def _crossed(seed=3, n=3000):
    rng = np.random.default_rng(seed)
    g, h, e = rng.integers(0, 160, n), rng.integers(0, 30, n), rng.integers(0, 5, n)
    y = rng.normal(size=160)[g] + rng.normal(size=30)[h] + rng.normal(size=5)[e] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": rng.normal(size=n), "g": g.astype(str), "h": h.astype(str),
                         "e": e.astype(str)})


CASES = {
    "met": (_met, "y ~ x + (1|gen) + (1|env) + (1|gen:env)"),
    "met_extra_term": (_met, "y ~ x + (1|gen) + (1|env) + (1|gen:env) + (1|env:x_)"),
    "crossed": (_crossed, "y ~ x + (1|g) + (1|h) + (1|e)"),
}


def _fit(name):
    make, formula = CASES[name]
    d = make()
    if "x_" in formula:
        d["x_"] = (d["x"] > 0).astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vcomp.lmm(formula, d)


def _kernel(m, monkeypatch, struct=True):
    with monkeypatch.context() as mp:
        mp.setattr(criterion, "DENSE_SMALL_Q", 0)
        mp.setattr(blocked.BlockedPattern, "use_struct", struct)
        return criterion.GeneralKernel(m._re_terms, m._cp)


def _compare(ref, new, th):
    with monkeypatch_scaled(ref):
        v1, g1 = ref.value_and_grad(th, True)
        s1 = ref.solve(th, True)
        f1 = ref.pattern.factor(th)
        t1 = ref.pattern.inverse_traces(f1)
        C1 = ref.pattern.dense_inverse(f1)
        V = np.random.default_rng(1).normal(size=(C1.shape[0], 3))
        x1 = ref.pattern.inv_solve(f1, V)
    v2, g2 = new.value_and_grad(th, True)
    s2 = new.solve(th, True)
    f2 = new.pattern.factor(th)
    t2 = new.pattern.inverse_traces(f2)
    C2 = new.pattern.dense_inverse(f2)
    x2 = new.pattern.inv_solve(f2, V)
    assert v1 == pytest.approx(v2, rel=1e-11)
    assert np.allclose(g1, g2, rtol=1e-7, atol=1e-8 * max(1.0, np.max(np.abs(g1))))
    for a, b in zip(s1["b_terms"] + s1["condvar_terms"], s2["b_terms"] + s2["condvar_terms"]):
        assert np.allclose(a, b, rtol=1e-8, atol=1e-10)
    assert np.allclose(t1["diag"], t2["diag"], rtol=1e-9, atol=1e-12)
    assert np.allclose(t1["norms"], t2["norms"], rtol=1e-9, atol=1e-12)
    assert np.allclose(C1, C2, rtol=1e-9, atol=1e-12)
    assert np.allclose(x1, x2, rtol=1e-9, atol=1e-12)
    return f1, f2


class monkeypatch_scaled:
    """Evaluate a reference kernel with the explicitly scaled (``plain``) trailing factor."""

    def __init__(self, k):
        self.k = k

    def __enter__(self):
        self.old = blocked._SCALED_MIN
        blocked._SCALED_MIN = np.inf

    def __exit__(self, *exc):
        blocked._SCALED_MIN = self.old


@pytest.mark.parametrize("name", list(CASES))
def test_kinds_agree(name, monkeypatch):
    m = _fit(name)
    ref = _kernel(m, monkeypatch, struct=False)
    new = _kernel(m, monkeypatch, struct=True)
    assert new.pattern.scalar
    if name.startswith("met"):
        assert new.pattern.struct and not ref.pattern.struct
    rng = np.random.default_rng(2)
    for th in (m._theta, m._theta * 0.7 + 0.2 + 0.1 * rng.random(len(m._theta))):
        f1, f2 = _compare(ref, new, th)
        assert f1.t22["kind"] == "plain"
        assert f2.t22["kind"] == ("struct" if name.startswith("met") else "scaled")


@pytest.mark.parametrize("name", ["met", "crossed"])
@pytest.mark.parametrize("reml", [True, False])
def test_gradient_matches_finite_differences(name, reml, monkeypatch):
    m = _fit(name)
    k = _kernel(m, monkeypatch)
    th = m._theta * 0.8 + 0.1
    v, g = k.value_and_grad(th, reml)
    fd = np.array([(k(th + e, reml) - k(th - e, reml)) / 2e-6 for e in np.eye(len(th)) * 1e-6])
    assert np.max(np.abs(g - fd)) <= 1e-5 * max(1.0, np.max(np.abs(fd)))


@pytest.mark.parametrize("name", ["met", "crossed"])
def test_zero_and_tiny_trailing_scales(name, monkeypatch):
    """On the boundary (a trailing θ of 0) or just above ``_SCALED_MIN`` every kind agrees with ``plain``."""
    m = _fit(name)
    ref = _kernel(m, monkeypatch, struct=False)
    new = _kernel(m, monkeypatch, struct=True)
    for which in range(len(m._theta)):
        for small in (0.0, 2 * blocked._SCALED_MIN):
            th = m._theta * 0.9 + 0.05
            th[which] = small
            for reml in (True, False):
                with monkeypatch_scaled(ref):
                    v1, g1 = ref.value_and_grad(th, reml)
                v2, g2 = new.value_and_grad(th, reml)
                assert v1 == pytest.approx(v2, rel=1e-11)
                assert np.allclose(g1, g2, rtol=1e-6, atol=1e-7 * max(1.0, np.max(np.abs(g1))))


@pytest.mark.parametrize("name", ["met", "crossed"])
def test_kept_factor_is_not_changed_by_its_users(name, monkeypatch):
    """The last factor is reused at the same θ: every user leaves it as it was (fresh kernel = reused one)."""
    m = _fit(name)
    th = m._theta * 0.9 + 0.05
    k = _kernel(m, monkeypatch)
    pat = k.pattern
    fac = pat.factor(th)
    V = np.random.default_rng(3).normal(size=(pat.q1 + pat.q2, 2))
    first = (k.value_and_grad(th, True), pat.inverse_traces(fac), pat.inv_solve(fac, V))
    k.solve(th, True)
    pat.dense_inverse(fac)
    pat.selected_inverse(fac)
    assert pat.factor(th) is fac and pat.factor(th * 1.01) is not fac
    fresh = _kernel(m, monkeypatch)
    again = (fresh.value_and_grad(th, True), fresh.pattern.inverse_traces(fresh.pattern.factor(th)),
             fresh.pattern.inv_solve(fresh.pattern.factor(th), V))
    assert first[0][0] == again[0][0] and np.array_equal(first[0][1], again[0][1])
    assert np.array_equal(first[1]["diag"], again[1]["diag"]) and np.array_equal(first[2], again[2])
    k2 = _kernel(m, monkeypatch)
    k2.pattern.factor(th)
    k2.solve(th, True)
    k2.pattern.dense_inverse(k2.pattern.factor(th))
    v, g = k2.value_and_grad(th, True)
    assert v == first[0][0] and np.array_equal(g, first[0][1])


def test_with_response_keeps_the_analysis_for_a_new_response(monkeypatch):
    m = _fit("met")
    k = _kernel(m, monkeypatch)
    th = m._theta * 0.9 + 0.05
    rng = np.random.default_rng(5)
    ZtW = k.ZtW.copy()
    ZtW[:, -1] = rng.normal(size=ZtW.shape[0])
    k.pattern.factor(th)
    new = k.pattern.with_response(ZtW)
    ref = blocked.BlockedPattern(k.terms, k.ZtZ_sp, ZtW)
    f1, f2 = new.factor(th), ref.factor(th)
    assert f1 is not k.pattern.factor(th)
    assert f1.ldL2 == pytest.approx(f2.ldL2, rel=1e-13) and np.allclose(f1.RtR, f2.RtR, rtol=1e-12)
