"""The term grammar (vcomp.terms): R/lme4 formulas and Design specifications."""
from __future__ import annotations

import pytest

from vcomp import FormulaError
from vcomp.terms import parse_formula, parse_term_spec, split_term, term_key


def names(m):
    return [t.name for t in m.fixed]


def test_basic_terms():
    m = parse_formula("y ~ x + (x|g)")
    assert m.response == "y" and names(m) == ["x"] and m.intercept
    (r,) = m.random
    assert (r.expr, r.group.name, r.correlated) == ("x", "g", True)


def test_nested_and_double_bar():
    m = parse_formula("y ~ A*B + (1|block/A)")
    assert [r.group.name for r in m.random] == ["block", "block:A"]
    assert names(m) == ["A", "B", "A:B"]
    m = parse_formula("y ~ x + (1 + x || g)")
    assert [(r.expr, r.correlated) for r in m.random] == [("1", False), ("0+x", False)]
    m = parse_formula("y ~ x + (0 + x || g)")
    assert [r.expr for r in m.random] == ["0+x"]
    m = parse_formula("y ~ (1|a/b/c)")
    assert [r.group.name for r in m.random] == ["a", "a:b", "a:b:c"] and names(m) == []


def test_crossed_and_several_on_one_factor():
    m = parse_formula("y ~ 1 + (1|plate) + (1|sample) + (0+x|plate)")
    assert [(r.expr, r.group.name) for r in m.random] == [("1", "plate"), ("1", "sample"), ("0+x", "plate")]


@pytest.mark.parametrize("f,icpt,terms", [
    ("y ~ 0 + A + B", False, ["A", "B"]), ("y ~ A - 1", False, ["A"]), ("y ~ -1 + (1|g)", False, []),
    ("y ~ 1", True, []), ("y ~ (a+b+c)^2 - a:b", True, ["a", "b", "c", "a:c", "b:c"]),
    ("y ~ a/b", True, ["a", "a:b"]), ("y ~ b + a + a:b", True, ["b", "a", "b:a"]),
    ("y ~ a:b + a", True, ["a", "a:b"]), ("y ~ a %in% b", True, ["a:b"]), ("y ~ x - 0", True, ["x"]),
])
def test_r_semantics(f, icpt, terms):
    m = parse_formula(f)
    assert m.intercept is icpt and names(m) == terms


def test_quoted_and_odd_names():
    m = parse_formula("`grain yield` ~ Q('N-rate') + `Höhe` + Sorte_ö + grain.weight + log(x) + I(x^2) + C(v, Sum)")
    assert m.response == "grain yield"
    assert names(m) == ["N-rate", "Höhe", "Sorte_ö", "grain.weight", "log(x)", "I(x ** 2)", "C(v, Sum)"]
    assert parse_formula("y ~ np + Intercept + C").fixed[0].name == "np"


def test_long_and_deep_formulas_do_not_recurse():
    m = parse_formula("y ~ " + " + ".join("x%d" % i for i in range(3000)))
    assert len(m.fixed) == 3000
    m = parse_formula("y ~ " + "(" * 500 + "a" + " + b)" * 500)
    assert names(m) == ["a", "b"]


@pytest.mark.parametrize("f,pos", [("y ~ x + (x|g", 9), ("y ~ x | g", 7),
                                   ("y x", 4), ("y ~ (|g)", 6), ("y ~ (1|)", 7), ("y ~ 2", 5)])
def test_syntax_errors_say_where(f, pos):
    with pytest.raises(FormulaError, match="character %d" % pos):
        parse_formula(f)


@pytest.mark.parametrize("f", ["y ~ a ~ b", "y ~ ((1|g)|h)", "y ~ a*(1|g)", "y ~ (1|g) - (1|g)", "y ~ a +",
                               "y ~ ", "~ x", "y ~ x + 'a'", "y ~ a^b", "y ~ (a"])
def test_malformed(f):
    with pytest.raises(FormulaError):
        parse_formula(f)


def test_term_specs():
    assert [t.name for t in parse_term_spec("A*B")] == ["A", "B", "A:B"]
    assert [t.name for t in parse_term_spec(["block", "block:N-rate"])] == ["block", "block:N-rate"]
    assert [t.name for t in parse_term_spec(["A*B", "C"])] == ["A", "B", "C", "A:B"]
    assert split_term("log(a:b):c") == ["log(a:b)", "c"]
    assert term_key("a:b") == term_key("b:a")
