"""Bundled data sets: fresh frames, factor levels in the study's order (ordered categoricals where the source
orders the levels), and the same numbers as the reference copies."""
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference")


def test_ordered_levels():
    g = vcomp.datasets.load("gomez_splitsplit")
    assert g["nitro"].cat.ordered and list(g["nitro"].cat.categories) == ["N0", "N50", "N80", "N110", "N140"]
    assert list(g["management"].cat.categories) == ["Minimum", "Optimum", "Intensive"]
    # the study's nitrogen rates increase with the level order
    assert g.groupby("nitro", observed=True)["nitro_kg"].first().is_monotonic_increasing
    o = vcomp.datasets.load("oats")
    assert o["nitro"].cat.ordered and list(o["nitro"].cat.categories) == ["0.0cwt", "0.2cwt", "0.4cwt", "0.6cwt"]


def test_analyses_list_levels_in_study_order():
    g = vcomp.datasets.load("gomez_splitsplit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vcomp.SingularFitWarning)
        fit = vcomp.lmm("yield ~ nitro + (1|rep)", g)
    assert list(fit.fixef.index) == ["Intercept", "nitro[T.N50]", "nitro[T.N80]", "nitro[T.N110]", "nitro[T.N140]"]


@pytest.mark.parametrize("name, csv", [("oats", "yates_oats"), ("gomez_splitsplit", "gomez_splitsplit")])
def test_same_numbers_as_text_levels(name, csv):
    """Level order changes the coding, never the ANOVA: same table as the reference CSV read as strings."""
    d = vcomp.datasets.load(name)
    ref = pd.read_csv(os.path.join(REF, csv + ".csv"))
    assert (d.astype(str).to_numpy() == ref.astype(str).to_numpy()).all()
    des = (vcomp.SplitPlot("variety", "nitro", "block") if name == "oats"
           else vcomp.SplitSplitPlot("nitro", "management", "gen", "rep"))
    y = "yield"
    a, b = des.anova(d, y), des.anova(ref.astype({c: str for c in ref.columns if ref[c].dtype == object}), y)
    np.testing.assert_allclose(a.table[["SS", "F"]].to_numpy(float), b.table[["SS", "F"]].to_numpy(float), rtol=1e-10)


def test_load_returns_a_fresh_frame():
    a = vcomp.datasets.load("oats")
    a.loc[0, "yield"] = -1
    assert vcomp.datasets.load("oats").loc[0, "yield"] != -1
