"""Type III where the sum-coded model is rank deficient only through unequal nesting (SAS PROC GLM).

The checks are independent of vcomp's coding: sums of squares of hypotheses on the cell means
(``SS = (Lm)' (L D^-1 L')^-1 (Lm)``, ``D`` = cell counts), Hartley's EMS from the same quadratic form
built on the observations, R's ``car::Anova`` with explicit within-level sum contrasts
(``tests/reference/nested_type3``), and textbook balanced EMS.
"""
import json
import os
import re

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp.classical.model import build_model, incomplete_terms, prepare
from vcomp.tables import fmt_number

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "reference")
NT3 = os.path.join(REF, "nested_type3")
R_SS = json.load(open(os.path.join(NT3, "nested_type3.json")))


def _csv(path, factors):
    d = pd.read_csv(path)
    for f in factors:
        d[f] = d[f].astype(str)
    return d


NESTED1 = _csv(os.path.join(REF, "sim_nested_unbal.csv"), ["batch", "sample"])
NESTED2 = _csv(os.path.join(NT3, "nested2.csv"), ["batch", "sample"])
NESTED3 = _csv(os.path.join(NT3, "nested3.csv"), ["lot", "bag", "sub"])
PLANTS = _csv(os.path.join(NT3, "splitplot_plants.csv"), ["block", "A", "plant"])
PLANT_DESIGN = vcomp.Design(fixed="A", random=["block", "block:A", "block:A:plant"])


# ---------------------------------------------------------------- cell-means algebra (no coding)

def _cells(d, facs, y="y"):
    g = d.groupby(facs, sort=True)[y]
    m, n = g.mean(), g.size()
    keys = m.index.to_frame(index=False)
    return keys, m.to_numpy(), n.to_numpy().astype(float)


def _hyp_ss(m, n, L):
    Lm = L @ m
    return float(Lm @ np.linalg.solve((L / n) @ L.T, Lm))


def _hier_weights(keys, facs):
    """Weight of each innermost cell in its outer level's unweighted mean of (unweighted means of ...)."""
    w = np.ones(len(keys))
    for k in range(1, len(facs)):
        cnt = keys.groupby(facs[:k])[facs[k]].transform("nunique").to_numpy()
        w /= cnt
    return w


def _equal_means_L(group, w):
    """Rows ``mean_g - mean_last`` with ``mean_g = sum_{cells in g} w m``."""
    levels = sorted(set(group))
    W = np.array([np.where(group == g, w, 0.0) for g in levels])
    return W[:-1] - W[-1]


def _within_L(outer, inner_cells):
    """Contrasts of the cells within each outer group (``cell - first cell of the group``)."""
    rows = []
    for g in sorted(set(outer)):
        idx = np.flatnonzero(outer == g)
        for i in idx[1:]:
            r = np.zeros(inner_cells)
            r[i], r[idx[0]] = 1.0, -1.0
            rows.append(r)
    return np.array(rows)


def _labels(keys, facs):
    return keys[facs].astype(str).agg("\x1f".join, axis=1).to_numpy()


# ---------------------------------------------------------------- hypotheses

def _nested3_equal_subs_within_lot(seed=5):
    """3-stage nesting, 2-4 bags per lot, the same number (1-3) of subs in every bag of a lot, 1-3 reps."""
    rng = np.random.default_rng(seed)
    rows = []
    for l, (nb, ns) in enumerate([(2, 3), (3, 2), (4, 1), (3, 3)]):
        for b in range(nb):
            for s in range(ns):
                rows += [("L%d" % l, "b%d" % b, "u%d" % s, 30 + l + 0.5 * b + rng.normal())
                         for _ in range(rng.integers(1, 4))]
    return pd.DataFrame(rows, columns=["lot", "bag", "sub", "y"])


#: 3-stage nesting where SAS's two readings of type III agree (unequal subs only across lots)
NESTED3_OK = _nested3_equal_subs_within_lot()


@pytest.mark.parametrize("d, facs", [(NESTED1, ["batch", "sample"]), (NESTED2, ["batch", "sample"]),
                                     (NESTED3_OK, ["lot", "bag", "sub"])],
                         ids=["sim_nested_unbal", "nested2", "nested3_equal_subs_within_lot"])
def test_nested_type3_is_equal_unweighted_means(d, facs):
    des = vcomp.Nested(facs)
    res = des.anova(d, "y", ss_type=3)
    assert res.rank_deficient and res.type3_coding == "nested-cell"
    keys, m, n = _cells(d, facs)
    # outer factor: equal hierarchical unweighted means of the innermost cells
    L = _equal_means_L(keys[facs[0]].to_numpy(), _hier_weights(keys, facs))
    assert res.table.loc[facs[0], "SS"] == pytest.approx(_hyp_ss(m, n, L), rel=1e-9)
    assert res.table.loc[facs[0], "df"] == d[facs[0]].nunique() - 1
    # every nested term: equal (hierarchical unweighted) means of its cells within each outer cell
    for k in range(1, len(facs)):
        term = ":".join(facs[:k + 1])
        inner = keys.groupby(facs[:k + 1], sort=True).ngroup().to_numpy()
        w = _hier_weights(keys, facs)
        for j in range(1, k + 1):  # undo the outer levels' division: weights within this term's cells
            w = w * keys.groupby(facs[:j])[facs[j]].transform("nunique").to_numpy()
        A = np.zeros((inner.max() + 1, len(m)))
        A[inner, np.arange(len(m))] = w                       # term-cell means as combinations of cells
        tkeys = keys.drop_duplicates(facs[:k + 1]).reset_index(drop=True)
        L = _within_L(_labels(tkeys, facs[:k]), len(tkeys)) @ A
        assert res.table.loc[term, "SS"] == pytest.approx(_hyp_ss(m, n, L), rel=1e-9), term
    # innermost term: its type III SS is its type I SS
    inner = ":".join(facs)
    t1 = des.anova(d, "y", ss_type=1)
    assert res.table.loc[inner, "SS"] == pytest.approx(t1.table.loc[inner, "SS"], rel=1e-10)
    assert res.table.loc["Residual", "SS"] == pytest.approx(t1.table.loc["Residual", "SS"], rel=1e-10)
    assert res.table.loc["Residual", "df"] == t1.table.loc["Residual", "df"]


def test_splitplot_with_unequal_plants_as_a_term_raises():
    """The nested-cell reading (cell-means hypotheses below) and Goodnight's literal SAS rule differ for A and
    block: type III refuses, naming both numbers; the nested-cell numbers are these cell-means SS."""
    with pytest.raises(vcomp.NotEstimableError, match="ss_type=1") as e:
        PLANT_DESIGN.anova(PLANTS, "y", ss_type=3)
    msg = str(e.value)
    keys, m, n = _cells(PLANTS, ["block", "A", "plant"])
    wp = keys.groupby(["block", "A"]).ngroup().to_numpy()
    wmean = np.zeros((wp.max() + 1, len(m)))               # whole-plot unweighted means of plant cells
    wmean[wp, np.arange(len(m))] = 1.0
    wmean /= wmean.sum(axis=1, keepdims=True)
    wkeys = keys.drop_duplicates(["block", "A"]).reset_index(drop=True)
    nb, na = wkeys["block"].nunique(), wkeys["A"].nunique()
    assert len(wkeys) == nb * na
    LA = _equal_means_L(wkeys["A"].to_numpy(), np.full(len(wkeys), 1.0 / nb)) @ wmean
    LB = _equal_means_L(wkeys["block"].to_numpy(), np.full(len(wkeys), 1.0 / na)) @ wmean
    for t, L in (("A", LA), ("block", LB)):
        got = re.search(r"'%s': SS = ([0-9.e+-]+) " % t, msg)
        assert got, msg
        assert float(got.group(1)) == pytest.approx(_hyp_ss(m, n, L), rel=1e-7)
    assert "'block:A'" not in msg
    # sequential SS stay available
    t1 = PLANT_DESIGN.anova(PLANTS, "y", ss_type=1)
    assert t1.rank_deficient and t1.type3_coding is None


@pytest.mark.parametrize("case, d, des", [("nested2", NESTED2, vcomp.Nested(["batch", "sample"]))], ids=["nested2"])
def test_matches_r_within_contrasts(case, d, des):
    """R: car::Anova(lm(...), type = 3) with explicit within-level sum contrasts (nested_type3.R).

    (nested3 and splitplot_plants now raise: their R numbers are checked in the error message, test_goodnight.py.)
    """
    res = des.anova(d, "y", ss_type=3)
    for term, v in R_SS[case].items():
        if term.endswith("_cellmeans"):
            assert res.table.loc[term[:-len("_cellmeans")], "SS"] == pytest.approx(v, rel=1e-9)
        else:
            assert res.table.loc[term, "SS"] == pytest.approx(v, rel=1e-9), term


# ---------------------------------------------------------------- EMS (Hartley) from the cell-means form

def _incidence(d, facs):
    codes = d.groupby(facs, sort=True).ngroup().to_numpy()
    return np.eye(codes.max() + 1)[codes]


def test_sim_nested_unbal_ems_from_cell_means_form():
    d = NESTED1
    facs = ["batch", "sample"]
    res = vcomp.Nested(facs).anova(d, "y", ss_type=3)
    keys, m, n = _cells(d, facs)
    Zc = _incidence(d, facs)                                  # observation -> cell
    L = _equal_means_L(keys["batch"].to_numpy(), _hier_weights(keys, facs))
    B = Zc @ (L / n).T                                        # n x r:  L m = B' y
    A = B @ np.linalg.solve((L / n) @ L.T, B.T)               # SS = y' A y
    y = d["y"].to_numpy()
    assert float(y @ A @ y) == pytest.approx(res.table.loc["batch", "SS"], rel=1e-9)
    df = L.shape[0]
    for comp in ["batch", "batch:sample"]:
        Z = _incidence(d, comp.split(":"))
        assert np.trace(Z.T @ A @ Z) / df == pytest.approx(res.ems.loc["batch", comp], rel=1e-9)
    assert res.ems.loc["batch", "Residual"] == 1.0


def _balanced(unique_labels: bool, seed=3):
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(5):
        eb = rng.normal(0, 2)
        for s in range(3):
            es = rng.normal(0, 1)
            for _ in range(2):
                rows.append(("B%d" % b, ("B%d-s%d" % (b, s)) if unique_labels else "s%d" % s,
                             10 + eb + es + rng.normal(0, 0.5)))
    return pd.DataFrame(rows, columns=["batch", "sample", "y"])


def test_balanced_nested_unique_labels_same_as_reused_labels():
    des = vcomp.Nested(["batch", "sample"])
    reused = des.anova(_balanced(False), "y", ss_type=3)
    unique = des.anova(_balanced(True), "y", ss_type=3)
    assert not reused.rank_deficient and reused.type3_coding == "sum"
    assert unique.rank_deficient and unique.type3_coding == "nested-cell"
    num = ["df", "SS", "MS", "F", "p", "den_df"]
    np.testing.assert_allclose(unique.table[num].to_numpy(float), reused.table[num].to_numpy(float), rtol=1e-9)
    np.testing.assert_allclose(unique.ems.to_numpy(), reused.ems.to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(unique.components.to_numpy(), reused.components.to_numpy(), rtol=1e-9)
    # textbook balanced EMS: batch = s2 + 2 s2(sample) + 6 s2(batch); sample = s2 + 2 s2(sample)
    np.testing.assert_allclose(unique.ems.loc["batch"].to_numpy(), [6, 2, 1], rtol=1e-12)
    np.testing.assert_allclose(unique.ems.loc["batch:sample"].to_numpy(), [0, 2, 1], atol=1e-12)
    assert list(unique.error_terms["batch"]) == ["batch:sample"]


# ---------------------------------------------------------------- types I and II unchanged

@pytest.mark.parametrize("d, facs", [(NESTED1, ["batch", "sample"]), (NESTED3, ["lot", "bag", "sub"])],
                         ids=["sim_nested_unbal", "nested3"])
def test_types_1_and_2_unchanged(d, facs):
    des = vcomp.Nested(facs)
    t1, t2 = des.anova(d, "y", ss_type=1), des.anova(d, "y", ss_type=2)
    for r in (t1, t2):
        assert r.rank_deficient and r.type3_coding is None
    # coding-free type I: outer factor = weighted between-level SS; nested type II = type I
    y = d["y"].to_numpy()
    g = d.groupby(facs[0])["y"]
    ss = float(((g.mean() - y.mean()) ** 2 * g.size()).sum())
    assert t1.table.loc[facs[0], "SS"] == pytest.approx(ss, rel=1e-10)
    np.testing.assert_allclose(t2.table[["df", "SS"]].to_numpy(float), t1.table[["df", "SS"]].to_numpy(float),
                               rtol=1e-10)
    if d is NESTED1:
        ref = json.load(open(os.path.join(REF, "sim_nested_unbal.json")))["classical"]
        for typ, res in ((1, t1), (2, t2)):
            if ref.get("type%d" % typ) is None:
                continue
            for row in ref["type%d" % typ]["rows"]:
                assert res.table.loc[row["source"], "SS"] == pytest.approx(row["SS"], rel=1e-9)


def test_full_rank_models_keep_sum_coding():
    oats = vcomp.datasets.load("oats")
    res = vcomp.SplitPlot("variety", "nitro", "block").anova(oats, "yield")
    assert not res.rank_deficient and res.type3_coding == "sum"
    # unequal sub-samples that are the residual (not a term) stay on the standard path
    sub = PLANTS.drop(columns="plant")
    res = vcomp.RCBD(treatment="A", block="block").anova(sub, "y")
    assert not res.rank_deficient and res.type3_coding == "sum"


def test_invariant_to_row_order_and_labels():
    des = vcomp.Nested(["lot", "bag", "sub"])
    a = des.anova(NESTED3_OK, "y")
    perm = NESTED3_OK.sample(frac=1.0, random_state=1).reset_index(drop=True)
    perm["bag"] = "x" + perm["bag"].str[::-1]
    b = des.anova(perm, "y")
    num = ["df", "SS", "MS", "F", "p", "den_df"]
    np.testing.assert_allclose(a.table[num].to_numpy(float), b.table[num].to_numpy(float), rtol=1e-9)
    np.testing.assert_allclose(a.ems.to_numpy(), b.ems.to_numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- still raising

def test_missing_whole_plot_still_raises():
    d = pd.read_csv(os.path.join(REF, "sim_splitplot_missing_whole.csv"))
    for f in ["block", "A", "B"]:
        d[f] = d[f].astype(str)
    des = vcomp.SplitPlot(whole="A", sub="B", block="block")
    with pytest.raises(vcomp.NotEstimableError, match="ss_type=1") as e:
        des.anova(d, "y", ss_type=3)
    assert "'block:A'" in str(e.value) and "'A:B'" not in str(e.value)
    res = des.anova(d, "y", ss_type=1)
    assert res.rank_deficient and res.type3_coding is None


def test_empty_crossed_cell_still_raises():
    rng = np.random.default_rng(0)
    d = pd.DataFrame([(a, b) for a in "xyz" for b in "pq" for _ in range(3) if (a, b) != ("z", "q")],
                     columns=["A", "B"])
    d["y"] = rng.normal(size=len(d))
    with pytest.raises(vcomp.NotEstimableError, match="ss_type=1") as e:
        vcomp.CRD(["A", "B"]).anova(d, "y", ss_type=3)
    assert "'A:B' (1 empty cell: A z, B q)" in str(e.value)
    assert e.value.terms == ["A:B"] and e.value.reason == "empty_cells"
    assert e.value.missing_cells["A:B"].to_dict("records") == [{"A": "z", "B": "q"}]


def test_incomplete_terms_criterion():
    def incomplete(d, des):
        prep = prepare(d, "y", des)
        return incomplete_terms(build_model(prep, des.terms), des.terms)
    assert incomplete(NESTED3, vcomp.Nested(["lot", "bag", "sub"])) == {}
    assert incomplete(PLANTS, PLANT_DESIGN) == {}
    drop = PLANTS[~((PLANTS["block"] == "r2") & (PLANTS["A"] == "a3"))]
    bad = incomplete(drop, PLANT_DESIGN)
    # block:A:plant is complete relative to block:A's present cells: only block:A is named
    assert list(bad) == ["block:A"]
    assert bad["block:A"].to_dict("records") == [{"block": "r2", "A": "a3"}]


# ---------------------------------------------------------------- crosscheck uses type I there

def test_crosscheck_uses_type1_when_rank_deficient():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cc = vcomp.Nested(["batch", "sample"]).crosscheck(NESTED1, "y")
    assert cc.ss_type == 1
    note = cc.notes[0]
    assert "batch:sample: sample has 2 to 4 levels per batch" in note and "type I" in note
    # the note states both analyses' numbers: design.anova() (type III) and the type I used here
    a3 = vcomp.Nested(["batch", "sample"]).anova(NESTED1, "y")
    a1 = vcomp.Nested(["batch", "sample"]).anova(NESTED1, "y", ss_type=1)
    assert "batch %s instead of %s" % (fmt_number(a3.components.loc["batch", "raw"]),
                                       fmt_number(a1.components.loc["batch", "raw"])) in note
    np.testing.assert_allclose(cc.components["mom_raw"], a1.components["raw"], rtol=1e-12)
