"""Parsing the residual= strings of vcomp.lmm (vcomp.formula.parse_residual)."""
import pytest

import vcomp
from vcomp.formula import ResidualSpec, parse_residual


@pytest.mark.parametrize("text,want", [
    ("ar1(day | Rat)", ResidualSpec("ar1", time="day", subject="Rat", text="ar1(day | Rat)")),
    ("CS(date|plot)", ResidualSpec("cs", time="date", subject="plot", text="CS(date|plot)")),
    ("toep(t | a:b)", ResidualSpec("toep", time="t", subject="a:b", text="toep(t | a:b)")),
    ("us(t | g / s)", ResidualSpec("us", time="t", group="g", subject="s", text="us(t | g / s)")),
    ("diag(1 | env)", ResidualSpec("diag", group="env", text="diag(1 | env)")),
    ("ar1(row):ar1(col)", ResidualSpec("ar1ar1", row="row", col="col", text="ar1(row):ar1(col)")),
    ("ar1(r) : ar1(c) | trial", ResidualSpec("ar1ar1", row="r", col="c", trial="trial", text="ar1(r) : ar1(c) | trial")),
])
def test_parse(text, want):
    assert parse_residual(text) == want


def test_columns():
    assert parse_residual("us(t | g / s)").columns == ["t", "g", "s"]
    assert parse_residual("ar1(r):ar1(c) | tr").columns == ["r", "c", "tr"]


@pytest.mark.parametrize("text,words", [
    ("arma(t | s)", ["unknown residual structure", "ar1"]),
    ("ar1(t)", ["exactly one '|'"]),
    ("diag(x | g)", ["diag(1 | group)"]),
    ("cs(t | g / s)", ["us(time | group / subject)"]),
    ("ar1(t | s; x)", ["not a plain column name"]),
    ("ar1(r):ar1(r)", ["different columns"]),
    (None, ["residual= must be"]),
])
def test_errors_name_the_problem(text, words):
    with pytest.raises(vcomp.FormulaError) as e:
        parse_residual(text)
    for w in words:
        assert w in str(e.value)
