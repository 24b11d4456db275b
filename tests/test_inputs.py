"""Real-world input (issue 10): every valid input gives the right answer, every invalid one a clear VcompError.

Each case is run through the public entry points; an invalid input must raise a ``VcompError``
subclass whose message names what is wrong (``match``), never a traceback from numpy, pandas or
scipy, and the caller's data must never change.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp import DataError, DesignError, FormulaError, VcompError

OATS = vcomp.datasets.load("oats")
SP = vcomp.SplitPlot("variety", "nitro", "block")
LMM = "yield ~ variety*nitro + (1|block) + (1|block:variety)"


def quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


@pytest.fixture(scope="module")
def ref():
    an = quiet(SP.anova, OATS, "yield")
    fit = quiet(vcomp.lmm, LMM, OATS)
    return an, fit


def ren(**kw):
    return OATS.rename(columns=kw)


def same_anova(res, ref_an, scale=1.0):
    np.testing.assert_allclose(res.table["SS"].to_numpy() / scale, ref_an.table["SS"].to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(res.components["raw"].to_numpy() / scale, ref_an.components["raw"].to_numpy(),
                               rtol=1e-7)


def same_fit(fit, ref_fit, scale=1.0, rtol=1e-5):
    np.testing.assert_allclose(fit.varcorr["vcov"].to_numpy() / scale, ref_fit.varcorr["vcov"].to_numpy(), rtol=rtol)


# ----------------------------------------------------------------------------------------- valid names
ODD_NAMES = ["grain yield", "grain.yield", "N-rate", "Höhe", "Sorte_ö", "np", "Intercept", "C", "I", "Q", "log",
             "1", "0", "x[1]", "a b c", "résumé", "y:z", "T"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_response_name_design(name, ref):
    if ":" in name:
        pytest.skip("':' separates the variables of a term")
    d = ren(**{"yield": name})
    same_anova(quiet(SP.anova, d, name), ref[0])
    same_fit(quiet(SP.lmm, d, name), ref[1])


@pytest.mark.parametrize("name", [n for n in ODD_NAMES if ":" not in n])
def test_odd_factor_name_everywhere(name, ref):
    d = ren(nitro=name)
    des = vcomp.SplitPlot("variety", name, "block")
    same_anova(quiet(des.anova, d, "yield"), ref[0])
    same_fit(quiet(des.lmm, d, "yield"), ref[1])
    cc = quiet(des.crosscheck, d, "yield")
    assert list(cc.components.index)[-1] == "Residual"
    # in a formula, quoted with backticks or Q()
    fit = quiet(vcomp.lmm, "yield ~ variety*`%s` + (1|block) + (1|block:variety)" % name, d)
    same_fit(fit, ref[1])
    fit = quiet(vcomp.lmm, "yield ~ variety*Q(%r) + (1|block) + (1|block:variety)" % name, d)
    same_fit(fit, ref[1])


@pytest.mark.parametrize("name", ["N-rate", "grain.yield", "Höhe", "np", "Intercept", "résumé"])
def test_plain_names_in_formula(name, ref):
    d = ren(nitro=name)
    same_fit(quiet(vcomp.lmm, "yield ~ variety*%s + (1|block) + (1|block:variety)" % name, d), ref[1])


def test_integer_column_labels(ref):
    d = OATS[["yield", "variety", "nitro", "block"]].copy()
    d.columns = [0, 1, 2, 3]
    des = vcomp.SplitPlot(1, 2, 3)
    same_anova(quiet(des.anova, d, 0), ref[0])
    same_fit(quiet(des.lmm, d, 0), ref[1])
    same_fit(quiet(vcomp.lmm, "`0` ~ `1`*`2` + (1|`3`) + (1|`3`:`1`)", d), ref[1])


def test_no_intercept_random_only():
    fit = quiet(vcomp.lmm, "yield ~ -1 + (1|block)", OATS)
    assert len(fit.fixef) == 0 and fit.varcorr.shape[0] == 2


# ----------------------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("make", [
    lambda c: c.astype("category"),
    lambda c: pd.Categorical(c, ordered=True),
    lambda c: pd.Categorical(c, categories=sorted(set(c)) + ["unused"]),
    lambda c: c.astype("string"),
    lambda c: c.astype(object),
    lambda c: pd.Series(pd.Categorical(c)).cat.codes,
    lambda c: pd.Series(pd.Categorical(c)).cat.codes.astype(float) + 1.0,
    lambda c: pd.Series(pd.Categorical(c)).cat.codes.astype("Int64"),
    lambda c: pd.Series(pd.Categorical(c)).cat.codes.astype(str),
], ids=["category", "ordered", "unused-levels", "string", "object", "int", "float", "Int64", "digit-strings"])
def test_factor_dtypes_give_the_same_analysis(make, ref):
    d = OATS.copy()
    d["variety"] = np.asarray(make(d["variety"]))
    same_anova(quiet(SP.anova, d, "yield"), ref[0])
    same_fit(quiet(SP.lmm, d, "yield"), ref[1])
    cc = quiet(SP.crosscheck, d, "yield")
    assert not any("unbalanced" in n for n in cc.notes)


def test_unused_levels_warn():
    d = OATS.assign(variety=pd.Categorical(OATS.variety, categories=sorted(set(OATS.variety)) + ["Zzz"]))
    with pytest.warns(vcomp.VcompWarning, match="unused level"):
        SP.anova(d, "yield")


@pytest.mark.parametrize("dtype", ["Int64", "Float64", "float32", "int32", "float64"])
def test_numeric_response_dtypes(dtype, ref):
    d = OATS.assign(**{"yield": OATS["yield"].astype(dtype)})
    same_anova(quiet(SP.anova, d, "yield"), ref[0])


def test_nullable_missing_values_dropped_and_counted():
    y = pd.array(list(OATS["yield"].astype(int)), dtype="Int64")
    y[3] = pd.NA
    with pytest.warns(vcomp.DroppedRowsWarning, match="1 row"):
        res = SP.anova(OATS.assign(**{"yield": y}), "yield", ss_type=1)
    assert res.nobs == 71 and res.n_dropped == 1


def test_boolean_factor():
    fit = quiet(vcomp.lmm, "yield ~ b + (1|block)", OATS.assign(b=np.arange(72) % 2 == 0))
    assert list(fit.fixef.index) == ["Intercept", "b[T.True]"]


def test_mixed_types_that_differ_stay_distinct():
    d = OATS.assign(g=[1 if i % 3 else "a" for i in range(72)])
    fit = quiet(vcomp.lmm, "yield ~ nitro + (1|g)", d)
    assert list(fit.ranef["g"].index) == ["1", "a"]


@pytest.mark.parametrize("col,match", [("g", "print alike"), ("block", "print alike")])
def test_mixed_types_that_print_alike_raise(col, match):
    d = OATS.assign(g=[1 if i % 2 else "1" for i in range(72)])
    if col == "block":
        d["block"] = [1 if i % 2 else "1" for i in range(72)]
    with pytest.raises(DataError, match=match):
        vcomp.lmm("yield ~ nitro + (1|%s)" % col, d)
    with pytest.raises(DataError, match=match):
        vcomp.RCBD("nitro", col).anova(d, "yield")


@pytest.mark.parametrize("value,match", [
    (lambda y: y + 1j, "complex"), (lambda y: y.astype(str), "not numeric"), (lambda y: y > 100, "boolean"),
    (lambda y: pd.to_datetime("2020-01-01") + pd.to_timedelta(y, "D"), "date"),
    (lambda y: pd.Categorical(y), "not numeric"), (lambda y: y * 0 + 5.0, "constant"),
])
def test_bad_responses(value, match):
    d = OATS.assign(**{"yield": value(OATS["yield"])})
    for run in (lambda: vcomp.lmm(LMM, d), lambda: SP.anova(d, "yield"), lambda: SP.crosscheck(d, "yield")):
        with pytest.raises(DataError, match=match):
            quiet(run)


def test_datetime_factor_in_design():
    d = OATS.assign(day=pd.to_datetime("2020-01-01") + pd.to_timedelta(OATS.nitro.astype("category").cat.codes, "D"))
    res = vcomp.RCBD("day", "block").anova(d, "yield")
    assert res.table.loc["day", "df"] == 3
    with pytest.raises(DataError, match="dates"):
        vcomp.lmm("yield ~ day + (1|block)", d)


# ----------------------------------------------------------------------------------------- missing and inf
@pytest.mark.parametrize("col", ["yield", "nitro", "block", "x"])
def test_nan_rows_dropped_and_counted(col):
    d = OATS.assign(x=np.linspace(0, 1, 72))
    d.loc[[0, 7, 30], col] = np.nan
    with pytest.warns(vcomp.DroppedRowsWarning, match="3 row"):
        fit = vcomp.lmm("yield ~ nitro + x + (1|block)", d)
    assert fit.nobs == 69 and fit.n_dropped == 3


@pytest.mark.parametrize("col,where", [("yield", "response"), ("x", "covariate")])
@pytest.mark.parametrize("val", [np.inf, -np.inf])
def test_infinite_values_are_errors(col, where, val):
    d = OATS.assign(x=np.linspace(0, 1, 72), **{"yield": OATS["yield"].astype(float)})
    d.loc[5, col] = val
    with pytest.raises(DataError, match="%s %r has 1 infinite" % (where, col)):
        vcomp.lmm("yield ~ nitro + x + (1|block)", d)


def test_expression_nan_dropped_and_inf_refused():
    d = OATS.assign(x=np.linspace(-0.1, 1, 72))
    with pytest.warns(vcomp.DroppedRowsWarning):
        fit = vcomp.lmm("yield ~ sqrt(x) + (1|block)", d)
    assert fit.nobs < 72
    with pytest.raises(DataError, match="infinite"):
        vcomp.lmm("yield ~ log(x - x) + (1|block)", d)


def test_power_bomb_returns_quickly():
    t = time.time()
    with pytest.raises(DataError, match="infinite"):
        vcomp.lmm("yield ~ I(10**10**10) + (1|block)", OATS)
    assert time.time() - t < 5


# ----------------------------------------------------------------------------------------- frames
def test_duplicated_and_multiindex_columns():
    with pytest.raises(DataError, match="duplicated column name 'block'"):
        vcomp.lmm(LMM, pd.concat([OATS, OATS[["block"]]], axis=1))
    with pytest.raises(DataError, match="duplicated column name 'block'"):
        SP.anova(pd.concat([OATS, OATS[["block"]]], axis=1), "yield")
    mi = OATS.copy()
    mi.columns = pd.MultiIndex.from_tuples([("a", c) for c in OATS.columns])
    with pytest.raises(DataError, match="MultiIndex"):
        SP.anova(mi, "yield")


@pytest.mark.parametrize("index", [pd.Index(["a"] * 72), pd.RangeIndex(100, 172), pd.MultiIndex.from_arrays(
    [np.arange(72) % 2, np.arange(72)]), pd.date_range("2020", periods=72)])
def test_odd_indexes(index, ref):
    d = OATS.set_axis(index, axis=0)
    same_anova(quiet(SP.anova, d, "yield"), ref[0])
    same_fit(quiet(SP.lmm, d, "yield"), ref[1])


@pytest.mark.parametrize("data,match", [([1, 2, 3], "DataFrame"), ("text", "DataFrame"), (None, "DataFrame"),
                                        (pd.Series([1.0, 2.0]), "Series")])
def test_not_a_table(data, match):
    with pytest.raises(DataError, match=match):
        vcomp.lmm(LMM, data)
    with pytest.raises(DataError, match=match):
        SP.anova(data, "yield")


def test_empty_and_tiny():
    with pytest.raises(DataError):
        SP.anova(OATS.iloc[:0], "yield")
    with pytest.raises(DataError):
        vcomp.lmm(LMM, OATS.iloc[:0])
    with pytest.raises(DataError):
        vcomp.lmm("yield ~ 1 + (1|block)", OATS.iloc[:3])
    with pytest.raises(VcompError):
        SP.anova(OATS.iloc[:3], "yield")


def test_caller_data_never_modified():
    d = OATS.assign(x=np.linspace(0, 1, 72))
    d.loc[3, "yield"] = np.nan
    before = d.copy()
    quiet(vcomp.lmm, "yield ~ log(x + 1) + nitro + (1|block)", d)
    quiet(SP.anova, d, "yield")
    quiet(SP.crosscheck, d, "yield")
    quiet(SP.lmm, d, "yield")
    pd.testing.assert_frame_equal(d, before)


# ----------------------------------------------------------------------------------------- misspelled, roles
@pytest.mark.parametrize("formula,match", [
    ("yeld ~ nitro + (1|block)", "yeld"), ("yield ~ nitr + (1|block)", "nitr"), ("yield ~ nitro + (1|blok)", "blok"),
    ("yield ~ nitro + (nitr|block)", "nitr"), ("yield ~ log(nitr) + (1|block)", "nitr"),
])
def test_misspelled_columns_named(formula, match):
    with pytest.raises(FormulaError, match=match):
        vcomp.lmm(formula, OATS)


@pytest.mark.parametrize("make,match", [
    (lambda: vcomp.SplitPlot("variety", "varity", "block"), "varity"),
    (lambda: vcomp.RCBD("nitro", "blok"), "blok"),
    (lambda: vcomp.Design(fixed="nitro", random=["blok"]), "blok"),
])
def test_misspelled_design_columns(make, match):
    with pytest.raises(DataError, match=match):
        make().anova(OATS, "yield")
    with pytest.raises(VcompError, match=match):
        make().lmm(OATS, "yield")


@pytest.mark.parametrize("make,match", [
    (lambda: vcomp.SplitPlot("nitro", "nitro", "block"), "both"),
    (lambda: vcomp.SplitPlot(["variety", "row"], "nitro", "block"), "one column"),
    (lambda: vcomp.RCBD("nitro", ["block", "row"]), "one column"),
    (lambda: vcomp.RCBD(None, "block"), "column name"),
    (lambda: vcomp.LatinSquare("trt", "row", "row"), "both"),
    (lambda: vcomp.Nested([]), "column name"),
    (lambda: vcomp.Design(), "no terms"),
    (lambda: vcomp.Design(fixed="A", random=["A"]), "both fixed and random"),
    (lambda: vcomp.Design(fixed="A + x", covariates=["x"], random=["x"]), "random"),
    (lambda: vcomp.Design(fixed="A", covariates=["z"]), "not variables"),
    (lambda: vcomp.Design(fixed="A +"), "syntax"),
    (lambda: vcomp.Design(fixed=3), "strings"),
])
def test_builder_misuse(make, match):
    with pytest.raises(DesignError, match=match):
        make()


def test_response_used_as_factor():
    with pytest.raises(DesignError, match="response"):
        vcomp.RCBD("yield", "block").anova(OATS, "yield")


# ----------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("kw,match", [
    ({"REML": False}, "REML"), ({"weights": np.ones(72)}, "weights"), ({"family": "poisson"}, "family"),
    ({"contrast": {"nitro": "sum"}}, "contrast"), ({"contrasts": {"nitro": "bogus"}}, "sum"),
    ({"contrasts": "sum"}, "dict"), ({"contrasts": {"zz": "sum"}}, "zz"), ({"factors": ["zz"]}, "zz"),
    ({"theta0": [1, 2, 3]}, "theta0"), ({"theta0": ["a", "b"]}, "theta0"), ({"theta0": [-1, 1]}, "negative"),
    ({"reml": "False"}, "reml"), ({"reml": 0}, "reml"), ({"reml": None}, "reml"),
])
def test_options_checked(kw, match):
    with pytest.raises(VcompError, match=match):
        vcomp.lmm(LMM, OATS, **kw)


def test_design_lmm_checks_options_too():
    with pytest.raises(VcompError, match="weights"):
        SP.lmm(OATS, "yield", weights=np.ones(72))


@pytest.mark.parametrize("ss_type", [0, 4, "IV", None, 1.5])
def test_ss_type_checked(ss_type):
    with pytest.raises(DesignError, match="ss_type"):
        SP.anova(OATS, "yield", ss_type=ss_type)


@pytest.mark.parametrize("ss_type", ["I", "III", "3"])
def test_ss_type_spellings(ss_type, ref):
    assert quiet(SP.anova, OATS, "yield", ss_type=ss_type).ss_type in (1, 3)


@pytest.mark.parametrize("call,match", [
    (lambda f: f.anova(ddf="bogus"), "ddf"), (lambda f: f.anova(type=4), "type"), (lambda f: f.coef_table("x"), "ddf"),
    (lambda f: f.contrast([1, 2]), "shape"), (lambda f: f.contrast(np.zeros(12)), "zeros"),
    (lambda f: f.contrast({"nope": 1}), "nope"), (lambda f: f.contrast([[np.nan] * 12]), "NaN"),
    (lambda f: f.contrast(np.zeros((0, 12))), "no rows"), (lambda f: f.contrast("abc"), "numeric"),
    (lambda f: f.shrinkage("zz"), "zz"), (lambda f: f.predict(OATS.assign(nitro="zz")), "not seen"),
    (lambda f: f.predict(OATS.drop(columns="nitro")), "nitro"), (lambda f: f.refit(np.ones(3)), "refit"),
    (lambda f: f.refit(np.full(72, np.nan)), "refit"),
])
def test_model_method_misuse(call, match, ref):
    with pytest.raises(VcompError, match=match):
        call(ref[1])


# ----------------------------------------------------------------------------------------- formulas
@pytest.mark.parametrize("formula", [
    "yield ~ nitro + (1|block", "yield ~ nitro | block", "yield nitro", "yield ~ (|block)", "yield ~ (1|)",
    "yield ~ nitro ~ block", "yield ~ nitro + (1|block) + (nitro|(1|block))", "yield ~ 2 + (1|block)",
    "yield ~ . + (1|block)", "yield ~ nitro + offset(row) + (1|block)", "yield ~ __import__('os') + (1|block)",
    "yield ~ nitro.__class__ + (1|block)", "yield ~ eval('1') + (1|block)", "yield ~ I(row[0]) + (1|block)",
    "yield ~ nitro + (1|log(block))", "yield ~ nitro + 'a' + (1|block)", "", "~ nitro + (1|block)",
    "yield ~ a^b + (1|block)", "yield ~ nitro:(1|block)",
])
def test_malformed_or_unsafe_formulas(formula):
    with pytest.raises(FormulaError):
        vcomp.lmm(formula, OATS)


@pytest.mark.parametrize("formula", [None, 3, ["yield ~ 1"]])
def test_formula_type(formula):
    with pytest.raises(FormulaError):
        vcomp.lmm(formula, OATS)


def test_long_and_deep_formulas():
    rng = np.random.default_rng(0)
    d = pd.DataFrame(rng.normal(size=(900, 601)), columns=["y"] + ["x%d" % i for i in range(600)])
    d["g"] = np.repeat(np.arange(90), 10).astype(str)
    fit = quiet(vcomp.lmm, "y ~ " + " + ".join("x%d" % i for i in range(600)) + " + (1|g)", d)
    assert len(fit.fixef) == 601
    fit = quiet(vcomp.lmm, "yield ~ " + "(" * 300 + "nitro" + ")" * 300 + " + (1|block)", OATS)
    assert len(fit.fixef) == 4


# ----------------------------------------------------------------------------------------- structure
def test_one_level_factor_in_fixed_part_is_an_error():
    with pytest.raises(DataError, match="'one' has 1 level"):
        vcomp.lmm("yield ~ one + (1|block)", OATS.assign(one="a"))
    with pytest.raises(DataError, match="'one' has 1 level"):
        vcomp.RCBD("one", "block").anova(OATS.assign(one="a"), "yield")


def test_aliased_terms_dropped_with_warning():
    d = OATS.assign(nitro2=OATS.nitro)
    with pytest.warns(UserWarning, match="rank deficient"):
        fit = vcomp.lmm("yield ~ nitro + nitro2 + (1|block)", d)
    assert len(fit.fixef) == 4


def test_exact_fit_is_an_error():
    d = OATS.assign(y2=OATS.nitro.astype("category").cat.codes * 1.0)
    with pytest.raises(DataError, match="fitted exactly"):
        vcomp.lmm("y2 ~ nitro + (1|block)", d)
    with pytest.raises(DataError, match="fitted exactly"):
        vcomp.RCBD("nitro", "block").anova(d, "y2")


def test_singleton_groups_and_extreme_imbalance():
    rng = np.random.default_rng(1)
    g = ["a"] * 1000 + ["b", "b", "c", "c", "d", "d", "e", "e", "f"]
    d = pd.DataFrame({"y": rng.normal(size=len(g)), "g": g})
    fit = quiet(vcomp.lmm, "y ~ 1 + (1|g)", d)
    assert np.all(np.isfinite(fit.varcorr["vcov"]))
    res = quiet(vcomp.Nested(["g"]).anova, d, "y")
    assert res.table.loc["g", "df"] == 5


def test_empty_cell_type3_names_the_term():
    d = OATS[~((OATS.block == "I") & (OATS.variety == "Victory"))]
    with pytest.raises(vcomp.NotEstimableError) as e:
        SP.anova(d, "yield")
    assert e.value.terms or "block:variety" in str(e.value)
    assert e.value.terms == ["block:variety"]
    assert quiet(SP.anova, d, "yield", ss_type=1).nobs == 68


def test_printing_nan_tests():
    des = vcomp.Design(fixed="variety", random=["block", "block:variety", "nitro"])
    res = quiet(des.anova, OATS, "yield")
    for out in (str(res), res.to_markdown(), res.to_latex(), res._repr_html_()):
        assert "nan" not in out.lower().replace("nanc", "")


# ----------------------------------------------------------------------------------------- scale
def test_twenty_thousand_levels_classical_and_mixed():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(20000), 3)
    d = pd.DataFrame({"y": rng.normal(size=20000)[g] + rng.normal(size=60000), "g": g.astype(str)})
    t = time.time()
    res = vcomp.Nested(["g"]).anova(d, "y")
    fit = quiet(vcomp.lmm, "y ~ 1 + (1|g)", d)
    ct = fit.coef_table("kenward-roger")
    sh = fit.shrinkage()
    text = str(fit) + str(res)
    assert time.time() - t < 30
    assert res.table.loc["g", "df"] == 19999 and len(sh) == 20000 and np.isfinite(ct["df"].iloc[0])
    assert res.components.loc["g", "estimate"] == pytest.approx(fit.varcorr["vcov"].iloc[0], rel=0.05)
    assert "Residual" in text


# ----------------------------------------------------------------------------------------- other entry points
@pytest.mark.parametrize("call,exc,match", [
    (lambda: SP.simulate({"variety": 3}, {"Residual": 1}), DesignError, "block"),
    (lambda: SP.simulate({"variety": 3, "nitro": 4, "block": 2}, {"zz": 1}), DesignError, "zz"),
    (lambda: SP.simulate({"variety": 3, "nitro": 4, "block": 2}, {"block": -1}), DesignError, "non-negative"),
    (lambda: SP.simulate({"variety": 0, "nitro": 4, "block": 2}, {}), DesignError, "positive"),
    (lambda: SP.simulate({"variety": 3, "nitro": 4, "block": 2}, {}, effects={"zz": {"a": 1}}), DesignError, "zz"),
    (lambda: vcomp.anova(OATS, "yield", "nitro"), DesignError, "Design"),
    (lambda: vcomp.crosscheck(OATS, "yield", "nitro"), VcompError, "Design"),
    (lambda: vcomp.datasets.load("nope"), KeyError, "nope"),
])
def test_other_entry_points(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("a,b", [(1e-12, 0.0), (1e12, 0.0), (1.0, 1e9), (-3.0, 5e5)])
def test_extreme_magnitudes(a, b, ref):
    d = OATS.assign(**{"yield": a * OATS["yield"] + b})
    same_anova(quiet(SP.anova, d, "yield"), ref[0], scale=a * a)
    same_fit(quiet(SP.lmm, d, "yield"), ref[1], scale=a * a, rtol=1e-5)


# ----------------------------------------------------------------------------------------- planning entry points
LV = {"variety": 3, "nitro": 4, "block": 3}


@pytest.mark.parametrize("call,match", [
    (lambda: SP.layout({"variety": 3}), "missing"), (lambda: SP.layout({**LV, "nitro": 0}), "positive"),
    (lambda: SP.layout({**LV, "nitro": 2.5}), "number of levels"), (lambda: SP.layout({**LV, "nitro": ["a", "a"]}), "repeats"),
    (lambda: SP.layout(LV, seed="x"), "seed"), (lambda: SP.layout({**LV, "zz": 2}), "zz"),
    (lambda: SP.layout({"variety": 1000, "nitro": 1000, "block": 100}), "at most"),
    (lambda: SP.layout({**LV, "block": 10 ** 12}), "at most"),
    (lambda: vcomp.LatinSquare("t", "r", "c").layout({"t": 4, "r": 5, "c": 4}), "Latin square"),
    (lambda: SP.skeleton(symbols={"zz": "q"}), "zz"), (lambda: SP.skeleton(symbols={"variety": 3}), "letter"),
    (lambda: SP.skeleton().evaluate({"variety": 3}), "missing"),
    (lambda: vcomp.Design(fixed="A + x", covariates=["x"], random=["b"]).skeleton(), "covariate"),
    (lambda: SP.power(LV, {"nitro": {"nitro2": 1.0}}, {"block": 1.0}), "Residual"),
    (lambda: SP.power(LV, {"zz": {"a": 1.0}}, {"Residual": 1.0}), "zz"),
    (lambda: SP.power(LV, {"nitro": {"zz": 1.0}}, {"Residual": 1.0}), "zz"),
    (lambda: SP.power(LV, {"nitro": {"nitro2": 1.0}}, {"Residual": 1.0}, alpha=2), "alpha"),
    (lambda: SP.power(LV, {"nitro": {"nitro2": np.nan}}, {"Residual": 1.0}), "finite"),
    (lambda: SP.power(LV, {"nitro": {"nitro2": 1.0}}, {"Residual": -1.0}), "non-negative"),
    (lambda: SP.power(LV, {"nitro": {"nitro2": 1.0}}, {"Residual": 1.0}, nsim="10"), "nsim"),
    (lambda: SP.power(LV, {"nitro": {"nitro2": 1.0}}, {"Residual": 1.0}, nsim=3, ddf="zz"), "ddf"),
    (lambda: SP.simulate(LV, {"Residual": np.nan}), "finite"), (lambda: SP.simulate(LV, {"Residual": 1}, reps=0), "reps"),
    (lambda: vcomp.simulate.random_slopes(n_cluster=0), "n_cluster"), (lambda: vcomp.simulate.random_slopes(cor=2), "cor"),
    (lambda: vcomp.simulate.random_slopes(sigma=np.inf), "sigma"), (lambda: vcomp.plot.shrinkage("x"), "MixedModel"),
    (lambda: vcomp.datasets.load(3), "available"), (lambda: vcomp.CRD("nitro").crosscheck(OATS, "yield"), "random"),
])
def test_planning_and_other_entry_points(call, match):
    with pytest.raises(VcompError, match=match):
        call()
