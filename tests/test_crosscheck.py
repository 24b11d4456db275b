import warnings

import numpy as np
import pytest

import vcomp


@pytest.fixture(scope="module")
def oats_cc():
    oats = vcomp.datasets.load("oats")
    return vcomp.SplitPlot(whole="variety", sub="nitro", block="block").crosscheck(oats, "yield")


def test_balanced_positive_components_agree(oats_cc):
    cc = oats_cc
    assert list(cc.components.columns) == ["mom", "mom_raw", "reml"]
    assert list(cc.components.index) == ["block", "block:variety", "Residual"]
    np.testing.assert_allclose(cc.components["reml"], cc.components["mom"], rtol=2e-3)
    t = cc.tests
    np.testing.assert_allclose(t["F_kenward_roger"], t["F_anova"], rtol=2e-3)
    np.testing.assert_allclose(t["den_df_kenward_roger"], t["den_df_anova"], rtol=2e-3)
    np.testing.assert_allclose(t["F_satterthwaite"], t["F_anova"], rtol=2e-3)
    np.testing.assert_allclose(t["den_df_satterthwaite"], t["den_df_anova"], rtol=2e-3)
    assert t.loc["variety", "den_df_anova"] == pytest.approx(10)
    assert t.loc["nitro", "den_df_anova"] == pytest.approx(45)
    assert len(cc.notes) == 1 and "agree" in cc.notes[0]


def test_printing(oats_cc):
    s = str(oats_cc)
    assert "block:variety" in s and "Kenward-Roger" in s and "Notes" in s
    assert "|" in oats_cc.to_markdown()
    assert "<table>" in oats_cc._repr_html_()
    assert "tabular" in oats_cc.to_latex()


def test_negative_component_is_explained():
    d = vcomp.datasets.load("gomez_splitsplit")
    des = vcomp.SplitSplitPlot(whole="nitro", sub="management", subsub="gen", block="rep")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cc = des.crosscheck(d, "yield")
    assert (cc.components["mom_raw"] < 0).any()
    assert (cc.components["mom"] >= 0).all()
    text = " ".join(cc.notes)
    assert "negative" in text and "singular" in text


def test_synthesized_denominator_and_imbalance_noted():
    d = vcomp.datasets.load("sas_varcomp1")
    cc = vcomp.Design(fixed="a", random=["b", "a:b"]).crosscheck(d, "y")
    text = " ".join(cc.notes)
    assert "unbalanced" in text
    assert set(cc.tests.columns) == {
        "F_anova", "den_df_anova", "p_anova", "F_satterthwaite", "den_df_satterthwaite", "p_satterthwaite",
        "F_kenward_roger", "den_df_kenward_roger", "p_kenward_roger"}


def test_rank_deficient_falls_back_to_type1():
    d = vcomp.datasets.load("splitplot_missing_whole")
    cc = vcomp.SplitPlot(whole="A", sub="B", block="block").crosscheck(d, "y")
    assert cc.ss_type == 1
    assert any("type I" in n for n in cc.notes)


def test_caller_frame_untouched():
    oats = vcomp.datasets.load("oats")
    before = oats.copy()
    vcomp.RCBD(treatment="nitro", block="block").crosscheck(oats, "yield")
    assert oats.equals(before)
