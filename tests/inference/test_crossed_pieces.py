"""Kenward-Roger / Satterthwaite pieces of crossed scalar-term fits from the blocked factor equal the dense ones."""
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp.inference import _pieces
from vcomp.inference.kenward_roger import kr_md
from vcomp.inference.satterthwaite import satterthwaite_md


def _data(seed=3, n=3000):
    rng = np.random.default_rng(seed)
    g, h, e, trt = rng.integers(0, 160, n), rng.integers(0, 30, n), rng.integers(0, 5, n), rng.integers(0, 3, n)
    y = (rng.normal(size=160)[g] + rng.normal(size=30)[h] + rng.normal(size=5)[e] + 0.3 * trt
         + 0.8 * rng.normal(size=(160, 30))[g, h] + rng.normal(size=n))
    return pd.DataFrame({"y": y, "g": g.astype(str), "h": h.astype(str), "e": e.astype(str),
                         "trt": trt.astype(str), "x": rng.normal(size=n)})


@pytest.mark.parametrize("formula", ["y ~ trt + x + (1|g) + (1|h) + (1|e)", "y ~ trt + (1|g) + (1|g:h) + (1|h)"])
@pytest.mark.parametrize("reml", [True, False])
def test_crossed_pieces_match_dense(formula, reml, monkeypatch):
    from vcomp.mixed import criterion
    monkeypatch.setattr(criterion, "DENSE_SMALL_Q", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm(formula, _data(), reml=reml)
    assert m._kernel.mode == "blocked" and m._kernel.pattern.scalar
    assert _pieces._crossed_ok(m._re_terms, m._theta, m._kernel)
    gcp = m._cp.general(m._re_terms)
    dense = _pieces.compute_pieces(gcp, m._re_terms, m._theta, m.sigma_int, reml=reml)
    crossed = _pieces.compute_pieces_crossed(gcp, m._re_terms, m._theta, m.sigma_int, reml=reml, kernel=m._kernel)
    for name in ("Phi", "IE2", "Hobs", "beta"):
        a, b = getattr(dense, name), getattr(crossed, name)
        assert np.allclose(a, b, rtol=1e-8, atol=1e-10 * np.max(np.abs(a)))
    for k in dense.Q:
        assert np.allclose(dense.Q[k], crossed.Q[k], rtol=1e-7, atol=1e-9 * np.max(np.abs(dense.Q[k])))
    L = np.zeros((2, len(dense.beta)))
    L[0, 1] = L[1, 2] = 1.0
    s1, s2 = satterthwaite_md(dense, L), satterthwaite_md(crossed, L)
    assert s1["den_df"] == pytest.approx(s2["den_df"], rel=1e-8) and s1["F"] == pytest.approx(s2["F"], rel=1e-10)
    if reml:
        k1, k2 = kr_md(dense, L), kr_md(crossed, L)
        assert k1["den_df"] == pytest.approx(k2["den_df"], rel=1e-8) and k1["F"] == pytest.approx(k2["F"], rel=1e-10)


def test_model_uses_crossed_pieces_for_large_q(monkeypatch):
    from vcomp.mixed import criterion
    monkeypatch.setattr(criterion, "DENSE_SMALL_Q", 0)
    monkeypatch.setattr(_pieces, "_BLOCKED_INVERSE_Q", 10)
    calls = []
    real = _pieces.compute_pieces_crossed
    monkeypatch.setattr(_pieces, "compute_pieces_crossed", lambda *a, **k: calls.append(1) or real(*a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("y ~ trt + (1|g) + (1|h)", _data())
    tab = m.anova(ddf="kenward-roger")
    assert calls and np.isfinite(tab.loc["trt", "den_df"])


def test_too_many_random_effects_for_dense_pieces_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_pieces, "MAX_DENSE_PIECES_Q", 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("y ~ trt + (x|g) + (1|h)", _data())
    with pytest.raises(vcomp.VcompError, match="random effects"):
        m.anova(ddf="kenward-roger")
