"""CrossCheck.notes: each kind of note on a case built to trigger it; no claim of imbalance on balanced data."""
import os
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp
from vcomp.tables import fmt_number

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "classical"))
from test_notes import LATTICE, lattice  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _cc(design, d, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vcomp.VcompWarning)
        return design.crosscheck(d, y)


def _strings(d):
    return d.assign(**{c: d[c].astype(str) for c in d.columns if d[c].dtype.kind not in "fc"})


def test_empty_cell_named_with_count_and_levels():
    d = vcomp.datasets.load("oats")
    d = d[~((d["block"] == "III") & (d["variety"] == "Victory"))]
    cc = _cc(vcomp.SplitPlot("variety", "nitro", "block"), d, "yield")
    assert cc.ss_type == 1
    first = cc.notes[0]
    assert first.startswith("Type III sums of squares are not defined: block:variety has 1 empty cell "
                            "(block III, variety Victory).")
    assert "textbook order (block, variety, block:variety, nitro, variety:nitro)" in first
    assert "fixed terms fitted first (variety, nitro, variety:nitro, then block, block:variety)" in first
    # the components are the fixed-first type I moments
    a1 = vcomp.SplitPlot("variety", "nitro", "block").anova(d, "yield", ss_type=1)
    np.testing.assert_allclose(cc.components["mom_raw"], a1.components["raw"], rtol=1e-12)
    # the error carries the same facts as data
    with pytest.raises(vcomp.NotEstimableError) as e:
        vcomp.SplitPlot("variety", "nitro", "block").anova(d, "yield")
    assert e.value.terms == ["block:variety"] and e.value.reason == "empty_cells"
    assert e.value.missing_cells["block:variety"].to_dict("records") == [{"block": "III", "variety": "Victory"}]


def test_two_empty_cells_counted():
    d = vcomp.datasets.load("oats")
    d = d[~(((d["block"] == "III") & (d["variety"] == "Victory")) | ((d["block"] == "V") & (d["variety"] == "Marvellous")))]
    cc = _cc(vcomp.SplitPlot("variety", "nitro", "block"), d, "yield")
    assert "block:variety has 2 empty cells (block III, variety Victory; block V, variety Marvellous)" in cc.notes[0]


@pytest.mark.parametrize("gens, k", [(60, 6), (300, 10)])
def test_unique_block_labels_nesting_not_rank_deficiency(gens, k):
    d = lattice(reps=2, gens=gens, k=k, unique_labels=True)  # (300, 10): every rep 30 blocks of 10 plots
    cc = _cc(LATTICE, d, "yield")
    an = LATTICE.anova(d, "yield")
    np.testing.assert_allclose(cc.components["mom_raw"], an.components["raw"], rtol=1e-9)
    text = " ".join(cc.notes)
    assert "rank deficient" not in text and "unequal numbers" not in text
    assert "the labels of block are unique to each rep (%d in every rep)" % (gens // k) in cc.notes[0]
    assert "These components equal those of design.anova()" in cc.notes[0]
    assert "unbalanced" not in text
    assert any("not orthogonal" in n and "Q(gen)" in n for n in cc.notes)


def test_ambiguous_type3_note():
    d = _strings(pd.read_csv(os.path.join(HERE, "reference", "nested_type3", "nested3.csv")))
    des = vcomp.Nested(["lot", "bag", "sub"])
    with pytest.raises(vcomp.NotEstimableError) as e:
        des.anova(d, "y")
    assert e.value.reason == "ambiguous" and e.value.terms == ["lot"]
    det = e.value.details["lot"]
    cc = _cc(des, d, "y")
    note = cc.notes[0]
    assert note.startswith("Type III sums of squares are ambiguous here")
    assert "lot: %s vs %s" % (fmt_number(det["nested_cell_ss"]), fmt_number(det["goodnight_ss"])) in note
    assert "levels per" in note


def test_non_orthogonal_balanced_counts_and_biased_test():
    d = vcomp.datasets.load("john_alpha")
    cc = _cc(LATTICE, d, "yield")
    text = " ".join(cc.notes)
    assert "unbalanced" not in text
    assert any(n.startswith("Every cell holds the same number of observations, but the strata are not orthogonal")
               for n in cc.notes)
    # type III (full-rank sum coding here): rep is tested against a synthesized denominator, not a biased one
    assert cc.ss_type == 3 and not any("biased" in n for n in cc.notes)
    assert any(n.startswith("The classical F test of rep has no exact error term") for n in cc.notes)
    assert not any(n.startswith("All agree") for n in cc.notes)


def test_biased_type1_test_in_crosscheck():
    d = lattice(unique_labels=True)            # type I tests: rep against MS(rep:block), which holds Q(gen)
    cc = _cc(LATTICE, d, "yield")
    assert cc.ss_type == 1
    assert any(n.startswith("The F test of rep is biased") and "Q(gen)" in n for n in cc.notes)


def test_unbalanced_note_counts():
    d = vcomp.datasets.load("sas_varcomp1")
    cc = _cc(vcomp.Design(fixed="a", random=["b", "a:b"]), d, "y")
    un = [n for n in cc.notes if n.startswith("The data are unbalanced")]
    assert len(un) == 1
    counts = d.groupby(["a", "b"]).size()
    assert "a:b has %d to %d observations per cell" % (counts.min(), counts.max()) in un[0]


BALANCED = {
    "oats": (lambda: vcomp.SplitPlot("variety", "nitro", "block"), "oats", "yield"),
    "stroup": (lambda: vcomp.SplitPlot("a", "b", "rep"), "stroup_splitplot", "y"),
    "ergostool": (lambda: vcomp.RCBD("type", "subject"), "ergostool", "effort"),
    "machines": (lambda: vcomp.Design(fixed="machine", random=["worker", "worker:machine"]), "machines", "score"),
    "pastes": (lambda: vcomp.Nested(["batch", "cask"]), "pastes", "strength"),
    "gomez": (lambda: vcomp.SplitSplitPlot("nitro", "management", "gen", "rep"), "gomez_splitsplit", "yield"),
    "john_alpha": (lambda: LATTICE, "john_alpha", "yield"),
}


@pytest.mark.parametrize("name", list(BALANCED))
def test_no_imbalance_claim_on_balanced_data(name):
    des, ds, y = BALANCED[name]
    cc = _cc(des(), vcomp.datasets.load(ds), y)
    text = " ".join(cc.notes)
    assert "unbalanced" not in text and "not balanced" not in text and "empty cell" not in text


def test_truncated_and_singular_notes():
    cc = _cc(BALANCED["gomez"][0](), vcomp.datasets.load("gomez_splitsplit"), "yield")
    neg = list(cc.components.index[cc.components["mom_raw"] < 0])
    assert neg
    for c in neg:
        assert any(n.startswith("The method-of-moments estimate of the %s variance is negative" % c) for n in cc.notes)
    assert any(n.startswith("The REML fit is singular") for n in cc.notes)


def test_all_agree_only_when_true():
    cc = _cc(vcomp.SplitPlot("variety", "nitro", "block"), vcomp.datasets.load("oats"), "yield")
    assert cc.notes == [cc.notes[0]] and cc.notes[0].startswith("All agree")


def test_not_estimable_note():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"A": np.repeat(["a", "b", "c"], 6), "B": np.tile(["p", "q"], 9)})
    d["x"] = d["A"].map({"a": 1.0, "b": 2.0, "c": 3.5})          # the covariate is a function of A
    d["y"] = rng.normal(size=len(d)) + np.where(d["B"] == "p", 1.0, 0.0)
    des = vcomp.Design(fixed="x + A", random=["B"], covariates=["x"])
    with pytest.raises(vcomp.NotEstimableError) as e:
        des.anova(d, "y")
    assert e.value.reason == "not_estimable" and set(e.value.terms) == {"A", "x"}
    cc = _cc(des, d, "y")
    assert cc.ss_type == 1
    assert cc.notes[0].startswith("Type III hypotheses are not estimable for A and x. Instead, the classical F tests "
                                  "use type I")


def test_differences_and_their_reasons():
    d = vcomp.datasets.load("splitplot_missing_whole").drop(index=[3, 17, 40])
    cc = _cc(vcomp.SplitPlot("A", "B", "block"), d, "y")
    c = cc.components
    rel = (c["mom"] - c["reml"]).abs() / c[["mom", "reml"]].abs().max(axis=1)
    differ = [t for t in c.index if rel[t] > 0.01]
    note = [n for n in cc.notes if n.startswith("Method of moments and REML differ by more than 1%")]
    assert differ and len(note) == 1 and all("%s (" % t in note[0] for t in differ)
    assert not any("%s (" % t in note[0] for t in c.index if t not in differ)
    tests = [n for n in cc.notes if n.startswith("Tests differ for")]
    assert len(tests) == 1 and "with unbalanced data" in tests[0] and "synthesized denominator" in tests[0]
