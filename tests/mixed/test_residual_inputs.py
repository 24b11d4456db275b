"""lmm(..., residual=...): bad input gets a clear VcompError; the caller's data are untouched."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp

from _residual_data import field, repeated


@pytest.fixture
def d():
    return repeated(seed=1)


@pytest.mark.parametrize("residual,words", [
    ("ar1(time | nosuch)", ["residual=", "'nosuch' not found"]),
    ("ar1(nosuch | subj)", ["'nosuch' not found"]),
    ("ar1(time | time)", ["both a position and a grouping column"]),
    ("foo(time | subj)", ["unknown residual structure"]),
])
def test_bad_specs(d, residual, words):
    with pytest.raises(vcomp.VcompError) as e:
        vcomp.lmm("y ~ trt", d, residual=residual)
    for w in words:
        assert w in str(e.value)


def test_duplicate_time_names_the_subject(d):
    with pytest.raises(vcomp.DataError, match="more than one observation at subj=S00, time=t1"):
        vcomp.lmm("y ~ trt", pd.concat([d, d.iloc[:1]]), residual="ar1(time | subj)")


def test_single_time_or_single_observations(d):
    with pytest.raises(vcomp.DataError, match="single value"):
        vcomp.lmm("y ~ trt", d.assign(time="t1", subj=range(len(d))), residual="ar1(time | subj)")
    with pytest.raises(vcomp.DataError, match="single observation"):
        vcomp.lmm("y ~ trt", d.assign(subj=["s%d" % i for i in range(len(d))]), residual="cs(time | subj)")


def test_duplicate_plot_on_grid():
    f = field(nrow=4, ncol=3)
    f.loc[1, ["row", "col"]] = f.loc[0, ["row", "col"]].to_numpy()
    with pytest.raises(vcomp.DataError, match="one plot per row and column"):
        vcomp.lmm("y ~ rep", f, residual="ar1(row):ar1(col)")


def test_theta0_length(d):
    with pytest.raises(vcomp.DataError, match="theta0 has 2 values"):
        vcomp.lmm("y ~ trt", d, residual="ar1(time | subj)", theta0=[0.1, 0.2])
    fit = vcomp.lmm("y ~ trt", d, residual="ar1(time | subj)", theta0=[0.3])
    assert fit.residual_params["estimate"][1] == pytest.approx(
        vcomp.lmm("y ~ trt", d, residual="ar1(time | subj)").residual_params["estimate"][1], rel=1e-5)


def test_data_not_modified_and_missing_rows_dropped(d):
    d.loc[3, "time"] = None
    before = d.copy()
    with pytest.warns(vcomp.DroppedRowsWarning):
        fit = vcomp.lmm("y ~ trt + time", d, residual="ar1(time | subj)")
    pd.testing.assert_frame_equal(d, before)
    assert fit.nobs == len(d) - 1


def test_ordered_time_uses_its_order(d):
    order = ["t4", "t3", "t2", "t1"]
    a = vcomp.lmm("y ~ trt", d, residual="ar1(time | subj)")
    rev = d.assign(time=pd.Categorical(d["time"], categories=order, ordered=True))
    b = vcomp.lmm("y ~ trt", rev, residual="ar1(time | subj)")
    assert a.reml_criterion == pytest.approx(b.reml_criterion, abs=1e-8)     # AR(1) is symmetric in time
    c = vcomp.lmm("y ~ trt", rev, residual="ar1h(time | subj)")
    assert list(c.residual_params["name"][:4]) == ["sigma2:t4", "sigma2:t3", "sigma2:t2", "sigma2:t1"]


def test_results_and_printing(d):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = vcomp.lmm("y ~ trt + time + (1|block)", d.assign(block=d["subj"].str[-1]), residual="cs(time | subj)")
    rp = fit.residual_params
    assert list(rp.columns) == ["name", "estimate"] and list(rp["name"]) == ["sigma2", "rho"]
    vc = fit.varcorr
    assert list(vc["grp"]) == ["block", "Residual", "Residual"]
    assert vc["var1"].iloc[1] == "sigma2" and vc["sdcor"].iloc[1] == pytest.approx(np.sqrt(rp["estimate"][0]))
    assert fit.npar == fit.fixef.size + 3
    assert fit.aic == pytest.approx(-2 * fit.loglik + 2 * fit.npar)
    text = str(fit)
    assert "Residual covariance: cs(time | subj)" in text and "rho" in text
    assert fit.to_markdown() and fit._repr_html_()
    plain = vcomp.lmm("y ~ trt + (1|subj)", d)
    assert list(plain.residual_params["name"]) == ["sigma2"]


def test_gls_without_random_terms_is_allowed(d):
    fit = vcomp.lmm("y ~ trt*time", d, residual="ar1(time | subj)")
    assert fit.ranef == {} and fit.varcorr["grp"].eq("Residual").all()
    assert np.allclose(fit.fitted(), fit.predict(d))
    with pytest.raises(vcomp.FormulaError, match="no random-effects term"):
        vcomp.lmm("y ~ trt*time", d)


def test_refit_equals_a_new_fit(d):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = d.assign(block=d["subj"].str[-1])
        fit = vcomp.lmm("y ~ trt + time + (1|block)", d, residual="ar1(time | subj)")
        y2 = d["y"].to_numpy() + np.random.default_rng(5).normal(0, 1, len(d))
        a = fit.refit(y2)
        b = vcomp.lmm("y ~ trt + time + (1|block)", d.assign(y=y2), residual="ar1(time | subj)")
    assert a.reml_criterion == pytest.approx(b.reml_criterion, abs=1e-6)
    pd.testing.assert_frame_equal(a.residual_params, b.residual_params, rtol=1e-4)
    pd.testing.assert_frame_equal(a.anova(ddf="kenward-roger"), b.anova(ddf="kenward-roger"), rtol=1e-4)
