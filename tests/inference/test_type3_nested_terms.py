"""Type III tests of a non-hierarchical fixed part (``trial + trial:rep``: rep only within trial).

lmerTest codes ``trial`` in ``trial:rep`` without contrasts (R's ``terms()`` factor code 2), so
``trial:rep`` does not contain ``trial`` and the type III contrast of ``trial`` compares the trials
at the first rep. Frozen from lmerTest 3.1-3 (tests/reference/covstruct/covstruct.R).
"""
import json
import pathlib
import warnings

import pandas as pd
import pytest

import vcomp

REF = pathlib.Path(__file__).resolve().parents[1] / "reference" / "covstruct"
NESTED = json.loads((REF / "covstruct.json").read_text())["nested_type3_lmer"]


@pytest.mark.parametrize("formula", list(NESTED["anova_kr"]))
def test_nested_type3_matches_lmertest(formula):
    d = pd.read_csv(REF / (NESTED["csv"] + ".csv"))
    d["colf"] = d["col"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = vcomp.lmm(formula, d)
    an = fit.anova(ddf="kenward-roger", type=3)
    for term, w in NESTED["anova_kr"][formula].items():
        g = an.loc[term]
        assert g["num_df"] == w["num_df"]
        assert g["F"] == pytest.approx(w["F"], rel=1e-4)
        assert g["den_df"] == pytest.approx(w["den_df"], rel=2e-3)
