"""Bad input gives clear errors; the caller's data is never modified; printing."""
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp import DataError, DesignError, DroppedRowsWarning, VcompError

OATS = vcomp.datasets.load("oats")
SPLIT = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")


def test_caller_frame_not_modified():
    d = OATS.copy()
    d["variety"] = d["variety"].astype("category")
    d.loc[3, "yield"] = np.nan
    before = d.copy()
    with pytest.warns(DroppedRowsWarning):
        SPLIT.anova(d, "yield")
    pd.testing.assert_frame_equal(d, before)


def test_missing_column_named():
    with pytest.raises(DataError, match="'varity'"):
        vcomp.SplitPlot(whole="varity", sub="nitro", block="block").anova(OATS, "yield")
    with pytest.raises(DataError, match="'yeld'"):
        SPLIT.anova(OATS, "yeld")


def test_unknown_factor_in_term_named():
    with pytest.raises(DataError, match="block:varity"):
        vcomp.Design(fixed="variety", random=["block", "block:varity"]).anova(OATS, "yield")


def test_non_numeric_and_inf_response():
    with pytest.raises(DataError, match="not numeric"):
        vcomp.RCBD("nitro", "block").anova(OATS, "variety")
    d = OATS.astype({"yield": float})
    d.loc[0, "yield"] = np.inf
    with pytest.raises(DataError, match="infinite"):
        SPLIT.anova(d, "yield")


def test_nan_rows_dropped_with_count():
    d = OATS.copy()
    d.loc[[1, 5], "yield"] = np.nan
    d.loc[7, "block"] = None
    with pytest.warns(DroppedRowsWarning, match="3 row"):
        res = SPLIT.anova(d, "yield", ss_type=1)
    assert res.nobs == 69 and res.n_dropped == 3
    assert "3 dropped" in str(res)


def test_one_level_factor():
    d = OATS[OATS.variety == OATS.variety.iloc[0]]
    with pytest.raises(DataError, match="'variety' has 1 level"):
        SPLIT.anova(d, "yield")


def test_no_residual_df():
    d = OATS.groupby(["block", "variety", "nitro"], as_index=False)["yield"].mean()
    d = d[d.nitro == d.nitro.iloc[0]]
    with pytest.raises(DesignError, match="no residual degrees of freedom"):
        vcomp.Design(fixed="variety", random=["block", "block:variety"]).anova(d, "yield")


def test_bad_ss_type_and_design():
    with pytest.raises(VcompError):
        SPLIT.anova(OATS, "yield", ss_type=4)
    with pytest.raises(VcompError):
        vcomp.anova(OATS, "yield", "variety*nitro")


def test_random_covariate_rejected():
    d = OATS.assign(x=np.linspace(0, 1, len(OATS)))
    with pytest.raises(DesignError, match="covariate"):
        vcomp.Design(fixed="nitro", random=["x"], covariates=["x"]).anova(d, "yield")


def test_ancova_covariate():
    rng = np.random.default_rng(0)
    d = OATS.assign(x=rng.normal(size=len(OATS)))
    d["yield2"] = d["yield"] + 10 * d["x"]
    res = vcomp.Design(fixed="nitro + x", random=["block"], covariates=["x"]).anova(d, "yield2")
    assert res.table.loc["x", "df"] == 1
    assert res.table.loc["x", "F"] > 10
    assert res.table.loc["Residual", "df"] == 72 - 1 - 5 - 3 - 1
    # integer-coded block is a factor, x a covariate because the design says so
    d["block"] = d["block"].astype("category").cat.codes
    res2 = vcomp.Design(fixed="nitro + x", random=["block"], covariates=["x"]).anova(d, "yield2")
    pd.testing.assert_frame_equal(res.table[["df", "SS"]], res2.table[["df", "SS"]])
    # without covariates=, every named variable is a factor (SAS CLASS), whatever its dtype
    with pytest.raises(vcomp.DesignError, match="no residual degrees of freedom"):
        vcomp.Design(fixed="nitro + x", random=["block"]).anova(d, "yield2")


def test_crd_without_random_terms():
    res = vcomp.CRD(["variety", "nitro"]).anova(OATS, "yield")
    assert list(res.ems.columns) == ["Residual"]
    assert list(res.components.index) == ["Residual"]
    assert (res.table["error"].iloc[:-1] == "Residual").all()


def test_printing_formats():
    res = SPLIT.anova(OATS, "yield")
    s = str(res)
    for piece in ("Source", "Error term", "block:variety", "Expected mean square",
                  "Var(Residual) + 4 Var(block:variety) + Q(variety)", "Variance components"):
        assert piece in s
    assert "|" in res.to_markdown()
    assert "\\toprule" in res.to_latex() or "tabular" in res.to_latex()
    assert "<table" in res._repr_html_()
    # plain numbers in the frames
    assert res.table["SS"].dtype == float and res.ems.dtypes.eq(float).all()
    assert list(res.table.columns) == ["df", "SS", "MS", "F", "p", "den_df", "error"]
    assert list(res.components.columns) == ["estimate", "raw"]


def test_vcomp_anova_equals_design_anova():
    a = vcomp.anova(OATS, "yield", SPLIT, ss_type=1)
    b = SPLIT.anova(OATS, "yield", ss_type=1)
    pd.testing.assert_frame_equal(a.table, b.table)


def test_large_unbalanced_runs_fast():
    rng = np.random.default_rng(1)
    n = 20000
    d = pd.DataFrame({"b": rng.integers(0, 20, n).astype(str), "A": rng.integers(0, 4, n).astype(str),
                      "B": rng.integers(0, 5, n).astype(str)})
    d["y"] = rng.normal(size=n)
    design = vcomp.Design(fixed="A*B", random=["b", "b:A", "b:A:B"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = design.anova(d, "y")
    assert res.table.loc["Residual", "df"] == n - 400
