"""vcomp/tables.py: report listings (decimals per column, alignment, escaping, captions) and the ResultFrame
tables of the mixed model, which print with a title but stay ordinary DataFrames."""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import vcomp
from vcomp.tables import column_decimals, fmt_df, format_column, render, titled
from _listings import compile_latex, html_problems, latex_problems, markdown_problems, right_aligned_numbers


# ---------------------------------------------------------------- numbers

def test_one_number_of_decimals_per_column():
    ss = format_column([15875.28, 1786.36, 6013.31, 20020.5, 321.75, 7968.75])
    assert ss == ["15875.3", "1786.4", "6013.3", "20020.5", "321.8", "7968.8"]
    assert len({len(x.split(".")[1]) for x in format_column([3.2, 0.51234, 120.0, 7.0])}) == 1


def test_noise_and_integers():
    assert format_column([4, 1.356e-30, 12, 1]) == ["4", "0", "12", "1"]
    assert format_column([3.799, 1e-17, 10.52]) == ["3.799", "0.000", "10.520"]
    assert format_column([-1e-20, 2.5]) == ["0.0", "2.5"]
    assert format_column([5.0, 45.0]) == ["5", "45"]


def test_df_integers_and_two_decimals():
    assert format_column([10, 45.0, 6.97964, float("nan")], "df") == ["10", "45", "6.98", ""]
    assert fmt_df(45) == "45" and fmt_df(30.18836) == "30.19"


def test_scientific_for_extreme_columns():
    assert format_column([1e-5, 2.5e-6]) == ["1.000e-05", "2.500e-06"]
    assert column_decimals([3e10, 1.0]) is None


@given(st.lists(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False), min_size=1, max_size=12))
@settings(max_examples=200, deadline=None)
def test_column_rule_properties(xs):
    cells = format_column(xs)
    decs = {len(c.split(".")[1]) if "." in c else 0 for c in cells if "e" not in c}
    assert len(decs) <= 1                                     # one number of decimals per column
    big = max(abs(x) for x in xs)
    for c, x in zip(cells, xs):
        if "e" not in c and big > 0:                          # the largest entries keep 4 significant digits
            if abs(x) == big and big >= 1e-3:
                assert abs(float(c) - x) <= 5e-4 * big + 1e-12


# ---------------------------------------------------------------- layout and escaping

SPECIAL = pd.DataFrame({"SS_total %": [1.5, 22.25], "label": ["a&b", "{x} #1 $5 ~t x^2"]},
                       index=pd.Index(["R_1", "50%"], name="src"))


def test_alignment_everywhere():
    text = render(SPECIAL, "text")
    assert right_aligned_numbers(text)
    md = render(SPECIAL, "markdown")
    assert "--:|" in md.split("\n")[1] and not markdown_problems(md)
    tex = render(SPECIAL, "latex", title="T")
    assert "\\begin{tabular}{lrl}" in tex
    assert 'style="text-align: right;"' in render(SPECIAL, "html")


def test_latex_escapes_and_caption():
    tex = render(SPECIAL, "latex", title="Table of y_1 at 50% & more")
    assert latex_problems(tex) == []
    assert "\\caption{Table of y\\_1 at 50\\% \\& more}" in tex
    for raw, esc in (("SS_total %", "SS\\_total \\%"), ("R_1", "R\\_1"), ("50%", "50\\%"), ("a&b", "a\\&b"),
                     ("{x}", "\\{x\\}"), ("#1", "\\#1"), ("$5", "\\$5")):
        assert esc in tex, raw
    assert "\n%" not in tex and not tex.startswith("%")
    html = render(SPECIAL, "html", title="a<b")
    assert "<caption>a&lt;b</caption>" in html and not html_problems(html)


# ---------------------------------------------------------------- results end to end, with hostile labels

def _hostile():
    d = vcomp.datasets.load("oats")
    d = d.rename(columns={"block": "blk_no", "nitro": "n_rate", "yield": "yield_kg"})
    d["variety"] = d["variety"].map({"Golden.rain": "Golden & rain", "Marvellous": "Marv_50%",
                                     "Victory": "{Victory} #1"})
    d["n_rate"] = d["n_rate"].astype(str).map(lambda s: "$" + s + "~")
    return d


def _results():
    d = _hostile()
    des = vcomp.SplitPlot("variety", "n_rate", "blk_no")
    out = [des.anova(d, "yield_kg", ss_type=s) for s in (1, 2, 3)]
    miss = d[~((d["blk_no"] == "III") & (d["variety"] == "{Victory} #1"))]
    out.append(des.anova(miss, "yield_kg", ss_type=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vcomp.VcompWarning)
        out.append(des.crosscheck(d, "yield_kg"))
        out.append(des.crosscheck(miss, "yield_kg"))
        fit = des.lmm(d, "yield_kg")
    out += [fit, fit.anova(), fit.anova(ddf="kenward-roger", type=1), fit.coef_table(ddf="kenward-roger"),
            fit.contrast(np.eye(len(fit.fixef))[1:3])]
    return out


@pytest.fixture(scope="module")
def results():
    return _results()


def test_every_result_renders_in_four_formats(results):
    probs = []
    for r in results:
        name = type(r).__name__
        text, md, tex, html = str(r), r.to_markdown(), r.to_latex(), r._repr_html_()
        probs += ["%s: %s" % (name, p) for p in latex_problems(tex) + markdown_problems(md) + html_problems(html)]
        if not right_aligned_numbers(text):
            probs.append("%s: text not right-aligned" % name)
        if "\\caption{" not in tex or "<caption>" not in html:
            probs.append("%s: no caption" % name)
        for bad in ("e-30", "e-17", "help('", "nan"):
            if bad in text:
                probs.append("%s prints %r" % (name, bad))
    assert not probs, "\n".join(probs)
    assert compile_latex([r.to_latex() for r in results]) is None


def test_anova_listing(results):
    r = results[2]
    text = str(r)
    assert "Corrected Total" in text and "Corrected Total" not in r.table.index
    line = next(x for x in text.split("\n") if x.startswith("Residual"))
    assert " 45 " in line and "45.0" not in line                       # integer df as integers
    assert "R-Square" in text and "yield_kg Mean" in text


def test_mixed_tables_are_titled_dataframes(results):
    fit, a3, a1, ct, con = results[6:11]
    assert str(a3).startswith("Type III Analysis of Variance Table with Satterthwaite's method")
    assert str(a1).startswith("Type I Analysis of Variance Table with Kenward-Roger's method")
    assert str(ct).startswith("Fixed effects: t tests with Kenward-Roger's method")
    assert str(con).startswith("F test of the contrast with Satterthwaite's method")
    for t in (a3, a1, ct, con):
        assert isinstance(t, pd.DataFrame)
        assert type(t * 1) is pd.DataFrame and type(t.copy()) is pd.DataFrame and type(t[t.columns[:2]]) is pd.DataFrame
        np.testing.assert_array_equal((t * 1).to_numpy(), t.to_numpy())
        assert pickle.loads(pickle.dumps(t)).equals(t)
        assert "<caption>" in t._repr_html_()
        assert t.to_markdown(index=False) == pd.DataFrame(t).to_markdown(index=False)  # pandas with arguments
    assert list(a3.columns) == ["num_df", "den_df", "F", "p"] and a3["num_df"].dtype.kind == "i"
    pd.testing.assert_frame_equal(pd.DataFrame(a3), pd.DataFrame(fit.anova()))


def test_print_fit_is_lmertest_summary(results):
    fit = results[6]
    text = str(fit)
    assert text.startswith("Linear mixed model fit by REML. t-tests use Satterthwaite's method")
    assert "Pr(>|t|)" in text and "df" in text and "help(" not in text
    ct = fit.coef_table()
    first = next(x for x in text.split("\n") if x.startswith("Intercept"))
    assert ("%.2f" % ct["df"].iloc[0]) in first


def test_singular_fit_message_plain():
    d = vcomp.datasets.load("gomez_splitsplit")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fit = vcomp.SplitSplitPlot("nitro", "management", "gen", "rep").lmm(d, "yield")
    assert fit.singular
    sing = [x for x in w if issubclass(x.category, vcomp.SingularFitWarning)]
    assert sing and all(x.filename == __file__ for x in sing)          # the caller's line, not vcomp's
    text = str(fit)
    assert "boundary (singular) fit" in text and "isSingular" not in text
