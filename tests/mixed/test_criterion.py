"""The analytic gradient of the profiled criterion against central finite differences, every term structure."""
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp.mixed.criterion import make_kernel, objective


def _data(seed=1, n=360):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 18, n)
    h = rng.integers(0, 7, n)
    a = rng.integers(0, 3, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = (1 + x + rng.normal(size=18)[g] + 0.5 * rng.normal(size=18)[g] * x + rng.normal(size=7)[h]
         + 0.4 * rng.normal(size=7)[h] * z + rng.normal(size=(18, 3))[g, a] + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": 3 * x + 10, "z": z, "g": g.astype(str), "h": h.astype(str),
                         "a": a.astype(str)})


CASES = {
    "intercept": "y ~ x + (1|g)",
    "slope": "y ~ x + (x|g)",
    "uncorrelated": "y ~ x + (x||g)",
    "two_terms_one_factor": "y ~ x + (1|g) + (0+z|g)",
    "crossed_scalar": "y ~ x + (1|g) + (1|h)",
    "nested_scalar": "y ~ x + (1|g/a)",
    "crossed_slope_first": "y ~ x + (x|g) + (1|h)",
    "crossed_slope_trailing": "y ~ x + (1|g) + (z|h)",
    "crossed_both_slopes": "y ~ x + (x|g) + (z|h)",
    "three_factors_mixed": "y ~ x + (1|g:a) + (1|g) + (x|h)",
    "uncorrelated_trailing": "y ~ x + (1|g:a) + (z||h)",
}


def _fd(f, th, h=1e-6):
    out = np.zeros(len(th))
    for i in range(len(th)):
        e = np.zeros(len(th))
        e[i] = h
        out[i] = (f(th + e) - f(th - e)) / (2 * h)
    return out


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("mode", ["dense", "blocked"])
def test_gradient_matches_finite_differences(data, name, reml, mode, monkeypatch):
    from vcomp.mixed import criterion
    if mode == "blocked":
        monkeypatch.setattr(criterion, "DENSE_SMALL_Q", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm(CASES[name], data, reml=reml)
    k = m._kernel
    if not m._cp.block:
        assert k.mode == mode
    elif mode == "blocked":
        pytest.skip("one grouping factor: the per-level kernel")
    rng = np.random.default_rng(7)
    for th in (m._theta, np.abs(m._theta) * 0.6 + 0.3 + 0.1 * rng.random(len(m._theta))):
        v, g = k.value_and_grad(th, reml)
        assert v == pytest.approx(k(th, reml), rel=1e-12)
        fd = _fd(lambda t: k(t, reml), th)
        assert np.max(np.abs(g - fd)) <= 1e-5 * max(1.0, np.max(np.abs(fd)))


def test_gradient_is_zero_at_the_optimum_and_used(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("y ~ x + (x|g) + (1|h)", data)
    _, g = m._kernel.value_and_grad(m._theta, True)
    assert np.max(np.abs(g)) < 1e-3
    assert m._opt.ngev > 0 and m._opt.nfev < 60


def test_objective_pairs_kernel_and_gradient(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("y ~ x + (1|g) + (1|h)", data)
    f, fg = objective(m._kernel, True)
    assert fg is not None and f(m._theta) == pytest.approx(fg(m._theta)[0])


@pytest.mark.parametrize("formula", ["y ~ x + (1|g) + (1|h)", "y ~ x + (x|g) + (z|h)", "y ~ x + (1|g/a)"])
def test_dense_and_blocked_kernels_agree(data, formula, monkeypatch):
    """Criterion, gradient, BLUPs and conditional variances are the same from the whole dense and the blocked factor."""
    from vcomp.mixed import criterion
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm(formula, data)
    dense = m._kernel
    monkeypatch.setattr(criterion, "DENSE_SMALL_Q", 0)
    blocked = criterion.GeneralKernel(m._re_terms, m._cp)
    assert dense.mode == "dense" and blocked.mode == "blocked"
    th = m._theta * 0.9 + 0.05
    v1, g1 = dense.value_and_grad(th, True)
    v2, g2 = blocked.value_and_grad(th, True)
    assert v1 == pytest.approx(v2, rel=1e-11) and np.allclose(g1, g2, rtol=1e-7, atol=1e-8)
    s1, s2 = dense.solve(th, True), blocked.solve(th, True)
    for a, b in zip(s1["b_terms"] + s1["condvar_terms"], s2["b_terms"] + s2["condvar_terms"]):
        assert np.allclose(a, b, rtol=1e-8, atol=1e-10)


def test_blocked_and_block_kernels_agree_on_one_factor(data):
    """The general (blocked) kernel on a one-factor model equals the per-level kernel, gradient included."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("y ~ x + (x|g)", data)
    from vcomp.mixed.criterion import GeneralKernel
    gk = GeneralKernel(m._re_terms, m._cp.general(m._re_terms))
    th = m._theta * 0.8 + 0.1
    v1, g1 = m._kernel.value_and_grad(th, True)
    v2, g2 = gk.value_and_grad(th, True)
    assert v1 == pytest.approx(v2, rel=1e-11)
    assert np.allclose(g1, g2, rtol=1e-8, atol=1e-8)
    assert make_kernel(m._re_terms, m._cp).__class__.__name__ == "BlockKernel"


def test_two_level_trailing_factor_matches_dense_trailing(monkeypatch):
    """MET shape (cells nested in genotype x environment): the genotype block of the Schur complement stays
    diagonal and is eliminated again; criterion, gradient and BLUPs equal the plain dense trailing factor."""
    rng = np.random.default_rng(4)
    gen = np.repeat(np.arange(240), 12)
    env = np.tile(np.repeat(np.arange(6), 2), 240)
    y = rng.normal(size=240)[gen] + 2 * rng.normal(size=6)[env] + rng.normal(size=(240, 6))[gen, env] \
        + rng.normal(size=gen.size)
    d = pd.DataFrame({"y": y, "gen": gen.astype(str), "env": env.astype(str)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("y ~ 1 + (1|gen) + (1|env) + (1|gen:env)", d)
    k = m._kernel
    assert k.mode == "blocked" and k.pattern.split2
    th = m._theta * 0.8 + 0.1
    v1, g1 = k.value_and_grad(th, True)
    s1 = k.solve(th, True)
    fd = _fd(lambda t: k(t, True), th)
    assert np.max(np.abs(g1 - fd)) <= 1e-5 * max(1.0, np.max(np.abs(fd)))
    from vcomp.mixed import blocked, criterion
    assert k.pattern.struct
    monkeypatch.setattr(blocked.BlockedPattern, "use_struct", False)
    k = criterion.GeneralKernel(m._re_terms, m._cp)
    assert not k.pattern.struct
    v2, g2 = k.value_and_grad(th, True)
    s2 = k.solve(th, True)
    assert v1 == pytest.approx(v2, rel=1e-11) and np.allclose(g1, g2, rtol=1e-7, atol=1e-8)
    for a, b in zip(s1["b_terms"] + s1["condvar_terms"], s2["b_terms"] + s2["condvar_terms"]):
        assert np.allclose(a, b, rtol=1e-8, atol=1e-10)


def test_dense_off_diagonal_block_matches_pairs(monkeypatch):
    """Fully crossed (each level of the first factor meets every level of the second): the dense Z12 path
    gives the same criterion and gradient as the pair-product path."""
    rng = np.random.default_rng(8)
    p_, s_ = np.meshgrid(np.arange(120), np.arange(15), indexing="ij")
    p_, s_ = p_.ravel(), s_.ravel()
    y = rng.normal(size=120)[p_] + 2 * rng.normal(size=15)[s_] + rng.normal(size=p_.size)
    d = pd.DataFrame({"y": y, "plate": p_.astype(str), "sample": s_.astype(str)})
    from vcomp.mixed import blocked, criterion
    monkeypatch.setattr(criterion, "DENSE_SMALL_Q", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("y ~ 1 + (1|plate) + (1|sample)", d)
    k = m._kernel
    assert k.pattern.D12 is not None
    th = m._theta * 0.9 + 0.05
    v1, g1 = k.value_and_grad(th, True)
    tr1 = k.pattern.inverse_traces(k.pattern.factor(th))
    real = blocked.BlockedPattern.__init__

    def no_dense(self, *a, **kw):
        real(self, *a, **kw)
        if self.D12 is not None:
            self.D12 = None
            f1, f2, lp = blocked._level_pairs(self.fstart, np.diff(self.fstart).astype(np.int64), upper=True)
            c1, c2 = self.cols[f1], self.cols[f2]
            q2, g1 = self.q2, self.g1
            self.Pmat = blocked.sp.csr_matrix((self.D[0, f1] * self.D[0, f2], (c1 * q2 + c2, lp)), shape=(q2 * q2, g1))
            self.PmatT2 = blocked.sp.csr_matrix((self.D[0, f1] * self.D[0, f2] * np.where(c1 == c2, 1.0, 2.0),
                                                 (lp, c1 * q2 + c2)), shape=(g1, q2 * q2))
    monkeypatch.setattr(blocked.BlockedPattern, "__init__", no_dense)
    k2 = criterion.GeneralKernel(m._re_terms, m._cp)
    assert k2.pattern.D12 is None
    v2, g2 = k2.value_and_grad(th, True)
    tr2 = k2.pattern.inverse_traces(k2.pattern.factor(th))
    assert v1 == pytest.approx(v2, rel=1e-11) and np.allclose(g1, g2, rtol=1e-7, atol=1e-8)
    assert np.allclose(tr1["diag"], tr2["diag"]) and np.allclose(tr1["norms"], tr2["norms"])
