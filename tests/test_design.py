"""Design builders, term parsing, stratum order, lme4 formulas, immutability."""
import pytest

import vcomp
from vcomp import DesignError
from vcomp.terms import term_key
from vcomp.design import parse_terms


def keys(terms):
    return [term_key(t) for t in terms]


@pytest.mark.parametrize("spec,expected", [
    ("A*B", ["A", "B", "A:B"]),
    ("rep + gen", ["rep", "gen"]),
    ("a + b + a:b", ["a", "b", "a:b"]),
    (["a", "b", "a:b"], ["a", "b", "a:b"]),
    ("A/B", ["A", "A:B"]),
    ("A*B*C", ["A", "B", "C", "A:B", "A:C", "B:C", "A:B:C"]),
    ("(A+B+C)^2", ["A", "B", "C", "A:B", "A:C", "B:C"]),
    ("A*B - A:B", ["A", "B"]),
    ("1 + x + A", ["x", "A"]),
    ("y ~ A + B", ["A", "B"]),
    ("A:B + B:A", ["A:B"]),
    (None, []),
])
def test_parse_terms(spec, expected):
    assert keys(parse_terms(spec)) == keys(expected)


@pytest.mark.parametrize("bad", ["A +", "A * (B", "A + 3", "A $ B"])
def test_parse_errors(bad):
    with pytest.raises(DesignError):
        parse_terms(bad)


def test_builders_table():
    d = vcomp.CRD("trt")
    assert d.fixed_terms == ["trt"] and d.random_terms == [] and d.terms == ["trt"]
    assert keys(vcomp.CRD(["A", "B"]).terms) == keys(["A", "B", "A:B"])
    d = vcomp.RCBD("trt", "block")
    assert (d.fixed_terms, d.random_terms, d.terms) == (["trt"], ["block"], ["block", "trt"])
    d = vcomp.LatinSquare("trt", "row", "col")
    assert d.terms == ["row", "col", "trt"] and d.random_terms == ["row", "col"]
    d = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")
    assert keys(d.terms) == keys(["block", "variety", "block:variety", "nitro", "variety:nitro"])
    assert keys(d.random_terms) == keys(["block", "block:variety"])
    assert keys(d.fixed_terms) == keys(["variety", "nitro", "variety:nitro"])
    d = vcomp.SplitSplitPlot(whole="w", sub="s", subsub="ss", block="b")
    assert keys(d.terms) == keys(["b", "w", "b:w", "s", "w:s", "b:w:s", "ss", "w:ss", "s:ss", "w:s:ss"])
    assert keys(d.random_terms) == keys(["b", "b:w", "b:w:s"])
    assert len(d.fixed_terms) == 7
    d = vcomp.StripPlot(horizontal="h", vertical="v", block="b")
    assert keys(d.terms) == keys(["b", "h", "b:h", "v", "b:v", "h:v"])
    assert keys(d.random_terms) == keys(["b", "b:h", "b:v"])
    d = vcomp.Nested(["batch", "cask", "sample"])
    assert d.fixed_terms == [] and keys(d.terms) == keys(["batch", "batch:cask", "batch:cask:sample"])


def test_generic_design_order_rule():
    assert keys(vcomp.Design(fixed="a", random=["b", "a:b"]).terms) == keys(["a", "b", "a:b"])
    assert keys(vcomp.Design(fixed="rep + gen", random=["rep:block"]).terms) == keys(["rep", "rep:block", "gen"])
    assert set(keys(vcomp.Design(fixed="machine", random=["worker", "worker:machine"]).terms)) == set(
        keys(["worker", "machine", "worker:machine"]))
    # split-plot written generically: whole-plot terms before the residual stratum
    d = vcomp.Design(fixed="A*B", random="block + block:A")
    t = keys(d.terms)
    assert t.index(term_key("block:A")) < t.index(term_key("B")) < t.index(term_key("A:B"))


def test_formula():
    d = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")
    assert d.formula("yield") == "yield ~ variety*nitro + (1|block) + (1|block:variety)"
    assert vcomp.Nested(["batch"]).formula("y") == "y ~ 1 + (1|batch)"
    assert vcomp.Design(fixed="rep + gen", random=["rep:block"]).formula("y") == "y ~ rep + gen + (1|rep:block)"
    assert vcomp.CRD(["A", "B"]).formula("y") == "y ~ A*B"


def test_immutable_and_repr():
    d = vcomp.RCBD("trt", "block")
    with pytest.raises(AttributeError):
        d.fixed_terms = ["x"]
    with pytest.raises(AttributeError):
        d._terms = ("x",)
    lst = d.terms
    lst.append("junk")
    assert d.terms == ["block", "trt"]
    r = repr(d)
    assert "RCBD" in r and "block" in r and "trt" in r
    assert d == vcomp.RCBD("trt", "block") and hash(d) == hash(vcomp.RCBD("trt", "block"))


def test_design_errors():
    with pytest.raises(DesignError, match="both fixed and random"):
        vcomp.Design(fixed="a", random=["a"])
    with pytest.raises(DesignError, match="no terms"):
        vcomp.Design()
    with pytest.raises(DesignError, match="both"):
        vcomp.SplitPlot(whole="a", sub="a", block="b")
    with pytest.raises(DesignError):
        vcomp.CRD([])


def test_design_methods_delegate():
    oats = vcomp.datasets.load("oats")
    d = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")
    assert d.anova(oats, "yield").table.shape == (6, 7)
    m = d.lmm(oats, "yield")
    assert m.nobs == 72


def test_generic_design_follows_data_column_order():
    import pandas as pd
    d = pd.DataFrame({"worker": ["w1", "w2"] * 4, "machine": ["A"] * 4 + ["B"] * 4, "y": range(8)})
    des = vcomp.Design(fixed="machine", random=["worker", "worker:machine"])
    assert des.terms_for(d) == ["worker", "machine", "worker:machine"]
    assert des.terms_for(d[["machine", "worker", "y"]]) == ["machine", "worker", "worker:machine"]
    # builders keep their textbook order whatever the columns
    sp = vcomp.SplitPlot(whole="A", sub="B", block="blk")
    cols = pd.DataFrame(columns=["B", "A", "blk", "y"])
    assert sp.terms_for(cols) == sp.terms
