"""The data-coding layer (vcomp._coding): frames, factor levels, model-matrix columns."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import vcomp
from vcomp import DataError
from vcomp._coding import FixedCoding, as_frame, factor_levels, model_frame
from vcomp.terms import parse_formula


@pytest.fixture
def d():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"y": rng.normal(size=24), "x": rng.uniform(1, 2, 24),
                         "a": pd.Series(list("cab") * 8, dtype="str"), "b": [1, 2, 3, 4] * 6,
                         "g": np.repeat(np.arange(6), 4)})


def coding(f, d, **kw):
    m = parse_formula(f)
    mf = model_frame(m, d, **kw)
    fc = FixedCoding(list(m.fixed), m.intercept, mf.specs, kw.pop("default", "treatment"))
    return fc, fc.build(mf.values, mf.n), mf


def test_names_and_assign_follow_patsy_and_r(d):
    fc, X, _ = coding("y ~ a*x + C(b)", d)
    assert fc.colnames == ["Intercept", "a[T.b]", "a[T.c]", "x", "C(b)[T.2]", "C(b)[T.3]", "C(b)[T.4]",
                           "a[T.b]:x", "a[T.c]:x"]
    assert fc.term_names == ["a", "x", "C(b)", "a:x"]
    assert list(fc.assign) == [-1, 0, 0, 1, 2, 2, 2, 3, 3]
    assert np.allclose(X[:, 3], d.x)


def test_r_contrast_rule(d):
    fc, _, _ = coding("y ~ 0 + a + C(b)", d)     # first factor full, the next by contrasts (R)
    assert fc.colnames[:3] == ["a[a]", "a[b]", "a[c]"] and fc.colnames[3] == "C(b)[T.2]"
    fc, _, _ = coding("y ~ a:x", d)             # separate slopes: indicators
    assert fc.colnames == ["Intercept", "a[a]:x", "a[b]:x", "a[c]:x"]


def test_integer_column_is_covariate_unless_factor(d):
    fc, _, _ = coding("y ~ b", d)
    assert fc.colnames == ["Intercept", "b"]
    fc, _, _ = coding("y ~ b", d, factors=["b"])
    assert fc.colnames == ["Intercept", "b[T.2]", "b[T.3]", "b[T.4]"]


def test_levels_sorted_and_labelled():
    codes, lev = factor_levels(pd.Series([3.0, 1.0, 2.0, 1.0]), "v")
    assert lev.labels == ("1", "2", "3") and list(codes) == [2, 0, 1, 0]
    codes, lev = factor_levels(pd.Series(pd.Categorical(["b", "a"], categories=["b", "a", "z"], ordered=True)), "v")
    assert lev.labels == ("b", "a")
    with pytest.raises(DataError, match="print alike"):
        factor_levels(pd.Series([1, "1", "a"], dtype=object), "g")
    codes, lev = factor_levels(pd.Series([1, "a", 2], dtype=object), "g")
    assert lev.labels == ("1", "2", "a")


def test_frames_are_checked_and_never_modified(d):
    with pytest.raises(DataError, match="duplicated column name 'a'"):
        as_frame(pd.concat([d, d[["a"]]], axis=1))
    with pytest.raises(DataError, match="MultiIndex"):
        as_frame(pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "b"), ("a", "c")])))
    f = as_frame(pd.DataFrame({0: [1.0], 1: [2.0]}))
    assert list(f.columns) == ["0", "1"]
    before = d.copy()
    coding("y ~ a*x + log(x)", d)
    pd.testing.assert_frame_equal(d, before)


def test_missing_rows_counted(d):
    d = d.copy()
    d.loc[[1, 5], "x"] = np.nan
    with pytest.warns(vcomp.DroppedRowsWarning, match="2 row"):
        _, X, mf = coding("y ~ x", d)
    assert X.shape[0] == 22 and mf.n_dropped == 2


def test_expression_nan_rows_dropped_and_inf_refused(d):
    d = d.copy()
    d.loc[0, "x"] = -1.0
    with pytest.warns(vcomp.DroppedRowsWarning):
        _, X, _ = coding("y ~ log(x)", d)
    assert X.shape[0] == 23
    d.loc[1, "x"] = np.inf
    with pytest.raises(DataError, match="infinite"):
        coding("y ~ x", d)


def test_new_rows_and_grids(d):
    fc, X, _ = coding("y ~ a*x", d)
    X2 = fc.build_frame(d.iloc[[5, 0]])
    assert np.allclose(X2, X[[5, 0]])
    with pytest.raises(DataError, match="not seen"):
        fc.build_frame(d.iloc[:2].assign(a="zz"))


@given(st.lists(st.text(min_size=0, max_size=4), min_size=1, max_size=30),
       st.sampled_from(["object", "str", "category"]))
@settings(max_examples=60, deadline=None)
@example(["\x00", ""], "object")
def test_text_levels_sort_like_the_scalar_rule(values, dtype):
    """The vectorised text path of factor_levels orders and labels levels exactly as _sort_key/level_label."""
    from vcomp._coding import _sort_key, level_label
    col = pd.Series(values, dtype=dtype)
    codes, lev = factor_levels(col, "f")
    uniq = list(dict.fromkeys(values))
    if dtype != "category":
        assert list(lev.labels) == [level_label(u) for u in sorted(uniq, key=_sort_key)]
    assert [lev.labels[c] for c in codes] == [level_label(v) for v in values]


@pytest.mark.parametrize("cow", [True, False])
def test_later_edits_of_the_callers_data_do_not_reach_a_fit(monkeypatch, cow):
    """The model keeps references to the caller's columns only where pandas copies on write."""
    import vcomp._coding as coding
    monkeypatch.setattr(coding, "_COPY_ON_WRITE", cow)
    d = vcomp.datasets.load("oats").copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("yield ~ nitro*variety + (1|block/variety)", d)
        fitted = m.fitted().copy()
        y0 = m.data["yield"].to_numpy().copy()
        d.loc[0, "yield"] = -1e6
        d["yield"] *= 2.0
        np.testing.assert_array_equal(m.data["yield"].to_numpy(), y0)
        np.testing.assert_allclose(m.fitted(), fitted)
        np.testing.assert_allclose(m.residuals(), y0 - fitted)
