"""Reduced statistics (vcomp._dask.stats) and the Dask plumbing (vcomp._dask, vcomp._dask.frame)."""
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcomp._dask.stats import Sums, cell_stats, combine_cells, combine_sums, weighted_rows

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 60), k=st.integers(1, 5), offset=st.sampled_from([0.0, 1e6]))
def test_combined_sums_are_exact(seed, n, k, offset):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, 3)) + offset
    cuts = np.sort(rng.integers(1, n, k - 1)) if n > 1 else []
    total = None
    for part in np.split(W, cuts):
        if len(part):
            total = combine_sums(total, Sums.of(part))
    full = Sums.of(W)
    np.testing.assert_allclose(total.mean, full.mean, rtol=1e-12)
    M = total.shifted(full.mean).M
    Wc = W - W.mean(axis=0)
    np.testing.assert_allclose(M, Wc.T @ Wc, rtol=1e-8, atol=1e-8 * n)
    raw = total.shifted(np.zeros(3)).M
    np.testing.assert_allclose(raw, W.T @ W, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 80), nu=st.integers(0, 3), cells=st.integers(1, 5))
def test_weighted_rows_reproduce_moments(seed, n, nu, cells):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, cells, (n, 1))
    u = rng.normal(size=(n, nu)) * [1, 10, 0.1][:nu] + 5
    if nu and n > 3:
        u[: n // 3, -1] = 2.0  # a constant covariate in some cells
    y = rng.normal(size=n) + u.sum(axis=1)
    half = n // 2
    cs = combine_cells(cell_stats(keys[:half], np.column_stack([u[:half], y[:half]])),
                       cell_stats(keys[half:], np.column_stack([u[half:], y[half:]]))) if half else \
        cell_stats(keys, np.column_stack([u, y]))
    wr = weighted_rows(cs, nu)
    cell = cs.keys[wr["cell"], 0]
    U = np.column_stack([np.ones(len(wr["w"])), wr["x"]])
    Ud = np.column_stack([np.ones(n), u])
    for c in np.unique(keys):
        r, o = cell == c, keys[:, 0] == c
        np.testing.assert_allclose((U[r] * wr["w"][r, None]).sum(0), Ud[o].sum(0), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(U[r].T @ (U[r] * wr["w"][r, None]), Ud[o].T @ Ud[o], rtol=1e-9, atol=1e-8)
        np.testing.assert_allclose(U[r].T @ (wr["w"][r] * wr["y"][r]), Ud[o].T @ y[o], rtol=1e-9, atol=1e-8)
    # a least-squares residual sum of squares is the same on the weighted rows (+ the within part)
    Xd = np.column_stack([np.eye(cells)[keys[:, 0]], u])
    X = np.column_stack([np.eye(cells)[cell], wr["x"]])
    b = np.linalg.lstsq(Xd, y, rcond=None)[0]
    rss = float(np.sum((y - Xd @ b) ** 2))
    rss_w = float(np.sum(wr["w"] * (wr["y"] - X @ b) ** 2)) + wr["within"]
    np.testing.assert_allclose(rss_w, rss, rtol=1e-7, atol=1e-9)


def test_progress_bar_on_long_passes(capsys, monkeypatch):
    import vcomp
    import vcomp._dask as vd

    monkeypatch.setattr(vd, "PROGRESS_MIN_SECONDS", 0.0)
    d = vcomp.datasets.load("shrink_base")
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vcomp.lmm("y ~ x + (1|cluster)", dd.from_pandas(d, npartitions=2))
    assert "100%" in capsys.readouterr().err
    with dask.config.set({"vcomp.progress": False, "scheduler": "threads"}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vcomp.lmm("y ~ x + (1|cluster)", dd.from_pandas(d, npartitions=2))
    assert "100%" not in capsys.readouterr().err


def test_stateful_transforms_and_expression_factors():
    import vcomp

    rng = np.random.default_rng(2)
    d = pd.DataFrame({"g": rng.integers(0, 12, 300), "x": rng.normal(50, 5, 300), "k": rng.integers(1, 4, 300)})
    d["y"] = 0.2 * d.x + d.k + rng.normal(size=12)[d.g] + rng.normal(size=300)
    d.loc[::29, "x"] = np.nan
    f = "y ~ scale(x) + C(k, Sum) + (1|g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m1 = vcomp.lmm(f, d)
        with dask.config.set(scheduler="synchronous"):
            m2 = vcomp.lmm(f, dd.from_pandas(d.sort_values("k"), npartitions=3))
    np.testing.assert_allclose(m2.fixef, m1.fixef, rtol=1e-8)
    assert list(m1.fixef.index) == list(m2.fixef.index)
    with pytest.raises(vcomp.VcompError, match="nests"):
        vcomp.lmm("y ~ center(scale(x)) + (1|g)", dd.from_pandas(d, npartitions=2))


def test_core_works_without_dask():
    code = ("import sys; sys.modules['dask'] = None\n"
            "import vcomp\n"
            "from vcomp._dask import require_dask\n"
            "m = vcomp.lmm('y ~ x + (1|cluster)', vcomp.datasets.load('shrink_base'))\n"
            "try:\n    require_dask()\nexcept vcomp.VcompError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "vcomp[dask]"' in out.stdout
