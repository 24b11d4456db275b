"""lmm on a Dask DataFrame gives the in-memory fit's numbers (vcomp._dask.mixed)."""
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vcomp
from vcomp._coding import UnusedLevelsWarning

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")

REL, DF_REL = 1e-6, 1e-4


@pytest.fixture(autouse=True)
def _sync():
    with dask.config.set(scheduler="synchronous"):
        yield


def sim(n=600, g=30, h=5, seed=1):
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"g": rng.integers(0, g, n), "h": rng.choice(["h%d" % i for i in range(h)], n),
                      "A": rng.choice(["a1", "a2", "a3"], n), "x": rng.normal(size=n),
                      "z": rng.uniform(0.5, 3.0, n)})
    b0, b1, c = rng.normal(size=g), rng.normal(0, 0.5, g), rng.normal(0, 0.7, h)
    gh = rng.normal(0, 0.5, (g, h))
    hi = d["h"].str[1:].astype(int).to_numpy()
    d["y"] = (1000 + 2 * d.x + (d.A == "a2") + b0[d.g] + b1[d.g] * d.x + c[hi] + gh[d.g, hi] + rng.normal(size=n))
    d["xo"] = d["x"] + 100.0  # offsets: the standardisation must hold out of core too
    d["y0"] = d["y"] - 1000.0  # without an intercept y is not centred: keep its mean small
    return d


def split(d, sizes):
    """A Dask frame whose partitions are consecutive blocks of ``d`` of the given sizes (0 allowed)."""
    cuts = np.cumsum([0] + list(sizes))
    parts = [d.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    return dd.from_map(lambda i: parts[i], range(len(parts)), meta=d.iloc[:0], divisions=None,
                       enforce_metadata=False)


def fit_both(formula, data, ddata, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vcomp.lmm(formula, data, **kw), vcomp.lmm(formula, ddata, **kw)


def close(a, b, rel=REL, atol=1e-9):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, rtol=rel, atol=atol)


def assert_same_fit(m1, m2, tests=True):
    assert m2.nobs == m1.nobs
    close(m1.reml_criterion if m1.reml else m1.deviance, m2.reml_criterion if m2.reml else m2.deviance, atol=1e-6)
    assert list(m1.fixef.index) == list(m2.fixef.index)
    close(m1.fixef, m2.fixef)
    close(m1.vcov, m2.vcov, atol=1e-12)
    pd.testing.assert_frame_equal(m1.varcorr[["grp", "var1", "var2"]], m2.varcorr[["grp", "var1", "var2"]])
    close(m1.varcorr["vcov"], m2.varcorr["vcov"], atol=1e-10)
    close(m1.theta, m2.theta, atol=1e-7)
    assert m1.singular == m2.singular
    for g in m1.ranef:
        pd.testing.assert_index_equal(m1.ranef[g].index, m2.ranef[g].index)
        close(m1.ranef[g], m2.ranef[g], atol=1e-7)
    if not tests:
        return
    for ddf in ("satterthwaite", "kenward-roger"):
        c1, c2 = m1.coef_table(ddf), m2.coef_table(ddf)
        close(c1[["estimate", "se", "t"]], c2[["estimate", "se", "t"]], atol=1e-9)
        close(c1["df"], c2["df"], rel=DF_REL)
        for t in (1, 2, 3):
            a1, a2 = m1.anova(ddf, t), m2.anova(ddf, t)
            pd.testing.assert_index_equal(a1.index, a2.index)
            close(a1[["num_df", "F"]], a2[["num_df", "F"]], atol=1e-9)
            close(a1["den_df"], a2["den_df"], rel=DF_REL)


FORMULAS = {
    "intercepts": "y ~ xo + (1|g)",
    "slopes": "y ~ xo + (x|g)",
    "uncorrelated": "y ~ x + (x||g)",
    "crossed": "y ~ xo + (1|g) + (1|h)",
    "nested": "y ~ x + (1|h/g)",
    "factor*covariate": "y ~ A*xo + (1|g)",
    "no intercept": "y0 ~ 0 + A + x + (1|g)",
    "expressions": "y ~ log(z) + center(xo) + I(x^2) + (1|g)",
}


@pytest.mark.parametrize("name", list(FORMULAS))
def test_same_numbers_as_in_memory(name):
    d = sim()
    m1, m2 = fit_both(FORMULAS[name], d, split(d, [100, 0, 250, 250]))
    assert_same_fit(m1, m2)
    L = np.zeros(len(m1.fixef))
    L[-1] = 1.0
    for ddf in ("satterthwaite", "kenward-roger"):
        close(m1.contrast(L, ddf), m2.contrast(L, ddf), rel=DF_REL, atol=1e-9)
    close(m1.vcov_kr(), m2.vcov_kr(), atol=1e-12)


def test_ml_and_design_entry():
    d = sim(seed=2)
    dk = dd.from_pandas(d, npartitions=4)
    m1, m2 = fit_both("y ~ x + (x|g)", d, dk, reml=False)
    assert_same_fit(m1, m2, tests=False)
    close(m1.aic, m2.aic, atol=1e-6)
    des = vcomp.Design(fixed="A", random="h + h:g")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same_fit(des.lmm(d, "y"), des.lmm(dk, "y"))


def test_levels_missing_from_partitions():
    # sorted by g: every partition lacks most levels; the first partition lacks A's reference level
    d = sim(seed=3).sort_values(["g", "A"], kind="stable").reset_index(drop=True)
    d.loc[d.index[:80], "A"] = "a3"
    m1, m2 = fit_both("y ~ A + x + (x|g) + (1|h)", d, split(d, [80, 120, 0, 200, 200]))
    assert_same_fit(m1, m2)


def test_rank_deficient_fixed_part():
    d = sim(seed=4)
    d["B"] = np.random.default_rng(0).choice(["u", "v", "w"], len(d))
    d = d[~((d.A == "a1") & (d.B == "u"))].reset_index(drop=True)  # an empty A:B cell
    m1, m2 = fit_both("y ~ A*B + x + (1|g)", d, dd.from_pandas(d, npartitions=3))
    assert list(m1.fixef.index) == list(m2.fixef.index)
    assert_same_fit(m1, m2)


def test_shrinkage_and_lazy_rows():
    d = sim(seed=5)
    dk = dd.from_pandas(d, npartitions=3)
    m1, m2 = fit_both("y ~ x + (x|g) + (1|h)", d, dk)
    for g in ("g", "h"):
        s1, s2 = m1.shrinkage(g), m2.shrinkage(g)
        pd.testing.assert_index_equal(s1.index, s2.index)
        assert list(s1.columns) == list(s2.columns)
        close(s1.to_numpy(float), s2.to_numpy(float), atol=1e-8)
    for meth in ("fitted", "residuals"):
        lazy = getattr(m2, meth)()
        assert isinstance(lazy, dd.Series)
        got = lazy.compute()
        close(getattr(m1, meth)(), got.to_numpy(), atol=1e-8)
        assert list(got.index) == list(d.index)
    close(m1.predict(d.head(9)), m2.predict(d.head(9)), atol=1e-8)
    close(m1.predict(re=False), m2.predict(re=False).compute().to_numpy(), atol=1e-8)
    lazy = m1.predict(dd.from_pandas(d.head(9), npartitions=2))
    close(m1.predict(d.head(9)), lazy.compute().to_numpy())
    assert list(m2.data.compute().columns) == ["y", "x", "g", "h"]
    assert "Dask" in str(m2)


def test_missing_values_dropped_and_counted():
    d = sim(seed=6)
    d.loc[d.index[::17], "x"] = np.nan
    d.loc[d.index[:40], "y"] = np.nan  # the whole first partition
    with pytest.warns(vcomp.DroppedRowsWarning) as w1:
        vcomp.lmm("y ~ x + (1|g)", d)
    with pytest.warns(vcomp.DroppedRowsWarning) as w2:
        m2 = vcomp.lmm("y ~ x + (1|g)", split(d, [40, 300, 260]))
    assert [str(w.message) for w in w1 if w.category is vcomp.DroppedRowsWarning] == \
        [str(w.message) for w in w2 if w.category is vcomp.DroppedRowsWarning]
    assert m2.n_dropped == int(d[["x", "y"]].isna().any(axis=1).sum())


def test_categorical_and_string_factors():
    d = sim(seed=7)
    d["A"] = pd.Categorical(d["A"], categories=["a3", "a1", "a2", "unused"], ordered=True)
    d["g"] = "c" + d["g"].astype(str)
    with pytest.warns(UnusedLevelsWarning):
        m1 = vcomp.lmm("y ~ A + x + (1|g)", d)
    with pytest.warns(UnusedLevelsWarning):
        m2 = vcomp.lmm("y ~ A + x + (1|g)", dd.from_pandas(d, npartitions=3))
    assert_same_fit(m1, m2, tests=False)


def test_errors_as_in_memory():
    d = sim(seed=8)
    dk = dd.from_pandas(d, npartitions=2)
    for formula in ("y ~ xx + (1|g)", "yy ~ x + (1|g)", "y ~ x"):
        with pytest.raises(vcomp.VcompError) as e1:
            vcomp.lmm(formula, d)
        with pytest.raises(vcomp.VcompError) as e2:
            vcomp.lmm(formula, dk)
        assert type(e1.value) is type(e2.value) and str(e1.value) == str(e2.value)
    with pytest.raises(vcomp.VcompError, match="unknown keyword"):
        vcomp.lmm("y ~ x + (1|g)", dk, weights="x")
    with pytest.raises(vcomp.DataError, match="to_frame"):
        vcomp.lmm("y ~ x + (1|g)", dk["y"])
    with pytest.raises(vcomp.DataError, match="no complete rows"):
        vcomp.lmm("y ~ x + (1|g)", dd.from_pandas(d.assign(y=np.nan), npartitions=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("y ~ x + (1|g)", dk)
    with pytest.raises(vcomp.VcompError, match="Dask"):
        m.refit(np.zeros(len(d)))
    with pytest.raises(vcomp.VcompError, match="Dask"):
        m.Z


def test_processes_scheduler():
    """Everything a partition needs pickles (process and distributed schedulers)."""
    d = sim(n=200, seed=9)
    with dask.config.set(scheduler="processes", num_workers=2):
        m1, m2 = fit_both("y ~ x + (1|g)", d, dd.from_pandas(d, npartitions=2))
        assert_same_fit(m1, m2, tests=False)
        close(m1.fitted(), m2.fitted().compute().to_numpy(), atol=1e-8)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(60, 400), g=st.integers(3, 25), k=st.integers(1, 6),
       order=st.sampled_from(["random", "by g", "by A"]), slopes=st.booleans(), crossed=st.booleans())
def test_property_partitionings(seed, n, g, k, order, slopes, crossed):
    rng = np.random.default_rng(seed)
    d = sim(n=n, g=g, h=4, seed=seed)
    if order != "random":
        d = d.sort_values("g" if order == "by g" else "A", kind="stable").reset_index(drop=True)
    sizes = np.diff(np.sort(np.concatenate([[0, n], rng.integers(0, n + 1, k - 1)])))
    formula = "y ~ A + x + (%s|g)%s" % ("x" if slopes else "1", " + (1|h)" if crossed else "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m1 = vcomp.lmm(formula, d)
    except vcomp.VcompError as exc:
        with pytest.raises(type(exc)):
            vcomp.lmm(formula, split(d, sizes))
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m2 = vcomp.lmm(formula, split(d, sizes))
    assert_same_fit(m1, m2, tests=False)
    if not m1.singular:
        a1, a2 = m1.anova("kenward-roger"), m2.anova("kenward-roger")
        close(a1["F"], a2["F"], atol=1e-8)
        close(a1["den_df"], a2["den_df"], rel=DF_REL)
