"""AnovaResult.notes, moments, fit statistics: each kind of note on a case built to trigger it, and its absence
on a case that does not."""
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp


def _oats():
    return vcomp.datasets.load("oats")


def _rcbd_missing_plot():
    d = _oats()
    d = d[~((d["block"] == "II") & (d["nitro"] == "0.4cwt") & (d["variety"] == "Victory"))]
    return d[d["variety"] == "Victory"].reset_index(drop=True)


def lattice(reps=3, gens=60, k=6, seed=1, unique_labels=True):
    """A resolvable incomplete-block (alpha-lattice-like) trial: every rep holds every genotype once,
    in gens/k blocks of k plots; block labels R0B00, R1B00, ... (unique across reps) or B00, B01, ... (reused)."""
    rng = np.random.default_rng(seed)
    geff = rng.normal(0, 1, gens)
    rows = []
    for r in range(reps):
        perm = rng.permutation(gens)
        for b in range(gens // k):
            be = rng.normal(0, 0.7)
            lab = ("R%dB%02d" % (r, b)) if unique_labels else ("B%02d" % b)
            for g in perm[b * k:(b + 1) * k]:
                rows.append(("R%d" % r, lab, "G%03d" % g, 5 + 0.3 * r + geff[g] + be + rng.normal()))
    return pd.DataFrame(rows, columns=["rep", "block", "gen", "yield"])


LATTICE = vcomp.Design(fixed="rep + gen", random=["rep:block"])


# ---------------------------------------------------------------- fixed effects in a random row: fixed-first moments

def test_type1_random_row_with_Q_uses_fixed_first_moments():
    d = _rcbd_missing_plot()
    des = vcomp.RCBD(treatment="nitro", block="block")
    r1 = des.anova(d, "yield", ss_type=1)
    assert r1.fixed_parts["block"] == ["nitro"]                       # textbook order: block ignores nitro
    note = [n for n in r1.notes if "fixed terms fitted first" in n]
    assert len(note) == 1 and "block" in note[0] and "Q(nitro)" in note[0] and "METHOD=TYPE1" in note[0]
    assert r1.moments_order == ["nitro", "block"]
    # fixed first, block is adjusted for nitro: its SS is the type III SS and the components agree with type III
    r3 = des.anova(d, "yield", ss_type=3)
    np.testing.assert_allclose(r1.components.to_numpy(), r3.components.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(r1.moments.loc["block", "SS"], r3.table.loc["block", "SS"], rtol=1e-10)
    assert r3.moments_order is None and not any("fitted first" in n for n in r3.notes)
    # the displayed table keeps the textbook order and its E[MS] with Q(nitro)
    assert list(r1.table.index) == ["block", "nitro", "Residual"]
    assert "Q(nitro)" in r1.ems_text["block"]
    assert "Moment equations: type I with the fixed terms fitted first (nitro, block)" in str(r1)


def test_balanced_type1_has_no_moment_note():
    r = vcomp.SplitPlot("variety", "nitro", "block").anova(_oats(), "yield", ss_type=1)
    assert r.notes == []
    assert "Moment equations" not in str(r)
    r3 = vcomp.SplitPlot("variety", "nitro", "block").anova(_oats(), "yield")
    np.testing.assert_allclose(r.components.to_numpy(), r3.components.to_numpy(), rtol=1e-10)


def test_lattice_type1_components_equal_type3():
    d = lattice(unique_labels=False)
    r1, r3 = LATTICE.anova(d, "yield", ss_type=1), LATTICE.anova(d, "yield")
    assert r1.fixed_parts["rep:block"] == ["gen"]
    np.testing.assert_allclose(r1.components.to_numpy(), r3.components.to_numpy(), rtol=1e-9)
    assert any("rep:block" in n and "Q(gen)" in n and "fitted first (rep, gen, then rep:block)" in n
               for n in r1.notes)


# ---------------------------------------------------------------- biased F tests

def test_biased_test_note():
    r = vcomp.RCBD(treatment="nitro", block="block").anova(_rcbd_missing_plot(), "yield", ss_type=1)
    assert any(n.startswith("The F test of block is biased") and "Q(nitro)" in n for n in r.notes)
    r3 = vcomp.RCBD(treatment="nitro", block="block").anova(_rcbd_missing_plot(), "yield")
    assert not any("biased" in n for n in r3.notes)


def test_lattice_type1_rep_test_is_flagged():
    r = LATTICE.anova(lattice(unique_labels=False), "yield", ss_type=1)
    rep = [n for n in r.notes if n.startswith("The F test of rep is biased")]
    assert rep and "(rep:block) Q(gen)" in rep[0]


# ---------------------------------------------------------------- nesting behind type III

def test_unique_block_labels_are_nesting():
    d = lattice(unique_labels=True)
    r = LATTICE.anova(d, "yield")
    assert r.rank_deficient and r.type3_coding == "nested-cell"
    note = [n for n in r.notes if n.startswith("Nested terms")]
    assert len(note) == 1
    assert "rep:block: the labels of block are unique to each rep (10 in every rep)" in note[0]
    # the same data with labels reused across reps: full-rank sum coding, same numbers, no note
    d2 = d.assign(block=d["block"].str[2:])
    r2 = LATTICE.anova(d2, "yield")
    assert r2.type3_coding == "sum" and not any(n.startswith("Nested") for n in r2.notes)
    pd.testing.assert_frame_equal(r.components, r2.components, rtol=1e-9)
    pd.testing.assert_frame_equal(r.table[["df", "SS", "F"]], r2.table[["df", "SS", "F"]], rtol=1e-9)


def test_unequal_nesting_note():
    d = pd.DataFrame([("b%d" % b, "s%d" % s, rep) for b, ns in enumerate([2, 3, 4, 3]) for s in range(ns)
                      for rep in range(2)], columns=["batch", "sample", "rep"])
    d["y"] = np.random.default_rng(2).normal(size=len(d)) + d["batch"].str[1:].astype(int)
    r = vcomp.Nested(["batch", "sample"]).anova(d, "y")
    assert r.type3_coding == "nested-cell"
    assert any("batch:sample: sample has 2 to 4 levels per batch" in n for n in r.notes)


# ---------------------------------------------------------------- tests and components

def test_synthesized_denominator_note():
    r = vcomp.Design(fixed="a", random=["b", "a:b"]).anova(vcomp.datasets.load("sas_varcomp1"), "y")
    synth = [s for s, c in r.error_terms.items() if len(c) > 1]
    assert synth
    note = [n for n in r.notes if n.startswith("Synthesized denominators")]
    assert len(note) == 1 and all("%s (den df" % s in note[0] for s in synth)


def test_negative_component_note():
    d = vcomp.datasets.load("gomez_splitsplit")
    r = vcomp.SplitSplitPlot("nitro", "management", "gen", "rep").anova(d, "yield")
    neg = list(r.components.index[r.components["raw"] < 0])
    assert neg
    note = [n for n in r.notes if n.startswith("Negative method-of-moments")]
    assert len(note) == 1 and all(c in note[0] for c in neg)
    assert not any(n.startswith("Negative") for n in vcomp.SplitPlot("variety", "nitro", "block")
                   .anova(_oats(), "yield").notes)


def test_untested_and_singular_moments_notes():
    # b is completely confounded with a: b has no degrees of freedom of its own
    d = pd.DataFrame({"a": ["a1"] * 4 + ["a2"] * 4 + ["a3"] * 4, "b": ["b1"] * 4 + ["b2"] * 4 + ["b3"] * 4})
    d["y"] = np.arange(12.0) % 5
    with pytest.warns(vcomp.VcompWarning, match="singular"):
        r = vcomp.Design(fixed="a", random=["b"]).anova(d, "y", ss_type=1)
    assert any("equations of the random terms are singular" in n for n in r.notes)
    assert any(n.startswith("No valid F test") and "b" in n for n in r.notes)


def test_warning_points_at_the_callers_line():
    d = pd.DataFrame({"a": ["a1"] * 4 + ["a2"] * 4, "b": ["b1"] * 4 + ["b2"] * 4, "y": np.arange(8.0) % 3})
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        vcomp.Design(fixed="a", random=["b"]).anova(d, "y", ss_type=1)
    assert w and all(x.filename == __file__ for x in w)


# ---------------------------------------------------------------- fit statistics and the listing

def test_fit_stats_and_total():
    d = _oats()
    r = vcomp.SplitPlot("variety", "nitro", "block").anova(d, "yield")
    y = d["yield"].to_numpy(float)
    sst = float(((y - y.mean()) ** 2).sum())
    assert r.total["df"] == len(y) - 1 and r.total["SS"] == pytest.approx(sst, rel=1e-12)
    ms = r.table.loc["Residual", "MS"]
    assert r.fit_stats["R-Square"] == pytest.approx(1 - r.table.loc["Residual", "SS"] / sst, rel=1e-12)
    assert r.fit_stats["Root MSE"] == pytest.approx(np.sqrt(ms), rel=1e-12)
    assert r.fit_stats["Mean"] == pytest.approx(y.mean(), rel=1e-12)
    assert r.cv == pytest.approx(100 * np.sqrt(ms) / y.mean(), rel=1e-12) == r.fit_stats["Coeff Var"]
    assert "Corrected Total" not in r.table.index
    text = str(r)
    assert "Corrected Total" in text and "R-Square" in text and "Coeff Var" in text and "yield Mean" in text
    # type I: the rows add up to the corrected total
    r1 = vcomp.SplitPlot("variety", "nitro", "block").anova(d, "yield", ss_type=1)
    assert r1.table["SS"].sum() == pytest.approx(sst, rel=1e-10)
    assert r1.table["df"].sum() == r1.total["df"]


def test_ems_noise_is_zero():
    r = vcomp.Design(fixed="rep + gen", random=["rep:block"]).anova(vcomp.datasets.load("john_alpha"), "yield")
    e = r.ems.to_numpy()
    assert np.all((e == 0) | (np.abs(e) > 1e-8))
