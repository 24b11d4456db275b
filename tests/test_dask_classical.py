"""The classical ANOVA and the cross-check of a Dask DataFrame equal the in-memory ones (vcomp._dask.classical)."""
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")

COLS = ["df", "SS", "MS", "F", "p", "den_df"]

BUILDERS = {
    "CRD": (vcomp.CRD("A"), {"A": 4}, 3),
    "CRD factorial": (vcomp.CRD(["A", "B"]), {"A": 3, "B": 2}, 2),
    "RCBD": (vcomp.RCBD("A", "block"), {"A": 5, "block": 4}, 1),
    "LatinSquare": (vcomp.LatinSquare("A", "row", "col"), {"A": 4, "row": 4, "col": 4}, 1),
    "SplitPlot": (vcomp.SplitPlot("W", "S", "block"), {"W": 3, "S": 4, "block": 4}, 1),
    "SplitSplitPlot": (vcomp.SplitSplitPlot("W", "S", "T", "block"), {"W": 2, "S": 3, "T": 2, "block": 3}, 1),
    "StripPlot": (vcomp.StripPlot("H", "V", "block"), {"H": 3, "V": 3, "block": 4}, 1),
    "Nested": (vcomp.Nested(["a", "b", "c"]), {"a": 3, "b": 3, "c": 2}, 2),
}


@pytest.fixture(autouse=True)
def _sync():
    with dask.config.set(scheduler="synchronous"):
        yield


def assert_same(a1, a2):
    pd.testing.assert_index_equal(a1.table.index, a2.table.index)
    np.testing.assert_allclose(a2.table[COLS].to_numpy(float), a1.table[COLS].to_numpy(float), rtol=1e-9, atol=1e-10)
    assert list(a1.table["error"]) == list(a2.table["error"])
    pd.testing.assert_frame_equal(a1.ems, a2.ems, rtol=1e-9, atol=1e-10)
    assert list(a1.ems_text) == list(a2.ems_text)
    pd.testing.assert_frame_equal(a1.components, a2.components, rtol=1e-9, atol=1e-10)
    assert a1.error_terms.keys() == a2.error_terms.keys()
    for k, v in a1.error_terms.items():
        np.testing.assert_allclose(list(a2.error_terms[k].values()), list(v.values()), rtol=1e-9)
    assert (a1.nobs, a1.n_dropped, a1.rank_deficient, a1.type3_coding) == \
        (a2.nobs, a2.n_dropped, a2.rank_deficient, a2.type3_coding)


def both(design, data, ddata, ss_type):
    """Both analyses, or the same error from both."""
    try:
        a1 = design.anova(data, "y", ss_type)
    except vcomp.VcompError as exc:
        with pytest.raises(type(exc)) as e2:
            design.anova(ddata, "y", ss_type)
        assert str(e2.value) == str(exc)
        return None, None
    return a1, design.anova(ddata, "y", ss_type)


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("unbalanced", [False, True])
def test_every_builder(name, unbalanced):
    design, levels, reps = BUILDERS[name]
    data = design.simulate(levels, {t: 1.0 for t in design.random_terms}, effects={t: 1.0 for t in design.fixed_terms},
                           seed=1, reps=reps, mean=1000.0)
    data = data.sample(frac=1.0, random_state=3).reset_index(drop=True)
    if unbalanced:
        data = data.drop(data.sample(frac=0.1, random_state=2).index).reset_index(drop=True)
    ddata = dd.from_pandas(data, npartitions=3)
    for ss in (1, 2, 3):
        a1, a2 = both(design, data, ddata, ss)
        if a1 is not None:
            assert_same(a1, a2)


def test_partitions_lacking_levels_and_function_form():
    oats = vcomp.datasets.load("oats").sort_values(["block", "variety"]).reset_index(drop=True)
    design = vcomp.SplitPlot("variety", "nitro", "block")
    ddata = dd.from_pandas(oats, npartitions=6)  # one block per partition
    assert_same(vcomp.anova(oats, "yield", design), vcomp.anova(ddata, "yield", design))


def test_ancova_covariates():
    rng = np.random.default_rng(0)
    n = 240
    d = pd.DataFrame({"A": rng.choice(["a1", "a2", "a3"], n), "block": rng.choice(["b1", "b2", "b3", "b4"], n),
                      "x": rng.normal(10, 2, n), "z": rng.normal(size=n)})
    d["y"] = 1e4 + 2 * (d.A == "a2") + 0.5 * d.x + d.z + rng.normal(size=n)
    dk = dd.from_pandas(d, npartitions=4)
    for fixed, cov in [("A + x", ["x"]), ("A*x", ["x"]), ("A + A:x + z", ["x", "z"])]:
        design = vcomp.Design(fixed=fixed, random="block + block:A", covariates=cov)
        for ss in (1, 2, 3):
            a1, a2 = both(design, d, dk, ss)
            assert_same(a1, a2)
    with pytest.raises(vcomp.VcompError, match="product as a column"):
        vcomp.Design(fixed="A + x:z", random="block", covariates=["x", "z"]).anova(dk, "y")


def test_unequal_nesting_type3():
    pastes = vcomp.datasets.load("pastes").rename(columns={"strength": "y"})
    design = vcomp.Nested(["batch", "cask"])
    b0, c0 = pastes["batch"].iloc[0], pastes["cask"].iloc[0]
    d = pastes[~((pastes["batch"] == b0) & (pastes["cask"] == c0))].reset_index(drop=True)  # 2 casks in one batch
    a1, a2 = both(design, d, dd.from_pandas(d, npartitions=3), 3)
    assert a1.type3_coding == "nested-cell"
    assert_same(a1, a2)


def test_missing_values_and_errors():
    oats = vcomp.datasets.load("oats")
    design = vcomp.SplitPlot("variety", "nitro", "block")
    d = oats.copy()
    d.loc[[3, 40], "yield"] = np.nan
    with pytest.warns(vcomp.DroppedRowsWarning):
        a1 = design.anova(d, "yield")
    with pytest.warns(vcomp.DroppedRowsWarning):
        a2 = design.anova(dd.from_pandas(d, npartitions=3), "yield")
    assert_same(a1, a2)
    for bad in ("yeild", "variety"):
        with pytest.raises(vcomp.VcompError) as e1:
            design.anova(oats, bad)
        with pytest.raises(vcomp.VcompError) as e2:
            design.anova(dd.from_pandas(oats, npartitions=2), bad)
        assert type(e1.value) is type(e2.value) and str(e1.value) == str(e2.value)


@pytest.mark.parametrize("drop", [False, True])
def test_crosscheck(drop):
    oats = vcomp.datasets.load("oats")
    if drop:
        oats = oats.drop(oats.sample(8, random_state=1).index)
    design = vcomp.SplitPlot("variety", "nitro", "block")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c1 = design.crosscheck(oats, "yield")
        c2 = design.crosscheck(dd.from_pandas(oats, npartitions=3), "yield")
    pd.testing.assert_frame_equal(c1.components, c2.components, rtol=1e-6)
    pd.testing.assert_frame_equal(c1.tests, c2.tests, rtol=1e-6)
    assert c1.notes == c2.notes
