"""vcomp.means: the Means result (MixedModel.means) through the public API."""
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp import VcompError


@pytest.fixture(scope="module")
def oats():
    return vcomp.datasets.load("oats")


@pytest.fixture(scope="module")
def fit(oats):
    return vcomp.lmm("yield ~ variety*nitro + (1|block/variety)", oats)


def test_table_columns_index_and_L(fit):
    m = fit.means("variety:nitro")
    assert list(m.table.columns) == ["mean", "se", "df", "lower", "upper"]
    assert isinstance(m.table.index, pd.MultiIndex) and list(m.table.index.names) == ["variety", "nitro"]
    assert len(m.table) == 12
    # the means are L beta, and the cell means of balanced data
    assert np.allclose(m.L.to_numpy() @ fit.fixef.to_numpy(), m.table["mean"])
    assert m.table.loc[("Golden.rain", "0.0cwt"), "mean"] == pytest.approx(80.0)
    one = fit.means("nitro")
    assert one.table.index.name == "nitro" and list(one.table.index) == ["0.0cwt", "0.2cwt", "0.4cwt", "0.6cwt"]


def test_contrast_coding_never_changes_a_mean(oats, fit):
    other = vcomp.lmm("yield ~ C(variety, Sum())*C(nitro, Helmert()) + (1|block/variety)", oats)
    coded = vcomp.lmm("yield ~ variety*nitro + (1|block/variety)", oats, contrasts={"variety": "sas", "nitro": "poly"})
    for term, b in [(t, o.means(t)) for t in ("variety", "variety:nitro") for o in (other, coded)]:
        a = fit.means(term)
        assert np.allclose(a.table["mean"], b.table["mean"], rtol=1e-9)
        # se and df also carry the two fits' REML optima (different parametrizations): 1e-5
        assert np.allclose(a.table[["se", "df"]], b.table[["se", "df"]], rtol=1e-5)
        assert np.allclose(a.sed[["mean", "df"]], b.sed[["mean", "df"]], rtol=1e-5)


def test_pairs_columns_orientation_and_by(fit):
    m = fit.means("variety:nitro")
    p = m.pairs()
    assert list(p.columns) == ["level1", "level2", "estimate", "se", "df", "t", "p", "lower", "upper"]
    assert len(p) == 66 and p.loc[0, "level1"] == ("Golden.rain", "0.0cwt")
    t = m.table["mean"]
    assert p.loc[0, "estimate"] == pytest.approx(t[p.loc[0, "level1"]] - t[p.loc[0, "level2"]])
    mb = fit.means("variety:nitro", by="variety")
    pb = mb.pairs(adjust="tukey")
    assert list(pb.columns[:3]) == ["level1", "level2", "variety"] and len(pb) == 18
    assert pb.loc[0, "level1"] == "0.0cwt" and pb.loc[0, "variety"] == "Golden.rain"
    assert list(mb.sed.index) == ["nitro"]
    # adjusted p values are never below the unadjusted ones; intervals widen
    p0 = mb.pairs()
    assert np.all(pb["p"] >= p0["p"] - 1e-12)
    assert np.all(pb["upper"] - pb["lower"] >= p0["upper"] - p0["lower"])


def test_three_seds_of_a_split_plot(fit):
    sed = fit.means("variety:nitro").sed
    assert list(sed.index) == ["variety", "nitro", "variety:nitro"]
    assert list(sed.columns) == ["min", "mean", "max", "df", "n"]
    assert sed.loc["nitro", "mean"] == pytest.approx(7.68295, rel=1e-5)
    assert sed.loc["nitro", "df"] == pytest.approx(45.0, rel=1e-6)
    lsd = fit.means("variety:nitro").lsd(0.05)
    assert list(lsd.columns) == ["min", "mean", "max"]
    assert lsd.loc["nitro", "mean"] == pytest.approx(sed.loc["nitro", "mean"] * 2.014103, rel=1e-5)


def test_letters_indexed_like_table(fit):
    m = fit.means("nitro")
    lt = m.letters()
    assert list(lt.index) == list(m.table.index)
    top = m.table["mean"].idxmax()
    assert "a" in lt[top]
    assert m.letters(adjust="bonferroni", alpha=0.5).str.len().min() >= 1


def test_printing_formats(fit):
    m = fit.means("variety:nitro")
    text = str(m)
    assert "Estimated means of yield by variety:nitro" in text and "SED" in text and "LSD 5%" in text
    assert "|" in m.to_markdown() and "\\begin{tabular}" in m.to_latex() and "<table>" in m._repr_html_()


def test_satterthwaite_and_level(fit):
    a = fit.means("nitro", ddf="satterthwaite", level=0.9)
    b = fit.means("nitro", ddf="kenward-roger", level=0.9)
    assert np.allclose(a.table["mean"], b.table["mean"])
    assert (a.table["upper"] - a.table["lower"]).iloc[0] < (fit.means("nitro").table["upper"]
                                                            - fit.means("nitro").table["lower"]).iloc[0]


def test_bad_requests_are_clear_errors(fit):
    with pytest.raises(VcompError, match="'soil' is not a factor of the fixed part"):
        fit.means("soil")
    with pytest.raises(VcompError, match="by must be among variety"):
        fit.means("variety", by="nitro")
    with pytest.raises(VcompError, match="leaves no factor"):
        fit.means("variety", by="variety")
    with pytest.raises(VcompError, match="ddf must be"):
        fit.means("variety", ddf="wald")
    with pytest.raises(VcompError, match="level must lie"):
        fit.means("variety", level=95)
    with pytest.raises(VcompError, match="adjust must be one of"):
        fit.means("variety").pairs(adjust="dunnett")
    with pytest.raises(VcompError, match="repeats a factor"):
        fit.means("variety:variety")


def test_covariate_is_not_a_term_and_sits_at_its_mean(oats):
    d = oats.copy()
    d["x"] = np.arange(len(d), dtype=float) % 7
    before = d.copy()
    m = vcomp.lmm("yield ~ x + nitro + (1|block)", d)
    with pytest.raises(VcompError, match="covariate"):
        m.means("x")
    mm = m.means("nitro")
    beta = m.fixef
    expect = beta["Intercept"] + beta["x"] * d["x"].mean()
    assert mm.table.loc["0.0cwt", "mean"] == pytest.approx(expect)
    pd.testing.assert_frame_equal(d, before)


def test_empty_cell_means_are_not_estimable(oats):
    d = oats[~((oats["variety"] == "Victory") & (oats["nitro"] == "0.6cwt"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("yield ~ variety*nitro + (1|block)", d)
    with pytest.warns(vcomp.VcompWarning, match="1 of the 12 means of variety:nitro are not estimable"):
        cells = m.means("variety:nitro")
    assert np.isnan(cells.table.loc[("Victory", "0.6cwt"), "mean"])
    assert np.isfinite(cells.table.loc[("Victory", "0.4cwt"), "mean"])
    assert cells.letters()[("Victory", "0.6cwt")] == ""
    with pytest.warns(vcomp.VcompWarning):
        nit = m.means("nitro")
    assert np.isnan(nit.table.loc["0.6cwt", "se"]) and np.isfinite(nit.table.loc["0.4cwt", "se"])
    assert "not estimable" in str(cells)


def test_plot_draws_means_and_letters(fit):
    pytest.importorskip("matplotlib")
    fig = fit.means("variety:nitro", by="variety").plot()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "nitro" and len(ax.texts) == 12
    fig2 = fit.means("nitro").plot()
    assert len(fig2.axes[0].texts) == 4
