"""Satterthwaite df for ML fits, as lmerTest gives them; Kenward-Roger refuses ML fits, as pbkrtest does."""
import json
import pathlib
import warnings

import pandas as pd
import pytest

import vcomp

HERE = pathlib.Path(__file__).resolve().parents[1] / "reference"
REF = json.loads((HERE / "ml_satterthwaite" / "ml_satterthwaite.json").read_text())
CASES = [k for k in REF if k != "r_versions"]


def _fit(name):
    r = REF[name]
    d = pd.read_csv(HERE / (r["csv"] + ".csv"))
    for c in d.columns:
        if d[c].dtype == object or c == "cluster":
            d[c] = d[c].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vcomp.VcompWarning)
        return vcomp.lmm(r["formula"], d, reml=False), r


@pytest.mark.parametrize("name", CASES)
def test_ml_satterthwaite_matches_lmertest(name):
    fit, r = _fit(name)
    assert fit.loglik == pytest.approx(r["loglik"], abs=5e-3)
    tol = 5e-2 if r["singular"] else 2e-3
    ct = fit.coef_table(ddf="satterthwaite")
    got = sorted(zip(ct["estimate"], ct["se"], ct["df"]))
    want = sorted((c["estimate"], c["se"], c["df"]) for c in r["coef"])
    for g, w in zip(got, want):
        assert g[1] == pytest.approx(w[1], rel=2e-3)
        assert g[2] == pytest.approx(w[2], rel=tol, abs=1e-3)
    an = {":".join(sorted(k.split(":"))): v for k, v in fit.anova(ddf="satterthwaite").iterrows()}
    for term, w in r["anova"].items():
        g = an[":".join(sorted(term.split(":")))]
        assert g["num_df"] == w["num_df"]
        assert g["den_df"] == pytest.approx(w["den_df"], rel=tol, abs=1e-3)
        assert g["F"] == pytest.approx(w["F"], rel=2e-3)


def test_kenward_roger_needs_reml():
    fit, _ = _fit("sas_varcomp1")
    with pytest.raises(vcomp.VcompError, match="only available for REML"):
        fit.anova(ddf="kenward-roger")
    with pytest.raises(vcomp.VcompError, match="REML"):
        fit.coef_table(ddf="kenward-roger")
