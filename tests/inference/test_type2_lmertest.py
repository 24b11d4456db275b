"""Type II F tests of mixed models (Satterthwaite and Kenward-Roger) against lmerTest's anova(type = 2)."""
import json
import pathlib
import warnings

import pandas as pd
import pytest

import vcomp

HERE = pathlib.Path(__file__).resolve().parents[1] / "reference"
REF = json.loads((HERE / "lmertest_type2" / "lmertest_type2.json").read_text())
CASES = [k for k in REF if k != "r_versions"]


def _key(t):
    return ":".join(sorted(t.split(":")))


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("method", ["satterthwaite", "kenward-roger"])
def test_type2_matches_lmertest(name, method):
    r = REF[name]
    d = pd.read_csv(HERE / (r["csv"] + ".csv"))
    for c in d.columns:
        if d[c].dtype == object:
            d[c] = d[c].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vcomp.VcompWarning)
        fit = vcomp.lmm(r["lmer"], d)
    got = {_key(k): v for k, v in fit.anova(ddf=method, type=2).iterrows()}
    tol = 5e-2 if r["singular"] else 2e-3
    want = r[method.replace("-", "_")]
    assert set(got) == {_key(k) for k in want}
    for term, w in want.items():
        g = got[_key(term)]
        assert g["num_df"] == w["num_df"]
        assert g["den_df"] == pytest.approx(w["den_df"], rel=tol, abs=1e-3)
        assert g["F"] == pytest.approx(w["F"], rel=2e-3)
