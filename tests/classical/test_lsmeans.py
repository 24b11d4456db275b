"""vcomp.classical.lsmeans: AnovaResult.means (balanced textbook values, unbalanced LS-means)."""
import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp import VcompError
from vcomp.classical.lsmeans import is_orthogonal, mean_square_weights
from vcomp.classical.model import build_model, prepare

SP = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")


@pytest.fixture(scope="module")
def oats():
    return vcomp.datasets.load("oats")


def _cells(data, design, response="yield"):
    prep = prepare(data, response, design)
    return build_model(prep, design.terms_for(data))


def test_orthogonality(oats):
    assert is_orthogonal(_cells(oats, SP))
    assert not is_orthogonal(_cells(oats.iloc[1:], SP))
    lat = pd.DataFrame({"row": np.repeat(list("abcd"), 4), "col": np.tile(list("wxyz"), 4),
                        "trt": [list("ABCD")[(i + j) % 4] for i in range(4) for j in range(4)],
                        "y": np.arange(16.0) % 5})
    assert is_orthogonal(_cells(lat, vcomp.LatinSquare("trt", "row", "col"), "y"))
    lat2 = lat.assign(x=np.linspace(0, 1, 16))
    assert not is_orthogonal(_cells(lat2, vcomp.Design(fixed="trt + x", random=["row", "col"]), "y"))


def test_balanced_split_plot_textbook_values(oats):
    res = SP.anova(oats, "yield")
    ms = res.table["MS"]
    a, r, c = 3, 6, 4
    v = res.means("variety")
    # a whole-plot mean carries the block and whole-plot strata
    var = (ms["block"] + (a - 1) * ms["block:variety"]) / (a * r * c)
    assert v.table["se"].iloc[0] == pytest.approx(np.sqrt(var), rel=1e-10)
    num = (ms["block"] / (a * r * c)) ** 2 / 5 + ((a - 1) * ms["block:variety"] / (a * r * c)) ** 2 / 10
    assert v.table["df"].iloc[0] == pytest.approx(var ** 2 / num, rel=1e-10)
    assert v.sed.loc["variety", "mean"] == pytest.approx(np.sqrt(2 * ms["block:variety"] / (r * c)), rel=1e-10)
    cells = res.means("variety:nitro")
    sed = cells.sed
    assert sed.loc["nitro", "mean"] == pytest.approx(np.sqrt(2 * ms["Residual"] / r), rel=1e-10)
    mixed = 2 * (ms["block:variety"] + (c - 1) * ms["Residual"]) / (r * c)
    assert sed.loc["variety", "mean"] == pytest.approx(np.sqrt(mixed), rel=1e-10)
    assert sed.loc["nitro", "df"] == pytest.approx(45)
    assert cells.table["mean"].to_numpy() == pytest.approx(oats.groupby(["variety", "nitro"])["yield"].mean())


def test_means_do_not_depend_on_the_ss_type_when_balanced(oats):
    a = SP.anova(oats, "yield", ss_type=1).means("nitro").table
    b = SP.anova(oats, "yield", ss_type=3).means("nitro").table
    pd.testing.assert_frame_equal(a, b, rtol=1e-10)


def test_unbalanced_uses_truncated_components(oats):
    d = oats.iloc[3:].copy()
    res = SP.anova(d, "yield")
    comps, K, ms, df, raw = mean_square_weights(res)
    assert comps == ["block", "block:variety", "Residual"]
    assert np.allclose(raw, res.components["raw"])
    m = res.means("nitro")
    assert np.all(np.isfinite(m.table["se"])) and "truncated" in m.method


def test_bad_terms(oats):
    res = SP.anova(oats, "yield")
    with pytest.raises(VcompError, match="'block' is not a factor of the fixed part"):
        res.means("block")
    with pytest.raises(VcompError, match="not a factor of the term"):
        res.means("variety", by="nitro")


def test_design_without_random_terms():
    d = pd.DataFrame({"A": list("aabbcc") * 2, "B": ["x", "y"] * 6, "y": np.arange(12.0) ** 1.3})
    res = vcomp.CRD(["A", "B"]).anova(d, "y")
    m = res.means("A")
    ms = res.table.loc["Residual", "MS"]
    assert m.table["se"].iloc[0] == pytest.approx(np.sqrt(ms / 4))
    assert m.table["df"].iloc[0] == pytest.approx(res.table.loc["Residual", "df"])


def test_missing_whole_plot_means_are_not_estimable_with_a_hint(oats):
    d = oats[~((oats["block"] == "I") & (oats["variety"] == "Victory"))]
    res = SP.anova(d, "yield", ss_type=1)
    with pytest.warns(vcomp.VcompWarning, match="1 of the 3 means of variety are not estimable.*design.lmm"):
        m = res.means("variety")
    # Victory's average over blocks needs the empty (I, Victory) whole plot; the others are LS-means
    assert np.isnan(m.table.loc["Victory", "mean"])
    gr = d[d["variety"] == "Golden.rain"]
    assert m.table.loc["Golden.rain", "mean"] == pytest.approx(gr["yield"].mean())
    assert np.isfinite(m.sed.loc["variety", "mean"]) and m.sed.loc["variety", "n"] == 1
