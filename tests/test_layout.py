"""Design.layout: randomized field plans with each builder's restrictions (vcomp/layout.py)."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import vcomp
from vcomp.layout import field_plan, level_labels


def _complete(plan, factors, count=1):
    c = plan.groupby(factors).size()
    return len(c) == np.prod([plan[f].nunique() for f in factors]) and (c == count).all()


def _contiguous(plan, factors):
    return all(g["plot"].max() - g["plot"].min() + 1 == len(g) for _, g in plan.groupby(factors))


def _orders(plan, unit, what):
    return {tuple(g[what]) for _, g in plan.groupby(unit, sort=False)}


def test_level_labels():
    assert level_labels("block", 3) == ["block1", "block2", "block3"]
    assert level_labels("trt", 12)[:2] == ["trt01", "trt02"] and level_labels("trt", 12)[-1] == "trt12"
    assert level_labels("v", ["b", 2, "a"]) == ["b", "2", "a"]
    for bad in (0, [], ["a", "a"], True, "abc", 2.5):
        with pytest.raises(vcomp.DesignError):
            level_labels("v", bad)


def test_columns_plot_numbers_and_seed():
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    lev = {"A": 3, "B": 4, "block": 3}
    p = des.layout(lev, seed=1)
    assert list(p.columns) == ["plot", "block", "A", "B"]
    assert list(p["plot"]) == list(range(1, 37))
    pd.testing.assert_frame_equal(p, des.layout(lev, seed=1))
    assert not p.equals(des.layout(lev, seed=2))
    assert all(isinstance(v, str) for v in p["A"])


@given(t=st.integers(2, 7), r=st.integers(1, 5), seed=st.integers(0, 10 ** 6))
@settings(max_examples=30, deadline=None)
def test_rcbd(t, r, seed):
    p = vcomp.RCBD(treatment="trt", block="block").layout({"trt": t, "block": r}, seed=seed)
    assert len(p) == t * r and _complete(p, ["block", "trt"]) and _contiguous(p, ["block"])
    assert list(dict.fromkeys(p["block"])) == level_labels("block", r)  # blocks in field order


@given(t=st.integers(2, 8), seed=st.integers(0, 10 ** 6))
@settings(max_examples=30, deadline=None)
def test_latin_square(t, seed):
    p = vcomp.LatinSquare(treatment="trt", row="row", col="col").layout({"trt": t, "row": t, "col": t}, seed=seed)
    assert len(p) == t * t
    assert _complete(p, ["row", "col"]) and _complete(p, ["row", "trt"]) and _complete(p, ["col", "trt"])
    assert _contiguous(p, ["row"])


def test_latin_square_randomized_and_factorial():
    des = vcomp.LatinSquare(treatment="trt", row="row", col="col")
    squares = {tuple(des.layout({"trt": 5, "row": 5, "col": 5}, seed=s)["trt"]) for s in range(10)}
    assert len(squares) > 5
    p = vcomp.LatinSquare(treatment=["A", "B"], row="r", col="c").layout({"A": 2, "B": 2, "r": 4, "c": 4}, seed=3)
    assert _complete(p, ["r", "A", "B"]) and _complete(p, ["c", "A", "B"]) and _complete(p, ["r", "c"])
    with pytest.raises(vcomp.DesignError, match="as many rows and columns"):
        des.layout({"trt": 4, "row": 4, "col": 5})


@given(a=st.integers(2, 4), b=st.integers(2, 4), r=st.integers(2, 4), seed=st.integers(0, 10 ** 6))
@settings(max_examples=25, deadline=None)
def test_split_plot(a, b, r, seed):
    p = vcomp.SplitPlot(whole="A", sub="B", block="block").layout({"A": a, "B": b, "block": r}, seed=seed)
    assert len(p) == a * b * r and _complete(p, ["block", "A", "B"])
    assert _contiguous(p, ["block"]) and _contiguous(p, ["block", "A"])


def test_split_plot_randomization():
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    p = des.layout({"A": 3, "B": 4, "block": 4}, seed=5)
    assert len(_orders(p, "block", "A")) > 1 and len(_orders(p, ["block", "A"], "B")) > 1


def test_split_split_plot():
    p = vcomp.SplitSplitPlot("A", "B", "C", "block").layout({"A": 2, "B": 3, "C": 2, "block": 3}, seed=4)
    assert _complete(p, ["block", "A", "B", "C"])
    for unit in (["block"], ["block", "A"], ["block", "A", "B"]):
        assert _contiguous(p, unit)
    assert len(_orders(p, ["block", "A", "B"], "C")) > 1


def test_strip_plot():
    p = vcomp.StripPlot("H", "V", "block").layout({"H": 3, "V": 4, "block": 3}, seed=2)
    assert _complete(p, ["block", "H", "V"]) and _contiguous(p, ["block"])
    for _, g in p.groupby("block"):
        runs = [list(g["V"])[i:i + 4] for i in range(0, 12, 4)]
        assert all(len(set(list(g["H"])[i:i + 4])) == 1 for i in range(0, 12, 4))
        assert all(run == runs[0] for run in runs)  # one vertical order crosses every horizontal strip
    assert len(_orders(p, "block", "H")) > 1 or len(_orders(p, "block", "V")) > 1


def test_crd_nested_and_reps():
    p = vcomp.CRD("trt").layout({"trt": 4}, reps=3, seed=1)
    assert len(p) == 12 and (p.groupby("trt").size() == 3).all()
    assert list(p["trt"]) != sorted(p["trt"])
    p = vcomp.Nested(["batch", "cask"]).layout({"batch": 3, "cask": 2}, reps=2)
    assert len(p) == 12 and _contiguous(p, ["batch", "cask"]) and _contiguous(p, ["batch"])
    p = vcomp.SplitPlot("A", "B", "block").layout({"A": 2, "B": 2, "block": 2}, reps=3, seed=1)
    assert _complete(p, ["block", "A", "B"], 3) and _contiguous(p, ["block", "A", "B"])  # sub-samples together


def test_generic_designs():
    # the builder with the same terms lays it out
    g = vcomp.Design(fixed="A*B", random=["block", "block:A"])
    assert g.as_builder() == vcomp.SplitPlot("A", "B", "block")
    p = g.layout({"A": 3, "B": 2, "block": 3}, seed=1)
    assert _contiguous(p, ["block", "A"])
    # otherwise: treatments randomized within the cells of the blocking factors
    m = vcomp.Design(fixed="machine", random=["worker", "worker:machine"])
    assert m.as_builder() is None
    p = m.layout({"machine": 3, "worker": 4}, reps=2, seed=1)
    assert len(p) == 24 and _contiguous(p, ["worker"]) and _complete(p, ["worker", "machine"], 2)


@pytest.mark.parametrize("call, match", [
    (lambda: vcomp.RCBD("trt", "block").layout({"trt": 3}), "'block'"),
    (lambda: vcomp.RCBD("trt", "block").layout({"trt": 3, "block": 2, "blok": 2}), "'blok'"),
    (lambda: vcomp.RCBD("trt", "block").layout([3, 2]), "dict"),
    (lambda: vcomp.RCBD("trt", "block").layout({"trt": 3, "block": 2}, reps=0), "reps"),
    (lambda: vcomp.RCBD("trt", "block").layout({"trt": 3, "block": 2}, seed="x"), "seed"),
    (lambda: vcomp.Nested(["field", "plot"]).layout({"field": 2, "plot": 2}), "'plot'"),
    (lambda: vcomp.Design(fixed="x + trt", covariates=["x"]).layout({"x": 2, "trt": 2}), "covariate"),
])
def test_bad_input(call, match):
    with pytest.raises(vcomp.DesignError, match=match):
        call()


def test_levels_not_modified():
    lev = {"trt": ["a", "b"], "block": 2}
    vcomp.RCBD("trt", "block").layout(lev, seed=1)
    assert lev == {"trt": ["a", "b"], "block": 2}


def test_roles():
    assert vcomp.SplitPlot("A", "B", "blk").roles == {"whole": ("A",), "sub": ("B",), "block": ("blk",)}
    assert vcomp.CRD(["A", "B"]).roles == {"treatment": ("A", "B")}
    assert vcomp.SplitPlot("A", "B", "blk").kind == "SplitPlot"
    assert vcomp.Design(fixed="A").kind is None and vcomp.Design(fixed="A").roles == {}
    assert vcomp.Design(random=["a", "a:b", "a:b:c"]).as_builder().roles == {"factors": ("a", "b", "c")}
    assert field_plan(vcomp.CRD("t"), {"t": 3}, seed=1).shape == (3, 2)
