"""Design.skeleton: the textbook ANOVA table in symbols, and its numbers against vcomp.anova."""
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp.skeleton import Skeleton

# design, levels, components for the simulation, reps values to check
BUILDERS = {
    "CRD": (vcomp.CRD("trt"), {"trt": 4}, {"Residual": 1.0}, (2, 3)),
    "CRD-factorial": (vcomp.CRD(["A", "B"]), {"A": 2, "B": 3}, {"Residual": 1.0}, (2,)),
    "RCBD": (vcomp.RCBD("trt", "block"), {"trt": 4, "block": 3}, {"block": 1.0, "Residual": 1.0}, (1, 2)),
    "RCBD-factorial": (vcomp.RCBD(["A", "B"], "block"), {"A": 2, "B": 3, "block": 3}, {"block": 1.0}, (1,)),
    "LatinSquare": (vcomp.LatinSquare("trt", "row", "col"), {"trt": 5, "row": 5, "col": 5},
                    {"row": 1.0, "col": 0.5}, (1, 2)),
    "LatinSquare-factorial": (vcomp.LatinSquare(["A", "B"], "row", "col"), {"A": 2, "B": 2, "row": 4, "col": 4},
                              {"row": 1.0}, (1,)),
    "SplitPlot": (vcomp.SplitPlot("A", "B", "block"), {"A": 3, "B": 4, "block": 3},
                  {"block": 1.0, "block:A": 0.5}, (1, 2)),
    "SplitPlot-n-symbol": (vcomp.SplitPlot("variety", "nitro", "block"), {"variety": 3, "nitro": 4, "block": 2},
                           {"block": 1.0}, (1, 2)),  # nitro's symbol is n, as the replicates' in CRD
    "SplitSplitPlot": (vcomp.SplitSplitPlot("A", "B", "C", "block"), {"A": 2, "B": 3, "C": 2, "block": 3},
                       {"block": 1.0, "block:A": 0.5, "block:A:B": 0.3}, (1, 2)),
    "StripPlot": (vcomp.StripPlot("H", "V", "block"), {"H": 3, "V": 4, "block": 3},
                  {"block": 1.0, "block:H": 0.5, "block:V": 0.4}, (1, 2)),
    "Nested": (vcomp.Nested(["batch", "cask"]), {"batch": 4, "cask": 3}, {"batch": 1.0, "batch:cask": 0.5}, (2, 3)),
    "Nested-3": (vcomp.Nested(["lot", "bag", "sample"]), {"lot": 3, "bag": 2, "sample": 2}, {"lot": 1.0}, (2,)),
    "generic mixed two-way": (vcomp.Design(fixed="machine", random=["worker", "worker:machine"]),
                              {"machine": 3, "worker": 4}, {"worker": 1.0}, (2, 3)),
    "generic split-plot": (vcomp.Design(fixed="A*B", random=["block", "block:A"]), {"A": 2, "B": 3, "block": 4},
                           {"block": 1.0}, (1,)),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_evaluate_equals_anova_of_balanced_data(name):
    des, levels, comps, reps_values = BUILDERS[name]
    sk = des.skeleton()
    assert isinstance(sk, Skeleton)
    for reps in reps_values:
        d = des.simulate(levels, comps, seed=11, reps=reps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", vcomp.VcompWarning)
            res = des.anova(d, "y")
        ev = sk.evaluate(levels, reps=reps)
        assert list(ev.index) == des.terms + ["Residual"]
        assert list(ev.columns) == ["df"] + [t for t in des.terms if des.is_random(t)] + ["Residual"]
        got = ev.loc[list(res.table.index)]
        np.testing.assert_array_equal(got["df"].to_numpy(), res.table["df"].to_numpy())
        ems = res.ems.loc[list(res.table.index)]
        np.testing.assert_allclose(got[list(ems.columns)].to_numpy(dtype=float), ems.to_numpy(dtype=float),
                                   rtol=1e-10, atol=1e-10)


def test_lecture_notes_split_plot():
    """The split-plot table as lecture notes print it (block r, whole-plot factor a, sub-plot factor c)."""
    des = vcomp.SplitPlot(whole="A", sub="C", block="block")
    sk = des.skeleton(names={"block": "b", "block:A": "w"})
    t = sk.table
    assert list(t.columns) == ["df", "ems"]
    assert list(t.index) == des.terms + ["Residual"]
    assert t.loc["block", "df"] == "r-1"
    assert t.loc["block", "ems"] == "σ²_ε + c σ²_w + a c σ²_b"
    assert t.loc["A", "df"] == "a-1"
    assert t.loc["A", "ems"] == "σ²_ε + c σ²_w + φ²(A)"
    assert t.loc["block:A", "df"] == "(r-1)(a-1)"
    assert t.loc["block:A", "ems"] == "σ²_ε + c σ²_w"
    assert t.loc["C", "df"] == "c-1"
    assert t.loc["A:C", "df"] == "(a-1)(c-1)"
    assert t.loc["Residual", "df"] == "a(r-1)(c-1)"
    assert t.loc["Residual", "ems"] == "σ²_ε"
    assert sk.symbols == {"block": "r", "A": "a", "C": "c"}
    # default names: the terms themselves
    assert des.skeleton().table.loc["block", "ems"] == "σ²_ε + c σ²_block:A + a c σ²_block"


def test_textbook_forms_of_other_builders():
    t = vcomp.LatinSquare("trt", "row", "col").skeleton().table
    assert t.loc["Residual", "df"] == "(t-1)(t-2)" and t.loc["row", "ems"] == "σ²_ε + t σ²_row"
    sk = vcomp.Nested(["batch", "cask"]).skeleton()
    assert sk.replicated and sk.table.loc["batch:cask", "df"] == "b(c-1)"
    assert sk.table.loc["Residual", "df"] == "bc(n-1)"
    assert sk.table.loc["batch", "ems"] == "σ²_ε + n σ²_batch:cask + c n σ²_batch"
    assert vcomp.CRD("trt").skeleton().table.loc["Residual", "df"] == "t(n-1)"
    t = vcomp.SplitSplitPlot("A", "B", "C", "block").skeleton().table
    assert t.loc["block:A:B", "df"] == "a(r-1)(b-1)" and t.loc["Residual", "df"] == "ab(r-1)(c-1)"
    t = vcomp.StripPlot("H", "V", "block").skeleton().table
    assert t.loc["Residual", "df"] == "(r-1)(h-1)(v-1)"
    assert t.loc["H", "ems"] == "σ²_ε + v σ²_block:H + φ²(H)"
    # the unrestricted model (Hartley): the random main effect's EMS carries the interaction
    t = vcomp.Design(fixed="machine", random=["worker", "worker:machine"]).skeleton().table
    assert t.loc["worker", "ems"] == "σ²_ε + n σ²_worker:machine + m n σ²_worker"


def test_symbols_defaults_clashes_and_given():
    sk = vcomp.SplitPlot(whole="rate", sub="rootstock", block="block").skeleton()
    assert sk.symbols == {"block": "r", "rate": "s", "rootstock": "t"}
    sk = vcomp.Nested(["name", "x"]).skeleton()  # n is the replicates' symbol
    assert sk.symbols["name"] != "n"
    sk = vcomp.SplitPlot("A", "C", "block").skeleton(symbols={"block": "b"})
    assert sk.symbols["block"] == "b" and sk.table.loc["Residual", "df"] == "a(b-1)(c-1)"
    sk = vcomp.SplitPlot("A", "C", "block").skeleton(symbols={"block": "bl"})
    assert sk.table.loc["block:A", "df"] == "(bl-1)(a-1)" and sk.table.loc["Residual", "df"] == "a(bl-1)(c-1)"
    sk = vcomp.Nested(["batch", "cask"]).skeleton(symbols={"batch": "bt"})
    assert sk.table.loc["Residual", "df"] == "bt·c(n-1)"  # multi-letter symbols: explicit products
    ls = vcomp.LatinSquare("trt", "row", "col").skeleton(symbols={"trt": "k"})
    assert set(ls.symbols.values()) == {"k"}


@pytest.mark.parametrize("call, match", [
    (lambda: vcomp.SplitPlot("A", "C", "block").skeleton(symbols={"D": "d"}), "'D'"),
    (lambda: vcomp.SplitPlot("A", "C", "block").skeleton(symbols={"A": "a b"}), "symbols"),
    (lambda: vcomp.CRD("trt").skeleton(symbols={"trt": "n"}), "'n'"),
    (lambda: vcomp.LatinSquare("trt", "row", "col").skeleton(symbols={"row": "r", "col": "c"}), "same symbol"),
    (lambda: vcomp.SplitPlot("A", "C", "block").skeleton(names={"D": "d"}), "names"),
    (lambda: vcomp.SplitPlot("A", "C", "block").skeleton().evaluate({"A": 2, "C": 2}), "'block'"),
    (lambda: vcomp.SplitPlot("A", "C", "block").skeleton().evaluate({"A": 2, "C": 2, "block": 1}), "at least 2"),
    (lambda: vcomp.CRD("trt").skeleton().evaluate({"trt": 3}), "reps"),
    (lambda: vcomp.LatinSquare("trt", "row", "col").skeleton().evaluate({"trt": 4, "row": 5}), "as many rows"),
    (lambda: vcomp.Design(fixed="x + trt", covariates=["x"]).skeleton(), "covariate"),
])
def test_bad_input(call, match):
    with pytest.raises(vcomp.DesignError, match=match):
        call()


def test_latin_square_levels_default_rows_and_cols():
    sk = vcomp.LatinSquare("trt", "row", "col").skeleton()
    ev = sk.evaluate({"trt": ["a", "b", "c", "d"]})
    assert ev.loc["Residual", "df"] == 6 and ev.loc["row", "row"] == 4


def test_printing():
    sk = vcomp.SplitPlot("A", "C", "block").skeleton()
    text = str(sk)
    assert "a(r-1)(c-1)" in text and "σ²_ε + c σ²_block:A + a c σ²_block" in text
    assert "r = levels of block" in text
    md = sk.to_markdown()
    assert "| block" in md and "σ²_block:A" in md
    tex = sk.to_latex()
    assert r"$a(r-1)(c-1)$" in tex and r"\sigma^2_{\mathrm{block:A}}" in tex and r"\toprule" in tex
    assert r"\$" not in tex  # math mode, not escaped dollars
    assert "<table>" in sk._repr_html_()
    lect = vcomp.SplitPlot("A", "C", "block").skeleton(names={"block": "b", "block:A": "w", "A": "α"})
    assert r"\phi^2(\alpha)" in lect.to_latex() and "φ²(α)" in str(lect)


def test_design_unchanged_and_table_plain_text():
    sk = vcomp.RCBD("trt", "block").skeleton()
    assert all(isinstance(v, str) for v in sk.table.to_numpy().ravel())
    assert isinstance(sk.table, pd.DataFrame)
