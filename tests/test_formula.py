"""Parser and model-matrix tests for vcomp.formula (safety, syntax errors, expansions, coding)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vcomp import FormulaError
from vcomp.formula import RandomTerm, fixed_matrix, fixed_matrix_new, parse_formula


@pytest.fixture
def d():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"y": rng.normal(size=24), "x": rng.uniform(1, 2, 24),
                         "a": pd.Series(list("cab") * 8, dtype="str"), "b": [1, 2, 3, 4] * 6,
                         "g": np.repeat(np.arange(6), 4)})


def test_basic_terms():
    p = parse_formula("y ~ x + (x|g)")
    assert p.response == "y" and p.fixed_rhs == "x"
    assert p.random == [RandomTerm("x", "g", True)]


def test_nested_and_double_bar():
    p = parse_formula("y ~ A*B + (1|block/A)")
    assert [t.group for t in p.random] == ["block", "block:A"]
    p = parse_formula("y ~ x + (1 + x || g)")
    assert p.random == [RandomTerm("1", "g", False), RandomTerm("0+x", "g", False)]
    p = parse_formula("y ~ x + (0 + x || g)")
    assert p.random == [RandomTerm("0+x", "g", False)]
    p = parse_formula("y ~ (1|a/b/c)")
    assert [t.group for t in p.random] == ["a", "a:b", "a:b:c"]
    assert p.fixed_rhs == "1"


def test_crossed_and_several_on_one_factor():
    p = parse_formula("y ~ 1 + (1|plate) + (1|sample) + (0+x|plate)")
    assert [(t.expr, t.group) for t in p.random] == [("1", "plate"), ("1", "sample"), ("0+x", "plate")]


@pytest.mark.parametrize("f,pos", [("y ~ x + (x|g", 13), ("y ~ x + + (1|g)", 9), ("y ~ x | g", 7),
                                   ("y x", 4), ("y ~ (|g)", 6), ("y ~ (1|)", 8)])
def test_syntax_errors_say_where(f, pos):
    with pytest.raises(FormulaError, match="character %d" % pos):
        parse_formula(f)


@pytest.mark.parametrize("f", [
    "y ~ __import__('os').system('x') + (1|g)",
    "y ~ x.__class__ + (1|g)",
    "y ~ x.real + (1|g)",
    "y ~ f'{x}' + (1|g)",
    "y ~ (lambda: 1)() + (1|g)",
    "y ~ eval('1') + (1|g)",
    "y ~ open('f') + (1|g)",
    "y ~ np.os + (1|g)",
    "y ~ I(x[0]) + (1|g)",
])
def test_unsafe_formulas_raise_and_run_nothing(f, d, tmp_path, monkeypatch):
    import os
    import vcomp

    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    with pytest.raises(FormulaError):
        vcomp.lmm(f, d)
    assert not called


def test_unknown_column_named(d):
    import vcomp

    with pytest.raises(FormulaError, match="zz"):
        vcomp.lmm("y ~ zz + (1|g)", d)
    with pytest.raises(FormulaError, match="grouping factor 'h'"):
        vcomp.lmm("y ~ x + (1|h)", d)
    with pytest.raises(FormulaError, match="response"):
        vcomp.lmm("w ~ x + (1|g)", d)


def test_fixed_matrix_names_and_assign(d):
    fm = fixed_matrix("a*x + C(b)", d)
    assert fm.column_names == ["Intercept", "a[T.b]", "a[T.c]", "C(b)[T.2]", "C(b)[T.3]", "C(b)[T.4]",
                               "x", "a[T.b]:x", "a[T.c]:x"]
    assert fm.term_names == ["a", "C(b)", "x", "a:x"]
    assert fm.assign == [-1, 0, 0, 1, 1, 1, 2, 3, 3]


def test_sum_coding(d):
    fm = fixed_matrix("a*x", d, coding="sum")
    assert fm.column_names[1:3] == ["a[S.a]", "a[S.b]"]
    cols = fm.X[:, 1:3]
    # sum-to-zero: the last level is coded -1 in every column
    assert np.all(cols[d["a"].to_numpy() == "c"] == -1)


def test_transforms_and_new_data(d):
    fm = fixed_matrix("np.log(x) + I(x**2) + sqrt(x)", d)
    assert np.allclose(fm.X[:, 1], np.log(d.x)) and np.allclose(fm.X[:, 2], d.x ** 2)
    X2 = fixed_matrix_new(fixed_matrix("a*x", d), d.iloc[[5, 0]])
    assert np.allclose(X2, fixed_matrix("a*x", d).X[[5, 0]])


def test_ordered_categorical_levels(d):
    d = d.copy()
    d["a"] = pd.Categorical(d["a"], categories=["c", "b", "a"], ordered=True)
    fm = fixed_matrix("a", d)
    assert fm.column_names == ["Intercept", "a[T.b]", "a[T.a]"]


def test_intercept_only(d):
    fm = fixed_matrix("1", d)
    assert fm.X.shape == (24, 1) and fm.term_names == [] and fm.assign == [-1]


def test_one_level_factor_in_fixed_part_is_an_error():
    import vcomp
    d = vcomp.datasets.load("oats").assign(one="a")
    with pytest.raises(vcomp.DataError, match="'one' has 1 level"):
        vcomp.lmm("yield ~ one + (1|block)", d)
