"""SAS type III by Goodnight's literal construction (vcomp.classical.goodnight).

Evidence that it implements SAS's rule: on every full-rank reference case with a type III part it reproduces the
R oracle's type III SS (sum-to-zero coding = SAS type III when X is full rank) to 1e-9.  Then its use as the gate
of the nested-cell type III in rank-deficient models: equal answers -> type III, different answers -> raise.
"""
import json
import os
import re
import sys

import numpy as np
import pandas as pd
import pytest

import vcomp
from _refcases import case_data, case_design, load_cases, norm_term
from vcomp.classical.goodnight import echelon_form, goodnight_type3_ss, overparam_model, sas_type3_hypotheses
from vcomp.classical.model import build_model, prepare

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "reference")
NT3 = os.path.join(REF, "nested_type3")
R_SS = json.load(open(os.path.join(NT3, "nested_type3.json")))

FULL_RANK = [r for r in load_cases() if r["classical"].get("type3") is not None]


def _csv(path, factors):
    d = pd.read_csv(path)
    for f in factors:
        d[f] = d[f].astype(str)
    return d


def _goodnight(d, des, response="y", over=True):
    """Literal SAS type III (df, SS); ``over``: with the over-parameterised X'X's generalized inverse."""
    prep = prepare(d, response, des)
    return goodnight_type3_ss(build_model(prep, des.terms), prep.y, prep.covars or None, over=over)


# ---------------------------------------------------------------- the construction itself

def test_echelon_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 4)) @ rng.normal(size=(4, 9))
    a[:, 2] = a[:, 0] - a[:, 1]                          # column 2 is not a pivot
    R, piv = echelon_form(a)
    assert list(piv) == [0, 1, 3, 4]
    np.testing.assert_allclose(R[:, piv], np.eye(4), atol=1e-12)
    # same row space as a
    assert np.linalg.matrix_rank(np.vstack([R, a]), tol=1e-8) == 4
    # reduced: the echelon form of X'X is that of X
    R2, piv2 = echelon_form(a.T @ a)
    assert list(piv2) == list(piv)
    np.testing.assert_allclose(R2, R, atol=1e-9)


def test_two_way_all_cells_is_unweighted_marginal_means():
    """Textbook: with every A:B cell filled, SAS's type III of A compares the unweighted means of A's cells."""
    X = np.array([[1, 1, 0, 1, 0, 1, 0, 0, 0], [1, 1, 0, 0, 1, 0, 1, 0, 0],
                  [1, 0, 1, 1, 0, 0, 0, 1, 0], [1, 0, 1, 0, 1, 0, 0, 0, 1]], dtype=float)
    blocks = {"A": [1, 2], "B": [3, 4], "A:B": [5, 6, 7, 8]}
    L = sas_type3_hypotheses(X, blocks, {"A": ["A:B"], "B": ["A:B"], "A:B": []})
    np.testing.assert_allclose(L["A"], [[0, 1, -1, 0, 0, 0.5, 0.5, -0.5, -0.5]], atol=1e-12)
    np.testing.assert_allclose(L["B"], [[0, 0, 0, 1, -1, 0.5, -0.5, 0.5, -0.5]], atol=1e-12)
    assert L["A:B"].shape[0] == 1
    # cell counts never enter: X'X with unequal counts gives the same hypotheses
    w = np.array([1.0, 5.0, 2.0, 7.0])
    L2 = sas_type3_hypotheses(X.T @ (X * w[:, None]), blocks, {"A": ["A:B"], "B": ["A:B"], "A:B": []})
    for t in L:
        np.testing.assert_allclose(L2[t], L[t], atol=1e-10)


def test_sas_containment_with_covariates():
    d = pd.DataFrame({"A": ["a", "b"] * 4, "B": ["p"] * 4 + ["q"] * 4, "x": np.arange(8.0)})
    des = vcomp.Design(fixed="A*B + x + A:x", covariates=["x"])
    prep = prepare(d.assign(y=1.0), "y", des)
    op = overparam_model(build_model(prep, des.terms), prep.covars)
    assert op.contains["A"] == ["A:B"]                   # A:x does not contain A (different covariates)
    assert op.contains["x"] == ["A:x"]
    assert op.contains["A:x"] == [] and op.contains["A:B"] == []


@pytest.mark.skipif(not FULL_RANK, reason="no reference cases found")
@pytest.mark.parametrize("r", FULL_RANK, ids=[r["name"] for r in FULL_RANK])
def test_reproduces_r_oracle_type3_on_full_rank_cases(r):
    """Literal SAS rule == R oracle's type III (sum coding, full rank) for every term, to 1e-9."""
    rows = [row for row in r["classical"]["type3"]["rows"] if row["source"] != "Residual"]
    for over in (True, False):  # over-parameterised G, and mapped to the sum-coded fit
        g = {norm_term(t): v for t, v in _goodnight(case_data(r), case_design(r), r["response"], over).items()}
        assert len(rows) == len(g)
        for row in rows:
            df, ss = g[norm_term(row["source"])]
            assert df == row["df"], row["source"]
            assert ss == pytest.approx(row["SS"], rel=1e-9, abs=1e-12), row["source"]


@pytest.mark.parametrize("fixed", ["A + x", "A + x + A:x", "A*B + x + A:x"])
def test_covariates_match_sum_coded_type3(fixed):
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"A": rng.choice(list("abc"), 40), "B": rng.choice(list("pq"), 40), "x": rng.normal(size=40)})
    d["y"] = 2 * d["x"] + rng.normal(size=40)
    des = vcomp.Design(fixed=fixed, covariates=["x"])
    res = des.anova(d, "y", ss_type=3)
    assert not res.rank_deficient
    for t, (df, ss) in _goodnight(d, des).items():
        assert df == res.table.loc[t, "df"]
        assert ss == pytest.approx(res.table.loc[t, "SS"], rel=1e-9), t


def test_full_rank_path_does_not_use_goodnight(monkeypatch):
    r = next(c for c in FULL_RANK if c["name"] == "sim_splitplot_drop25")
    before = case_design(r).anova(case_data(r), r["response"], ss_type=3)

    def boom(*a, **k):
        raise AssertionError("goodnight called on a full-rank model")
    monkeypatch.setattr(sys.modules["vcomp.classical.anova"], "goodnight_type3_ss", boom)
    after = case_design(r).anova(case_data(r), r["response"], ss_type=3)
    pd.testing.assert_frame_equal(before.table, after.table, check_exact=True)


# ---------------------------------------------------------------- the gate in rank-deficient models

NESTED1 = _csv(os.path.join(REF, "sim_nested_unbal.csv"), ["batch", "sample"])
NESTED2 = _csv(os.path.join(NT3, "nested2.csv"), ["batch", "sample"])
NESTED3 = _csv(os.path.join(NT3, "nested3.csv"), ["lot", "bag", "sub"])
PLANTS = _csv(os.path.join(NT3, "splitplot_plants.csv"), ["block", "A", "plant"])
PLANT_DESIGN = vcomp.Design(fixed="A", random=["block", "block:A", "block:A:plant"])


def _nested3(nbags, nsubs, seed=0):
    rng = np.random.default_rng(seed)
    rows = [("L%d" % l, "b%d" % b, "u%d" % s, rng.normal())
            for l in range(len(nbags)) for b in range(nbags[l]) for s in range(nsubs[l][b])
            for _ in range(rng.integers(1, 4))]
    return pd.DataFrame(rows, columns=["lot", "bag", "sub", "y"])


#: unequal bags per lot, the same number of subs in every bag of a lot: both readings agree
NESTED3_AGREE = _nested3([2, 3, 4], [[3, 3], [2, 2, 2], [1, 1, 1, 1]])
#: equal bags per lot, unequal subs per bag: they differ for lot
NESTED3_DIFFER = _nested3([3, 3, 3], [[1, 2, 3], [2, 2, 1], [3, 1, 1]])


@pytest.mark.parametrize("d, des", [(NESTED1, vcomp.Nested(["batch", "sample"])),
                                    (NESTED2, vcomp.Nested(["batch", "sample"])),
                                    (NESTED3_AGREE, vcomp.Nested(["lot", "bag", "sub"]))],
                         ids=["sim_nested_unbal", "nested2", "nested3_equal_subs_within_lot"])
def test_agreeing_nested_cases_give_type3(d, des):
    res = des.anova(d, "y", ss_type=3)
    assert res.rank_deficient and res.type3_coding == "nested-cell"
    for t, (df, ss) in _goodnight(d, des).items():
        assert df == res.table.loc[t, "df"]
        assert ss == pytest.approx(res.table.loc[t, "SS"], rel=1e-8), t


def _numbers(msg, term):
    m = re.search(r"%r: SS = ([0-9.e+-]+) \(df \d+\) with the nested-cell coding .*? vs ([0-9.e+-]+) \(df \d+\)"
                  % term, msg)
    assert m, msg
    return float(m.group(1)), float(m.group(2))


def test_nested3_raises_with_both_numbers():
    des = vcomp.Nested(["lot", "bag", "sub"])
    with pytest.raises(vcomp.NotEstimableError, match="ss_type=1") as e:
        des.anova(NESTED3, "y", ss_type=3)
    msg = str(e.value)
    assert "ambiguous" in msg and "design.lmm" in msg
    assert "'lot'" in msg and "'lot:bag'" not in msg and "'lot:bag:sub'" not in msg
    nc, gn = _numbers(msg, "lot")
    assert nc == pytest.approx(R_SS["nested3"]["lot"], rel=1e-7)      # R with within-level sum contrasts
    assert nc == pytest.approx(19.537, abs=5e-4) and gn == pytest.approx(21.281, abs=5e-4)
    assert gn == pytest.approx(_goodnight(NESTED3, des)["lot"][1], rel=1e-7)
    # types I and II are unaffected
    assert des.anova(NESTED3, "y", ss_type=1).rank_deficient


def test_nested3_raise_is_invariant_to_row_order_and_labels():
    des = vcomp.Nested(["lot", "bag", "sub"])
    perm = NESTED3.sample(frac=1.0, random_state=1).reset_index(drop=True)
    perm["bag"] = "x" + perm["bag"].str[::-1]
    nums = []
    for d in (NESTED3, perm):
        with pytest.raises(vcomp.NotEstimableError) as e:
            des.anova(d, "y", ss_type=3)
        nums.append(_numbers(str(e.value), "lot"))
    np.testing.assert_allclose(nums[0], nums[1], rtol=1e-7)


def test_equal_bags_unequal_subs_raises():
    with pytest.raises(vcomp.NotEstimableError, match="ss_type=1") as e:
        vcomp.Nested(["lot", "bag", "sub"]).anova(NESTED3_DIFFER, "y", ss_type=3)
    assert "'lot'" in str(e.value)


def test_splitplot_with_unequal_plants_raises():
    with pytest.raises(vcomp.NotEstimableError, match="ss_type=1") as e:
        PLANT_DESIGN.anova(PLANTS, "y", ss_type=3)
    msg = str(e.value)
    for t in ("A", "block"):
        nc, gn = _numbers(msg, t)
        assert nc == pytest.approx(R_SS["splitplot_plants"][t], rel=1e-7)
        assert gn == pytest.approx(_goodnight(PLANTS, PLANT_DESIGN)[t][1], rel=1e-7)
        assert abs(nc - gn) > 1e-3 * nc
    assert "'block:A'" not in msg and "'block:A:plant'" not in msg


def test_cell_weights_reproduce_hypotheses():
    """``L = N a``: the hypotheses as combinations of the cell means (what maps them to any coding)."""
    r = next(c for c in FULL_RANK if c["name"] == "sim_splitsplit_unbal")
    des = case_design(r)
    prep = prepare(case_data(r), r["response"], des)
    op = overparam_model(build_model(prep, des.terms))
    for _term, (L, N) in sas_type3_hypotheses(op.X, op.blocks, op.contains, weights=True).items():
        np.testing.assert_allclose(N @ op.X, L, atol=1e-9)
