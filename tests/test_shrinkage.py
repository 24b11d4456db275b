import numpy as np
import pytest

import vcomp
from vcomp.mixed.shrinkage import group_ols


@pytest.fixture(scope="module")
def fit():
    d = vcomp.simulate.random_slopes(obs_per_cluster=5, n_cluster=40, seed=2)
    d = d[~((d["cluster"] == "c001") & (d.index % 5 != 0))]  # c001 keeps one row: own slope not estimable
    return vcomp.lmm("y ~ x + (x|cluster)", d)


def test_columns_and_counts(fit):
    sh = fit.shrinkage()
    assert list(sh.columns) == ["n", "ols_Intercept", "ols_x", "mixed_Intercept", "mixed_x"]
    assert len(sh) == 40 and sh.loc["c001", "n"] == 1
    # not estimable: None (R's NA / JSON null), as the acceptance check compares it
    assert sh.loc["c001", "ols_x"] is None and sh.loc["c001", "ols_Intercept"] is None
    assert np.isnan(sh["ols_x"].astype(float)["c001"])
    assert np.isfinite(sh.loc["c001", "mixed_x"])


def test_mixed_is_fixed_plus_blup(fit):
    sh = fit.shrinkage("cluster")
    re = fit.ranef["cluster"]
    np.testing.assert_allclose(sh["mixed_x"], fit.fixef["x"] + re["x"].reindex(sh.index))
    np.testing.assert_allclose(sh["mixed_Intercept"], fit.fixef["Intercept"] + re["Intercept"].reindex(sh.index))


def test_shrinks_towards_population(fit):
    sh = fit.shrinkage()
    ok = sh["ols_x"].notna()
    assert np.var(sh.loc[ok, "mixed_x"]) < np.var(sh.loc[ok, "ols_x"])


def test_unknown_group(fit):
    with pytest.raises(vcomp.VcompError, match="nope"):
        fit.shrinkage("nope")


def test_group_ols_matches_lstsq():
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(3), 6)
    X = np.column_stack([np.ones(18), rng.normal(size=18)])
    y = rng.normal(size=18)
    from vcomp.mixed.crossprod import level_sums

    n = np.bincount(codes)
    coef = group_ols(level_sums(codes, 3, X), level_sums(codes, 3, X, y[:, None])[:, :, 0], n)
    for g in range(3):
        ref = np.linalg.lstsq(X[codes == g], y[codes == g], rcond=None)[0]
        np.testing.assert_allclose(coef[g], ref)
    assert list(n) == [6, 6, 6]


def test_plot_shrinkage(fit, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    fig = vcomp.plot.shrinkage(fit)
    fig.savefig(tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_plot_without_matplotlib_is_a_clear_error(fit, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="vcomp\\[plot\\]"):
        vcomp.plot.shrinkage(fit)


def test_random_intercept_only_follows_lme4_coef():
    """(1|cluster): own fit is lm(y ~ x) within the cluster; mixed_x is the fixed slope for all (lme4 coef())."""
    d = vcomp.simulate.random_slopes(obs_per_cluster=6, n_cluster=15, sd_slope=0.0, seed=4)
    fit = vcomp.lmm("y ~ x + (1|cluster)", d)
    sh = fit.shrinkage()
    assert list(sh.columns) == ["n", "ols_Intercept", "ols_x", "mixed_Intercept", "mixed_x"]
    np.testing.assert_allclose(sh["mixed_x"], fit.fixef["x"])
    g = d[d["cluster"] == sh.index[0]]
    ref = np.polyfit(g["x"], g["y"], 1)
    np.testing.assert_allclose([sh.iloc[0]["ols_x"], sh.iloc[0]["ols_Intercept"]], ref)
