"""Design.power: exact noncentral-F power against R, simulation within Monte Carlo error (vcomp/power.py)."""
import json
import math
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
import vcomp.power as vpower
from vcomp.power import noncentral_f_power

REF = pathlib.Path(__file__).parent / "reference" / "power"
SCENARIOS = (json.loads((REF / "power.json").read_text())["scenarios"]
             + json.loads((REF / "oracle_power.round2.json").read_text())["scenarios"])


def _design(sc):
    return eval(sc["builder"], {"vcomp": vcomp})


def _key(t):
    return frozenset(t.split(":"))


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_exact_power_matches_R(sc):
    des = _design(sc)
    pw = des.power(sc["levels"], sc["effects"], sc["components"], alpha=sc["alpha"], reps=sc.get("reps", 1))
    assert list(pw.columns[:2]) == ["power", "method"]
    assert {_key(t) for t in pw.index} == {_key(t) for t in sc["power"]}
    got = {_key(t): r for t, r in pw.iterrows()}
    for term, ref in sc["power"].items():
        r = got[_key(term)]
        assert r["method"] == "exact"
        assert r["power"] == pytest.approx(ref["power"], abs=1e-6), term
        assert r["ncp"] == pytest.approx(ref["ncp"], rel=1e-8, abs=1e-10), term
        assert (r["num_df"], r["den_df"]) == (ref["df1"], ref["df2"])
        assert _key(r["error"]) == _key(ref["error"])


@pytest.mark.parametrize("name", ["rcbd", pytest.param("strip3x4x4", marks=pytest.mark.slow),
                                  pytest.param("splitsplit2x3x2x3", marks=pytest.mark.slow), "crd2x3r3"])
def test_simulated_power_within_monte_carlo_error(name):
    sc = next(s for s in SCENARIOS if s["name"] == name)
    des = _design(sc)
    args = (sc["levels"], sc["effects"], sc["components"])
    kw = dict(alpha=sc["alpha"], reps=sc.get("reps", 1))
    sim = des.power(*args, nsim=200, seed=1, progress=False, **kw)
    ex = des.power(*args, **kw)
    assert set(sim["method"]) == {"simulation"} and set(ex["method"]) == {"exact"}
    for t in ex.index:
        p = ex.loc[t, "power"]
        assert abs(sim.loc[t, "power"] - p) <= 4 * math.sqrt(p * (1 - p) / 200) + 0.01, t
        assert sim.loc[t, "nsim"] == 200 and sim.loc[t, "mc_se"] > 0


def test_same_seed_same_simulation():
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    args = ({"A": 2, "B": 2, "block": 3}, {"A": {"A2": 1.0}}, {"block": 1, "block:A": 0.5, "Residual": 1})
    a = des.power(*args, nsim=15, seed=4, progress=False)
    pd.testing.assert_frame_equal(a, des.power(*args, nsim=15, seed=4, progress=False))


def test_null_effects_give_alpha_and_noncentral_f():
    des = vcomp.RCBD(treatment="trt", block="block")
    pw = des.power({"trt": 3, "block": 4}, {}, {"block": 1, "Residual": 1}, alpha=0.1)
    assert pw.loc["trt", "power"] == pytest.approx(0.1, abs=1e-12) and pw.loc["trt", "ncp"] == 0
    assert noncentral_f_power(0.0, 2, 6, 0.05) == pytest.approx(0.05)
    assert noncentral_f_power(10.0, 2, 6, 0.05) > noncentral_f_power(5.0, 2, 6, 0.05)


def test_power_grows_with_blocks():
    des = vcomp.SplitPlot(whole="A", sub="N", block="block")
    eff = {"N": {"N2": 0.5, "N3": 1.0}}
    p = [des.power({"A": 2, "N": 3, "block": r}, eff, {"block": 1, "block:A": 0.5, "Residual": 1}).loc["N", "power"]
         for r in range(2, 6)]
    assert all(a < b for a, b in zip(p, p[1:]))


def test_incomplete_plan_is_simulated(monkeypatch):
    monkeypatch.setattr(vpower, "DEFAULT_NSIM", 60)
    des = vcomp.RCBD(treatment="trt", block="block")
    lev = {"trt": 3, "block": 4}
    eff, comp = {"trt": {"trt2": 1.5}}, {"block": 1, "Residual": 0.5}
    plan = des.layout(lev, seed=1)
    full = des.power(None, eff, comp, plan=plan)
    assert full.loc["trt", "method"] == "exact"
    assert full.loc["trt", "power"] == pytest.approx(des.power(lev, eff, comp).loc["trt", "power"], abs=1e-12)
    lost = des.power(None, eff, comp, plan=plan.iloc[1:], nsim=None, seed=2, progress=False)
    assert lost.loc["trt", "method"] == "simulation" and lost.loc["trt", "nsim"] == 60
    assert lost.loc["trt", "power"] < full.loc["trt", "power"] + 0.1


def test_nested_has_no_fixed_terms():
    pw = vcomp.Nested(["batch", "cask"]).power({"batch": 3, "cask": 2}, {}, {"Residual": 1}, reps=2)
    assert len(pw) == 0 and list(pw.columns[:2]) == ["power", "method"]


@pytest.mark.parametrize("kw, match", [
    (dict(components={"block": 1}), "Residual"),
    (dict(alpha=1.5), "alpha"),
    (dict(nsim=0), "nsim"),
    (dict(ddf="wald"), "ddf"),
    (dict(effects={"trt": 1.0}), "standard deviation"),
    (dict(effects={"trt": {"t9": 1.0}}), "t9"),
    (dict(effects={"block": {"block1": 1.0}}), "not a fixed term"),
    (dict(components={"plot": 1, "Residual": 1}), "not random terms"),
    (dict(progress="yes"), "progress"),
])
def test_bad_input(kw, match):
    des = vcomp.RCBD(treatment="trt", block="block")
    args = dict(levels={"trt": ["t1", "t2"], "block": 3}, effects={"trt": {"t2": 1.0}},
                components={"block": 1, "Residual": 1})
    args.update(kw)
    with pytest.raises(vcomp.VcompError, match=match):
        des.power(**args)


def test_crd_without_replicates_is_a_clear_error():
    with pytest.raises(vcomp.DesignError, match="reps"):
        vcomp.CRD("trt").power({"trt": 3}, {"trt": {"trt2": 1}}, {"Residual": 1})


def test_progress_bar_silent_off_terminal(capsys):
    des = vcomp.CRD("trt")
    des.power({"trt": 3}, {"trt": {"trt2": 1}}, {"Residual": 1}, reps=3, nsim=5, seed=1)
    assert capsys.readouterr().err == ""
    des.power({"trt": 3}, {"trt": {"trt2": 1}}, {"Residual": 1}, reps=3, nsim=5, seed=1, progress=True)
    assert "power by simulation" in capsys.readouterr().err


def test_caller_arguments_unchanged():
    lev, eff, comp = {"trt": 3, "block": 2}, {"trt": {"trt2": 1.0}}, {"block": 1.0, "Residual": 1.0}
    copies = json.dumps([lev, eff, comp])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vcomp.RCBD("trt", "block").power(lev, eff, comp)
    assert json.dumps([lev, eff, comp]) == copies


from hypothesis import given, settings, strategies as st  # noqa: E402


def _main_ss(mu, plan, f):
    """(N/a) Σ (μ̄_i − μ̄)² of a main effect, from the plots' expected values."""
    m = pd.Series(mu).groupby(plan[f].to_numpy()).mean()
    return len(mu) / len(m) * float(((m - np.mean(mu)) ** 2).sum())


@given(a=st.integers(2, 4), b=st.integers(2, 4), r=st.integers(2, 5), ea=st.floats(0, 2), eb=st.floats(0, 2),
       w=st.floats(0.01, 2), e=st.floats(0.1, 2))
@settings(max_examples=15, deadline=None)
def test_split_plot_textbook_ncp(a, b, r, ea, eb, w, e):
    """λ_A = r b Σ(ᾱ_i − ᾱ)² / (σ²_e + b σ²_w) on df (a−1, (r−1)(a−1)); λ_B = r a Σ(β̄_j − β̄)² / σ²_e."""
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    eff = {"A": {"A2": ea}, "B": {"B%d" % b: eb}}
    pw = des.power({"A": a, "B": b, "block": r}, eff, {"block": 1.0, "block:A": w, "Residual": e})
    alpha = np.r_[0, ea, np.zeros(a - 2)]
    beta = np.r_[np.zeros(b - 1), eb]
    lam_a = r * b * np.sum((alpha - alpha.mean()) ** 2) / (e + b * w)
    lam_b = r * a * np.sum((beta - beta.mean()) ** 2) / e
    assert pw.loc["A", "ncp"] == pytest.approx(lam_a, rel=1e-8, abs=1e-10)
    assert pw.loc["A", "power"] == pytest.approx(noncentral_f_power(lam_a, a - 1, (r - 1) * (a - 1)), abs=1e-10)
    assert pw.loc["B", "power"] == pytest.approx(noncentral_f_power(lam_b, b - 1, a * (r - 1) * (b - 1)), abs=1e-10)


@given(t=st.integers(3, 6), eff=st.lists(st.floats(-2, 2), min_size=6, max_size=6), seed=st.integers(0, 100))
@settings(max_examples=10, deadline=None)
def test_latin_square_ncp_any_plan(t, eff, seed):
    des = vcomp.LatinSquare(treatment="trt", row="row", col="col")
    lev = {"trt": t, "row": t, "col": t}
    effects = {"trt": {"trt%d" % (i + 1): eff[i] for i in range(t)}}
    pw = des.power(lev, effects, {"row": 0.5, "col": 0.2, "Residual": 0.7}, seed=seed)
    tau = np.array(eff[:t])
    lam = t * np.sum((tau - tau.mean()) ** 2) / 0.7
    assert pw.loc["trt", "ncp"] == pytest.approx(lam, rel=1e-8, abs=1e-10)
    assert (pw.loc["trt", "num_df"], pw.loc["trt", "den_df"]) == (t - 1, (t - 1) * (t - 2))


def test_generic_design_same_as_builder():
    lev = {"A": 3, "B": 2, "block": 4}
    eff = {"A": {"A2": 1.0}, "A:B": {"A3:B2": 0.5}}
    comp = {"block": 1.0, "block:A": 0.4, "Residual": 0.6}
    a = vcomp.SplitPlot("A", "B", "block").power(lev, eff, comp)
    b = vcomp.Design(fixed="A*B", random=["block", "block:A"]).power(lev, eff, comp)
    np.testing.assert_allclose(a["power"].to_numpy(dtype=float), b["power"].to_numpy(dtype=float), rtol=1e-12)


def test_any_latin_square_plan_is_balanced():
    des = vcomp.LatinSquare(treatment="trt", row="row", col="col")
    lev = {"trt": 4, "row": 4, "col": 4}
    eff, comp = {"trt": {"trt2": 1.0}}, {"row": 0.5, "col": 0.5, "Residual": 0.5}
    ref = des.power(lev, eff, comp).loc["trt", "power"]
    for seed in (1, 2, 3):
        pw = des.power(None, eff, comp, plan=des.layout(lev, seed=seed))
        assert pw.loc["trt", "method"] == "exact" and pw.loc["trt", "power"] == pytest.approx(ref, abs=1e-12)
