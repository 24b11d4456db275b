"""Type III hypotheses from the sum-coded design built on a few rows (``X_sum = X T``) equal the
ones from the sum-coded design on the whole frame."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp.inference import _hypotheses as H


def _data(n_cluster=150, per=20, seed=0):
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(n_cluster), per)
    n = cl.size
    x = rng.normal(size=n)
    trt = rng.integers(0, 3, n_cluster)[cl]
    y = 1 + 0.5 * x + 0.2 * trt + rng.normal(size=n_cluster)[cl] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "z": rng.normal(size=n), "trt": np.array(["t0", "t1", "t2"])[trt],
                         "f": rng.choice(["u", "v", "w", "q"], n), "k": rng.integers(0, 3, n),
                         "cluster": ["c%03d" % c for c in cl]})


_D = _data()
_MISSING = _D[~((_D.f == "u") & (_D.trt == "t1"))].reset_index(drop=True)

CASES = [("y ~ x + trt + (x|cluster)", _D), ("y ~ x*trt + z + (x|cluster)", _D),
         ("y ~ trt*f + x:f + (1|cluster)", _D), ("y ~ trt*f + (1|cluster)", _MISSING),
         ("y ~ x + trt:f + (1|cluster)", _D), ("y ~ 0 + trt + x + (1|cluster)", _D),
         ("y ~ x + I(x**2) + trt*k + (1|cluster)", _D)]


@pytest.mark.parametrize("formula,data", CASES, ids=[c[0] for c in CASES])
def test_subset_type3_equals_full_frame(formula, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm(formula, data)
    X = np.asarray(m._X, dtype=float)
    xtx = X.T @ X
    assert len(data) >= H.SUBSET_MIN_ROWS
    assert H._sum_coded_from_subset(m, m._fixed, X, xtx) is not None  # the shortcut is used
    full = H._type3_rows(m, m._fixed, xtx, fast=False)
    fast = H._type3_rows(m, m._fixed, xtx, fast=True)
    assert list(full) == list(fast)
    for k in full:
        assert full[k].shape == fast[k].shape
        np.testing.assert_allclose(fast[k], full[k], rtol=0, atol=1e-12)


def test_small_or_C_formula_uses_full_frame():
    d = _D.iloc[:600].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("y ~ x + trt + (1|cluster)", d)
        m2 = vcomp.lmm("y ~ x + C(k) + (1|cluster)", _D)
    X = np.asarray(m._X, dtype=float)
    assert H._sum_coded_from_subset(m, m._fixed, X, X.T @ X) is None
    X2 = np.asarray(m2._X, dtype=float)
    assert H._sum_coded_from_subset(m2, m2._fixed, X2, X2.T @ X2) is None
