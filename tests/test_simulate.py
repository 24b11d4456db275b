import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp.simulate import random_slopes


def test_random_slopes_shape_and_defaults():
    d = random_slopes()
    assert list(d.columns) == ["y", "x", "cluster"]
    assert len(d) == 1000 and d["cluster"].nunique() == 100
    assert (d.groupby("cluster").size() == 10).all()


def test_random_slopes_seeded_and_thinned():
    a, b = random_slopes(seed=3), random_slopes(seed=3)
    pd.testing.assert_frame_equal(a, b)
    d = random_slopes(balanced=0.5, seed=3)
    assert len(d) == 500
    assert d.groupby("cluster").size().nunique() > 1


def test_random_slopes_true_correlation():
    d = random_slopes(obs_per_cluster=2, n_cluster=4000, sd_int=1, sd_slope=1, cor=0.8, sigma=0.0, seed=5)
    # with sigma = 0 each cluster's two points give its line exactly
    g = d.groupby("cluster")
    x0, x1 = g["x"].first().to_numpy(), g["x"].last().to_numpy()
    y0, y1 = g["y"].first().to_numpy(), g["y"].last().to_numpy()
    slope = (y1 - y0) / (x1 - x0)
    inter = y0 - slope * x0
    assert abs(np.corrcoef(inter, slope)[0, 1] - 0.8) < 0.05


@pytest.mark.parametrize("bad", [dict(cor=1.5), dict(balanced=0), dict(sd_int=-1), dict(n_cluster=0)])
def test_random_slopes_bad_input(bad):
    with pytest.raises(ValueError):
        random_slopes(**bad)


def test_design_simulate_structure():
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    d = des.simulate({"block": 4, "A": 3, "B": 2}, {"block": 2.0, "block:A": 1.0, "Residual": 0.5}, seed=1)
    assert len(d) == 24 and set(d.columns) >= {"block", "A", "B", "y"}
    res = des.anova(d, "y")
    assert res.table.loc["Residual", "df"] == 9


def test_design_simulate_effects_and_errors():
    des = vcomp.RCBD(treatment="trt", block="blk")
    d = des.simulate({"trt": ["a", "b"], "blk": 3}, {"Residual": 1e-12}, effects={"trt": {"b": 5.0}}, seed=0, mean=10)
    m = d.groupby("trt")["y"].mean()
    assert m["a"] == pytest.approx(10, abs=1e-4) and m["b"] == pytest.approx(15, abs=1e-4)
    with pytest.raises(vcomp.DesignError, match="trt"):
        des.simulate({"blk": 3}, {})
    with pytest.raises(vcomp.DesignError, match="nope"):
        des.simulate({"trt": 2, "blk": 3}, {"nope": 1.0})


def test_simulation_recovers_components_on_average():
    """Method-of-moments (raw) estimates are unbiased: their average over many
    simulated split-plots is close to the true components."""
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    truth = {"block": 4.0, "block:A": 2.0, "Residual": 1.0}
    est = []
    for s in range(60):
        d = des.simulate({"block": 4, "A": 3, "B": 4}, truth, effects={"A": 1.0, "B": 1.0}, seed=s)
        est.append(des.anova(d, "y").components["raw"])
    mean = pd.concat(est, axis=1).mean(axis=1)
    for k, v in truth.items():
        assert mean[k] == pytest.approx(v, rel=0.3), k


def test_simulate_draws_on_the_plan():
    des = vcomp.LatinSquare(treatment="trt", row="row", col="col")
    lev = {"trt": 5, "row": 5, "col": 5}
    d = des.simulate(lev, {"row": 1.0, "col": 0.5, "Residual": 1.0}, seed=7)
    assert len(d) == 25
    for a, b in (("row", "col"), ("row", "trt"), ("col", "trt")):
        assert (d.groupby([a, b]).size() == 1).all() and d.groupby([a, b]).ngroups == 25
    # the same plan as layout() with the same seed
    pd.testing.assert_frame_equal(d.drop(columns="y"), des.layout(lev, seed=7))
    assert des.anova(d, "y").table.loc["Residual", "df"] == 12


def test_simulate_effects_forms():
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    lev = {"A": ["a1", "a2"], "B": ["b1", "b2"], "block": 2}
    tiny = {"Residual": 1e-14}
    d = des.simulate(lev, tiny, effects={"A:B": {"a2:b2": 3.0}, "B": [0.0, 1.0]}, seed=1)
    m = d.groupby(["A", "B"])["y"].mean()
    assert m[("a2", "b2")] == pytest.approx(4.0, abs=1e-5) and m[("a1", "b2")] == pytest.approx(1.0, abs=1e-5)
    # an interaction's keys follow the term's factor order as written
    d = des.simulate(lev, tiny, effects={"B:A": {"b2:a1": 2.0}}, seed=1)
    assert d.groupby(["A", "B"])["y"].mean()[("a1", "b2")] == pytest.approx(2.0, abs=1e-5)
    d = des.simulate(lev, tiny, effects={"A": 1.0}, seed=1)  # scalar: SD of drawn effects
    assert d.groupby("A")["y"].mean().nunique() == 2
    with pytest.raises(vcomp.DesignError, match="a3"):
        des.simulate(lev, tiny, effects={"A": {"a3": 1.0}})
    with pytest.raises(vcomp.DesignError, match="3 values but the term has 2"):
        des.simulate(lev, tiny, effects={"A": [1.0, 2.0, 3.0]})
    with pytest.raises(vcomp.DesignError, match="not a fixed term"):
        des.simulate(lev, tiny, effects={"block": {"block1": 1.0}})
    with pytest.raises(vcomp.DesignError, match="non-negative"):
        des.simulate(lev, {"block": -1.0})
    with pytest.raises(vcomp.DesignError, match="response"):
        des.simulate(lev, tiny, response="A")


def test_simulate_reps_subsamples():
    des = vcomp.Nested(["batch", "cask"])
    d = des.simulate({"batch": 3, "cask": 2}, {"batch": 1.0}, reps=3, seed=2)
    assert len(d) == 18 and (d.groupby(["batch", "cask"]).size() == 3).all()
    assert des.anova(d, "y").table.loc["Residual", "df"] == 12
