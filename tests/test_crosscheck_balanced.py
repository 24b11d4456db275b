"""Balanced designs with all method-of-moments components positive: REML equals the
method of moments, and Kenward-Roger / Satterthwaite tests equal the classical F tests
with their stratum df."""
import warnings

import numpy as np
import pytest

import vcomp


def _load(name, response):
    d = vcomp.datasets.load(name)
    for c in d.columns:
        if c != response:
            d[c] = d[c].astype(str)
    return d


def _strip():
    des = vcomp.StripPlot(horizontal="H", vertical="V", block="blk")
    d = des.simulate({"H": 3, "V": 4, "blk": 5}, {"blk": 2, "blk:H": 1, "blk:V": 1.5, "Residual": 1},
                     effects={"H": 1.0, "V": 1.0}, seed=3)
    return des, d, "y"


CASES = {
    "oats split-plot": lambda: (vcomp.SplitPlot(whole="variety", sub="nitro", block="block"), _load("oats", "yield"), "yield"),
    "stroup split-plot": lambda: (vcomp.SplitPlot(whole="a", sub="b", block="rep"), _load("stroup_splitplot", "y"), "y"),
    "ergostool RCBD": lambda: (vcomp.RCBD(treatment="type", block="subject"), _load("ergostool", "effort"), "effort"),
    "machines mixed two-way": lambda: (vcomp.Design(fixed="machine", random=["worker", "worker:machine"]),
                                       _load("machines", "score"), "score"),
    "pastes nested": lambda: (vcomp.Nested(["batch", "cask"]), _load("pastes", "strength"), "strength"),
    "simulated strip-plot": _strip,
}


@pytest.mark.parametrize("name", list(CASES))
def test_balanced_all_positive_agree(name):
    des, d, y = CASES[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vcomp.VcompWarning)
        cc = des.crosscheck(d, y)
    c = cc.components
    assert (c["mom_raw"] > 0).all()
    np.testing.assert_allclose(c["reml"], c["mom"], rtol=2e-3)
    t = cc.tests
    for m in ("kenward_roger", "satterthwaite"):
        np.testing.assert_allclose(t["F_" + m], t["F_anova"], rtol=2e-3)
        np.testing.assert_allclose(t["den_df_" + m], t["den_df_anova"], rtol=2e-3)
        np.testing.assert_allclose(t["p_" + m], t["p_anova"], rtol=1e-2)
    assert len(cc.notes) == 1 and cc.notes[0].startswith("All agree")
