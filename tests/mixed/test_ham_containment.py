"""SAS containment with a covariate: lmerTest's ham data, Product*Age with Age numeric (lmerTest's
tests/test_compare_sas.R: type II F(Product) = 2.48135, as SAS).  Reference frozen by
tests/reference/ham/ham.R; a dotted response name, an integer-coded factor read as a factor."""
from __future__ import annotations

import json
import os

import pandas as pd
import pytest

import vcomp

HERE = os.path.join(os.path.dirname(__file__), "..", "reference", "ham")
REF = json.load(open(os.path.join(HERE, "ham.json")))


@pytest.fixture(scope="module")
def fit():
    d = pd.read_csv(os.path.join(HERE, "ham.csv"))
    return vcomp.lmm("Informed.liking ~ Product * Age + (1 | Consumer)", d, factors=["Product"])


@pytest.mark.parametrize("key,ddf,type_", [("type2_satterthwaite", "satterthwaite", 2),
                                           ("type3_satterthwaite", "satterthwaite", 3),
                                           ("type1_satterthwaite", "satterthwaite", 1),
                                           ("type2_kenward_roger", "kenward-roger", 2)])
def test_tests_match_lmertest(fit, key, ddf, type_):
    tab = fit.anova(ddf=ddf, type=type_)
    for term, ref in REF[key].items():
        row = tab.loc[term]
        assert row["num_df"] == ref["num_df"]
        assert row["F"] == pytest.approx(ref["F"], rel=2e-4)
        assert row["den_df"] == pytest.approx(ref["den_df"], rel=2e-3)


def test_criterion(fit):
    assert fit.reml_criterion == pytest.approx(REF["reml_criterion"], abs=1e-4)
