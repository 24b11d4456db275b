"""vcomp against the frozen R stress cases in tests/reference/stress (see its README.md).

Many small simulated data sets over the acceptance structures (split-plots, split-split-plot,
strip-plot, RCBD, Latin square, nested, worker x machine, alpha-lattice, two-way with a
synthesized denominator, random slopes, (x||g), (0+x|g), (1|a/b), crossed), with boundary and
near-boundary variance components, tiny samples and strong imbalance. The checks are the
acceptance checks (/work/shared/refcheck) with the brief's tolerances. R is not needed.
"""
from __future__ import annotations

import glob
import json
import math
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp

STRESS_DIR = os.path.join(os.path.dirname(__file__), "reference", "stress")

CLASSICAL_REL = 1e-7
REML_CRIT_ABS = 1e-4
VC_REL = 2e-3
DF_REL = 2e-3
DF_REL_SINGULAR = 5e-2

#: (case, check) pairs that fail for a documented reason outside the mixed-model code
KNOWN: dict = {}  # (case, check) -> reason, for disagreements understood but not fixed (none now)
#: lme4 clearly wrong (our criterion lower by > 1e-4 with different parameters): criterion only
LME4_WRONG: dict = {
    # lme4 (bobyqa) stops at theta = (0, -0.20, 0.13), REML criterion 0.09 above the optimum vcomp finds
    # (theta (0.086, 0.050, 0.233), not singular); its "Model failed to converge: negative eigenvalue"
    "sweep_115": "lme4 stuck on the boundary; vcomp 0.09 lower",
}


def _load():
    out = []
    for f in sorted(glob.glob(os.path.join(STRESS_DIR, "*.json"))):
        with open(f) as fh:
            r = json.load(fh)
        r["_dir"] = STRESS_DIR
        out.append(r)
    return out


CASES = _load()


def num(x) -> float:
    """JSON number, null or R's "NaN"/"NA"/"Inf" strings as float."""
    if x is None or x == "NA":
        return math.nan
    return float(x)


def close(a, b, rel, abs_=0.0) -> bool:
    a, b = num(a), num(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def norm_term(t) -> str:
    return ":".join(sorted(str(t).split(":")))


def norm_coef(c) -> str:
    import re
    c = str(c)
    if c in ("(Intercept)", "Intercept"):
        return "Intercept"
    c = re.sub(r"\[T\.(.*?)\]", r"\1", c)
    return ":".join(sorted(c.split(":")))


def data(r) -> pd.DataFrame:
    df = pd.read_csv(os.path.join(r["_dir"], r["csv"] + ".csv"))
    facs = set(r.get("factors") or [])
    for t in r.get("terms") or []:
        facs.update(t.split(":"))
    if "cluster" in df.columns:
        facs.add("cluster")
    for v in facs:
        df[v] = df[v].astype(str)
    return df


def by_term(frame) -> dict:
    return {norm_term(k): v for k, v in frame.iterrows()}


def report(probs, limit=25):
    assert not probs, "%d disagreement(s) with R:\n  " % len(probs) + "\n  ".join(probs[:limit])


_FITS: dict = {}


def _fit(r, reml=True):
    key = (r["name"], bool(reml))
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = vcomp.lmm(r["lmer"], data(r), reml=reml)
    return _FITS[key]


def _known(r, what):
    why = KNOWN.get((r["name"], what))
    if why:
        pytest.xfail(why)


CLASSICAL = [(r, ss) for r in CASES if r.get("builder") and r.get("classical")
             for ss in (1, 2, 3) if r["classical"].get("type%d" % ss) is not None]
LMM = [r for r in CASES if r.get("reml")]
CROSS = [r for r in CASES if r.get("builder") and r.get("classical") and r.get("reml")]
# R's shrinkage reference is lm(y ~ x) per cluster and coef(m)$cluster (all fixed effects)
SHRINK = [r for r in CASES if r.get("shrinkage") and r["name"] not in LME4_WRONG]


@pytest.mark.parametrize("r, ss", CLASSICAL, ids=["%s-type%d" % (r["name"], ss) for r, ss in CLASSICAL])
def test_stress_classical(r, ss):
    _known(r, "type%d" % ss)
    ref = r["classical"]["type%d" % ss]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = eval(r["builder"], {"vcomp": vcomp}).anova(data(r), r["response"], ss_type=ss)
    probs = []
    tab = by_term(res.table)
    for row in ref["rows"]:
        got = tab.get(norm_term(row["source"]))
        if got is None:
            probs.append("source %s missing" % row["source"])
            continue
        if round(float(got["df"])) != row["df"]:
            probs.append("%s df %s != %s" % (row["source"], got["df"], row["df"]))
        if row["df"] == 0:
            continue  # a term aliased away (0 df): R's MS is 1e-14/0 = Inf, no meaningful value
        for k in ("SS", "MS"):
            if not close(got[k], row[k], CLASSICAL_REL, 1e-9):
                probs.append("%s %s %.10g != %s" % (row["source"], k, got[k], row[k]))
    ems = {norm_term(k): {norm_term(c): v for c, v in row.items()} for k, row in res.ems.iterrows()}
    for src, coefs in ref["ems"].items():
        for comp, v in coefs.items():
            g = ems.get(norm_term(src), {}).get(norm_term(comp))
            if g is None or abs(float(g) - num(v)) > 1e-6 * max(1, abs(num(v))):
                probs.append("EMS[%s, %s] %s != %s" % (src, comp, g, v))
    comps = by_term(res.components)
    raw = {k: num(v) for k, v in ref["mom"]["raw"].items()}
    scale = max(abs(x) for x in raw.values())
    for comp, v in raw.items():
        c = comps.get(norm_term(comp))
        if c is None:
            probs.append("component %s missing" % comp)
            continue
        if not close(c["raw"], v, CLASSICAL_REL, 1e-9 * scale):
            probs.append("MoM raw %s %.10g != %.10g" % (comp, c["raw"], v))
        if not close(c["estimate"], ref["mom"]["truncated"][comp], CLASSICAL_REL, 1e-9 * scale):
            probs.append("MoM estimate %s %.10g" % (comp, c["estimate"]))
    for src, t in (ref.get("tests") or {}).items():
        got = tab.get(norm_term(src))
        if t is None or got is None:
            continue
        for k in ("F", "den_df", "p"):
            if not close(got[k], t[k], CLASSICAL_REL, 1e-12):
                probs.append("test %s %s %.10g != %s" % (src, k, got[k], t[k]))
    report(probs)


def _vc_key(grp, v1, v2):
    g = "Residual" if grp == "Residual" else norm_term(grp)
    if g.split(".")[-1].isdigit():
        g = ".".join(g.split(".")[:-1])
    return (g, norm_coef(v1) if isinstance(v1, str) else None, norm_coef(v2) if isinstance(v2, str) else None)


@pytest.mark.parametrize("r", LMM, ids=[r["name"] for r in LMM])
def test_stress_lmm(r):
    fit = _fit(r)
    ref = r["reml"]
    probs = []
    crit = float(fit.reml_criterion)
    if r["name"] in LME4_WRONG:  # only: never worse than lme4
        report([] if crit <= ref["criterion"] + REML_CRIT_ABS else ["REML criterion %.7f > lme4 %.7f" % (
            crit, ref["criterion"])])
        return
    if not (ref["criterion"] - 1e-2 <= crit <= ref["criterion"] + REML_CRIT_ABS):
        probs.append("REML criterion %.7f vs lme4 %.7f" % (crit, ref["criterion"]))
    if bool(fit.singular) != bool(ref["singular"]):
        probs.append("singular %s vs lme4 %s (theta %s, lme4 %s)" % (fit.singular, ref["singular"], fit.theta,
                                                                     ref.get("theta")))
    got = {_vc_key(row["grp"], row["var1"], row["var2"]): float(row["vcov"]) for _, row in fit.varcorr.iterrows()}
    scale = max(abs(x["vcov"]) for x in ref["varcorr"])
    for x in ref["varcorr"]:
        k = _vc_key(x["grp"], x["var1"], x["var2"])
        if k not in got:
            probs.append("varcorr %s missing" % (k,))
        elif not close(got[k], x["vcov"], VC_REL, 1e-4 * scale):
            probs.append("varcorr %s %.6g != %.6g" % (k, got[k], x["vcov"]))
    coefs = {norm_coef(c["name"]): c for c in ref["coef_satterthwaite"]}
    fixef = {norm_coef(k): float(v) for k, v in fit.fixef.items()}
    if set(fixef) != set(coefs):
        probs.append("fixed effects %s, lme4 %s" % (sorted(fixef), sorted(coefs)))
    se_min = min(c["se"] for c in coefs.values())
    se = dict(zip((norm_coef(k) for k in fit.vcov.index), np.sqrt(np.diag(fit.vcov.values))))
    for k, c in coefs.items():
        if k in fixef and abs(fixef[k] - c["estimate"]) > 2e-3 * se_min + 1e-9 * abs(c["estimate"]):
            probs.append("fixef %s %.8g != %.8g" % (k, fixef[k], c["estimate"]))
        if k in se and not close(se[k], c["se"], VC_REL):
            probs.append("SE %s %.6g != %.6g" % (k, se[k], c["se"]))
    ml = _fit(r, reml=False)
    if not (r["ml"]["loglik"] - 5e-5 <= float(ml.loglik) <= r["ml"]["loglik"] + 5e-3):
        probs.append("ML logLik %.7f vs lme4 %.7f" % (ml.loglik, r["ml"]["loglik"]))
    report(probs)


def _anova_probs(table, ref_rows, label, dtol):
    probs = []
    an = {norm_term(k): v for k, v in table.iterrows()}
    for term, w in ref_rows.items():
        g = an.get(norm_term(term))
        if g is None:
            probs.append("%s: %s missing" % (label, term))
            continue
        if round(float(g["num_df"])) != w["num_df"] or not close(g["den_df"], w["den_df"], dtol, 1e-3) \
                or not close(g["F"], w["F"], 2e-3):
            probs.append("%s %s: num_df %s/%s F %.6g/%s den_df %.6g/%s" % (
                label, term, g["num_df"], w["num_df"], g["F"], w["F"], g["den_df"], w["den_df"]))
    return probs


@pytest.mark.parametrize("r", LMM, ids=[r["name"] for r in LMM])
def test_stress_ddf(r):
    fit = _fit(r)
    if r["name"] in LME4_WRONG:
        # R's df belong to lme4's worse optimum; ours must still be finite and sane
        for method in ("satterthwaite", "kenward-roger"):
            ct = fit.coef_table(ddf=method)
            assert np.isfinite(ct[["se", "df"]].to_numpy()).all() and (ct["df"] > 0).all()
        return
    ref = r["reml"]
    dtol = DF_REL_SINGULAR if ref["singular"] else DF_REL
    probs = []
    for method in ("satterthwaite", "kenward-roger"):
        key = method.replace("-", "_")
        ct = fit.coef_table(ddf=method)
        got = {norm_coef(k): v for k, v in ct.iterrows()}
        for w in ref["coef_" + key]:
            g = got.get(norm_coef(w["name"]))
            if g is None:
                probs.append("%s: %s missing" % (method, w["name"]))
            elif not close(g["se"], w["se"], VC_REL) or not close(g["df"], w["df"], dtol, 1e-3):
                probs.append("%s %s: se %.6g/%.6g df %.6g/%.6g" % (method, w["name"], g["se"], w["se"], g["df"], w["df"]))
        for typ, prefix in ((3, "anova_"), (1, "anova1_")):
            if prefix + key in ref:
                probs += _anova_probs(fit.anova(ddf=method, type=typ), ref[prefix + key],
                                      "%s type %d" % (method, typ), dtol)
    report(probs)


@pytest.mark.parametrize("r", CROSS, ids=[r["name"] for r in CROSS])
def test_stress_crosscheck(r):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cc = eval(r["builder"], {"vcomp": vcomp}).crosscheck(data(r), r["response"])
    ref3 = r["classical"]["type3"] or r["classical"]["type1"]
    probs = []
    comps = by_term(cc.components)
    raw = {k: num(v) for k, v in ref3["mom"]["raw"].items()}
    reml = {("Residual" if x["grp"] == "Residual" else norm_term(x["grp"])): x["vcov"] for x in r["reml"]["varcorr"]}
    scale = max(abs(v) for v in raw.values())
    for comp, v in raw.items():
        g = comps.get(norm_term(comp))
        if g is None:
            probs.append("component %s missing" % comp)
            continue
        if not close(g["mom"], max(v, 0.0), 1e-6, 1e-9 * scale):
            probs.append("mom %s %.6g != %.6g" % (comp, g["mom"], max(v, 0)))
        if not close(g["reml"], reml[norm_term(comp)], VC_REL, 1e-4 * scale):
            probs.append("reml %s %.6g != %.6g" % (comp, g["reml"], reml[norm_term(comp)]))
    tests = by_term(cc.tests)
    for term, t in (ref3.get("tests") or {}).items():
        if t is None or norm_term(term) not in tests or term in r["random"]:
            continue
        if not close(tests[norm_term(term)]["F_anova"], t["F"], 1e-6):
            probs.append("F_anova %s" % term)
    dtol = DF_REL_SINGULAR if r["reml"]["singular"] else DF_REL
    for term, t in (r["reml"].get("anova_kenward_roger") or {}).items():
        g = tests.get(norm_term(term))
        if g is None:
            probs.append("test row %s missing" % term)
        elif not close(g["F_kenward_roger"], t["F"], 2e-3) or \
                not close(g["den_df_kenward_roger"], t["den_df"], dtol, 1e-3):
            probs.append("KR %s %.6g/%.6g" % (term, g["F_kenward_roger"], t["F"]))
    if any(v < 0 for v in raw.values()) and not cc.notes:
        probs.append("a negative MoM estimate was truncated but notes are empty")
    report(probs)


@pytest.mark.parametrize("r", SHRINK, ids=[r["name"] for r in SHRINK])
def test_stress_shrinkage(r):
    sh = _fit(r).shrinkage()
    sh.index = [str(i) for i in sh.index]
    probs = []
    for row in r["shrinkage"]:
        k = row["cluster"]
        if k not in sh.index:
            probs.append("cluster %s missing" % k)
            continue
        g = sh.loc[k]
        if int(g["n"]) != row["n"]:
            probs.append("n for %s" % k)
        for a, b in (("ols_Intercept", "ols_intercept"), ("ols_x", "ols_slope")):
            # the acceptance check wants None where R has NA (JSON null)
            if (row[b] is None) != (g[a] is None) or not close(g[a], row[b], 1e-7, 1e-9):
                probs.append("%s %s %s != %s" % (k, a, g[a], row[b]))
        for a, b in (("mixed_Intercept", "mixed_intercept"), ("mixed_x", "mixed_slope")):
            if not close(g[a], row[b], VC_REL, 2e-4):
                probs.append("%s %s %s != %s" % (k, a, g[a], row[b]))
    report(probs)
