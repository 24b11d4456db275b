"""Shared machinery comparing vcomp with frozen R reference cases (JSON + CSV written by the R oracles).

Used by tests/test_reference.py (tests/reference), tests/test_stress_reference.py (tests/reference/stress)
and tests/classical/_refcases.py.  Each ``*_problems`` function returns a list of disagreements with R
(empty = match); :func:`report` turns a non-empty list into one assertion listing them all.
The checks mirror /work/shared/refcheck; tolerances follow the project brief.
"""
from __future__ import annotations

import glob
import json
import math
import os
import re
import warnings

import numpy as np
import pandas as pd

import vcomp

REF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")
STRESS_DIR = os.path.join(REF_DIR, "stress")

# tolerances (relative unless named *_ABS)
CLASSICAL_REL = 1e-7      # SS, MS, EMS, MoM, classical F / den_df / p
REML_CRIT_ABS = 1e-4      # vcomp's criterion may not exceed lme4's by more than this
VC_REL = 2e-3             # variance components, SEs, sigma
DF_REL = 2e-3             # Satterthwaite / Kenward-Roger df
DF_REL_SINGULAR = 5e-2    # ... for singular (boundary) fits
DDF_METHODS = ("satterthwaite", "kenward-roger")


# ---------------------------------------------------------------- loading

def load_cases(directory, type2_dir=None) -> list[dict]:
    """All ``*.json`` cases of ``directory`` (sorted), each with ``_dir`` set to it.

    ``type2_dir``: a folder of ``<name>.json`` files whose ``classical.type2`` fills a case's missing
    SAS type II part (the frozen oracle copies keep theirs in reference/oracle_type2).
    """
    out = []
    for f in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(f) as fh:
            r = json.load(fh)
        r["_dir"] = directory
        r["name"] = r.get("name") or os.path.splitext(os.path.basename(f))[0]
        out.append(r)
    if type2_dir:
        by_name = {r["name"]: r for r in out}
        for f in sorted(glob.glob(os.path.join(type2_dir, "*.json"))):
            with open(f) as fh:
                extra = json.load(fh)
            r = by_name[extra["name"]]
            if r["classical"].get("type2") is None:
                r["classical"]["type2"] = extra["classical"]["type2"]
    return out


def data(r) -> pd.DataFrame:
    """The case's data; factor columns (and ``cluster``) read as ``str`` (as refcheck does)."""
    df = pd.read_csv(os.path.join(r["_dir"], r.get("csv", r["name"]) + ".csv"))
    facs = set(r.get("factors") or [])
    for t in r.get("terms") or []:
        facs.update(t.split(":"))
    if "cluster" in df.columns:
        facs.add("cluster")
    for v in facs:
        df[v] = df[v].astype(str)
    return df


def design(r):
    return eval(r["builder"], {"vcomp": vcomp})


def ids(params) -> list[str]:
    """Test ids ``name`` or ``name-<param>-...`` for tuples ``(case, param, ...)``."""
    return [p[0]["name"] + ("" if len(p) == 1 else "-" + "-".join(str(x) for x in p[1:])) for p in params]


# ---------------------------------------------------------------- normalizers

def num(x) -> float:
    """JSON number, null or R's "NaN"/"NA"/"Inf" strings as float (null and NA -> NaN)."""
    if x is None or x == "NA":
        return math.nan
    return float(x)


def norm_term(t) -> str:
    """Term name with the factor order ignored (``"b:a"`` == ``"a:b"``)."""
    return ":".join(sorted(str(t).split(":")))


def norm_coef(c) -> str:
    """Coefficient name, R or patsy spelling -> one canonical form.

    ``(Intercept)``/``Intercept`` -> ``Intercept``; patsy ``trt[T.t2]`` -> R ``trtt2``;
    interaction parts are sorted.
    """
    c = str(c)
    if c in ("(Intercept)", "Intercept"):
        return "Intercept"
    c = re.sub(r"\[T\.(.*?)\]", r"\1", c)
    return ":".join(sorted(c.split(":")))


def close(a, b, rel, abs_=0.0) -> bool:
    """|a - b| within rel * max(|a|, |b|) or abs_; values read by :func:`num` (NaN only matches NaN)."""
    a, b = num(a), num(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def by_term(frame) -> dict:
    return {norm_term(k): v for k, v in frame.iterrows()}


def report(probs, limit=25):
    assert not probs, "%d disagreement(s) with R:\n  " % len(probs) + "\n  ".join(probs[:limit])


def ddf_tol(ref) -> float:
    """Relative tolerance of denominator df for a REML reference (looser on the boundary)."""
    return DF_REL_SINGULAR if ref["singular"] else DF_REL


# ---------------------------------------------------------------- fits (shared by the tests of one run)

_FITS: dict = {}


def fit(r, reml=True, quiet=False):
    """vcomp.lmm fit of the case, cached per (directory, case, reml); fits are not mutated.

    ``quiet``: suppress warnings while fitting.
    """
    key = (r["_dir"], r["name"], bool(reml))
    if key not in _FITS:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            _FITS[key] = vcomp.lmm(r["lmer"], data(r), reml=reml)
    return _FITS[key]


def classical(r, ss_type, quiet=False):
    """The case's classical ANOVA of type ``ss_type``."""
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        return design(r).anova(data(r), r["response"], ss_type=ss_type)


def crosscheck(r, quiet=False):
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        return design(r).crosscheck(data(r), r["response"])


# ---------------------------------------------------------------- classical ANOVA

def classical_problems(r, ss_type, res, zero_df_rows=False) -> list[str]:
    """df, SS, MS, EMS, Q(.) parts, MoM components, F tests and their error terms against R.

    ``zero_df_rows``: rows with 0 df (a term aliased away) are checked for their df only
    (R's MS there is 1e-14/0 = Inf and its EMS row Inf/NaN: no meaningful value).
    """
    ref = r["classical"]["type%d" % ss_type]
    zero = {norm_term(row["source"]) for row in ref["rows"] if zero_df_rows and row["df"] == 0}
    probs = []
    tab = by_term(res.table)
    for row in ref["rows"]:
        src = norm_term(row["source"])
        if src not in tab:
            probs.append("source %s missing from table" % row["source"])
            continue
        got = tab[src]
        if not close(got["df"], row["df"], 1e-9, 1e-9):
            probs.append("%s df %s != %s" % (src, got["df"], row["df"]))
        if src in zero:
            continue
        for k in ("SS", "MS"):
            if not close(got[k], row[k], CLASSICAL_REL, 1e-9):
                probs.append("%s %s %.10g != %s" % (src, k, got[k], row[k]))
    # expected mean squares (Hartley's synthesis)
    ems = {norm_term(k): {norm_term(c): v for c, v in row.items()} for k, row in res.ems.iterrows()}
    for src, coefs in ref["ems"].items():
        if norm_term(src) in zero:
            continue
        for comp, v in coefs.items():
            g = ems.get(norm_term(src), {}).get(norm_term(comp))
            if g is None or not abs(float(g) - num(v)) <= CLASSICAL_REL * max(1.0, abs(num(v))):
                probs.append("EMS[%s, %s] %s != %s" % (src, comp, g, v))
    # fixed-effect parts of the expected mean squares, written Q(term) (or Q(a, b) for several)
    texts = {norm_term(k): str(v) for k, v in res.ems_text.items()}
    for src, q in (ref.get("Q") or {}).items():
        q = q if isinstance(q, list) else [q]
        text = texts.get(norm_term(src))
        if text is None:
            probs.append("ems_text[%s] missing" % src)
            continue
        have = {norm_term(t.strip()) for grp in re.findall(r"Q\(([^)]*)\)", text) for t in grp.split(",")}
        if have != {norm_term(t) for t in q}:
            probs.append("ems_text[%s] = %r: fixed terms %s, R has %s" % (src, text, sorted(have), sorted(q)))
    # method-of-moments components, raw and truncated at zero; type I: with the fixed terms fitted first
    # (SAS PROC VARCOMP METHOD=TYPE1, the oracle's mom_fixed_first), so that no random row holds a fixed effect
    comps = by_term(res.components)
    mom = ref.get("mom_fixed_first") or ref["mom"]
    raw = {k: num(v) for k, v in mom["raw"].items()}
    scale = max(abs(x) for x in raw.values())
    for comp, v in raw.items():
        c = norm_term(comp)
        if c not in comps:
            probs.append("component %s missing" % comp)
            continue
        if not close(comps[c]["raw"], v, CLASSICAL_REL, 1e-9 * scale):
            probs.append("MoM raw %s %.10g != %.10g" % (comp, comps[c]["raw"], v))
        t = mom["truncated"][comp]
        if not close(comps[c]["estimate"], t, CLASSICAL_REL, 1e-9 * scale):
            probs.append("MoM estimate %s %.10g != %s" % (comp, comps[c]["estimate"], t))
    # the moment equations behind the type I components: R's fixed-first mean squares and df
    if "mom_fixed_first" in ref and getattr(res, "moments", None) is not None:
        mrows = by_term(res.moments)
        order = [norm_term(t) for t in (res.moments_order or [])]
        if order != [norm_term(t) for t in ref["mom_fixed_first"]["order"]]:
            probs.append("moments_order %s != R's %s" % (res.moments_order, ref["mom_fixed_first"]["order"]))
        for comp, ms in ref["mom_fixed_first"]["ms"].items():
            got = mrows.get(norm_term(comp))
            if got is None or not close(got["MS"], ms, CLASSICAL_REL, 1e-9 * scale) or \
                    round(float(got["df"])) != ref["mom_fixed_first"]["df"][comp]:
                probs.append("moments[%s] %s != MS %s, df %s" % (comp, None if got is None else
                                                               (got["MS"], got["df"]), ms,
                                                               ref["mom_fixed_first"]["df"][comp]))
    # F tests: exact or synthesized denominators
    errs = {norm_term(k): {norm_term(a): float(b) for a, b in v.items() if abs(float(b)) > 1e-8}
            for k, v in (getattr(res, "error_terms", None) or {}).items()}
    for src, t in (ref.get("tests") or {}).items():
        if t is None:
            continue
        got = tab.get(norm_term(src))
        if got is None:
            continue
        for k in ("F", "den_df", "p"):
            if not close(got[k], t[k], CLASSICAL_REL, 1e-12):
                probs.append("test %s %s %.10g != %s" % (src, k, got[k], t[k]))
        want = {norm_term(a): float(b) for a, b in t["error"].items() if abs(float(b)) > 1e-8}
        have = errs.get(norm_term(src))
        if have is None or set(have) != set(want) or \
                any(not close(have[a], want[a], 1e-6, 1e-9) for a in want):
            probs.append("error_terms[%s] %s != %s" % (src, have, want))
    return probs


# ---------------------------------------------------------------- REML / ML fits

def _vc_key(grp, v1, v2):
    g = "Residual" if grp == "Residual" else norm_term(grp)
    # lme4 names the parts of an uncorrelated (x||g) term g, g.1, ...
    if g.split(".")[-1].isdigit():
        g = ".".join(g.split(".")[:-1])
    return (g, norm_coef(v1) if isinstance(v1, str) else None, norm_coef(v2) if isinstance(v2, str) else None)


def criterion_problems(r, fit) -> list[str]:
    """Only that vcomp's REML criterion is not worse than lme4's (for cases where lme4 is known wrong)."""
    crit, want = float(fit.reml_criterion), r["reml"]["criterion"]
    return [] if crit <= want + REML_CRIT_ABS else ["REML criterion %.7f > lme4 %.7f" % (crit, want)]


def lmm_problems(r, fit, ml) -> list[str]:
    """REML fit ``fit`` and ML refit ``ml`` against lme4: nobs, criterion, singularity, sigma,
    VarCorr, fixed effects and SEs, ML logLik / AIC / BIC / VarCorr."""
    ref = r["reml"]
    probs = []
    if "nobs" in r and int(fit.nobs) != r["nobs"]:
        probs.append("nobs %s != %s" % (fit.nobs, r["nobs"]))
    crit = float(fit.reml_criterion)
    if not (ref["criterion"] - 1e-2 <= crit <= ref["criterion"] + REML_CRIT_ABS):
        probs.append("REML criterion %.7f vs lme4 %.7f" % (crit, ref["criterion"]))
    if bool(fit.singular) != bool(ref["singular"]):
        probs.append("singular %s vs lme4 %s (theta %s, lme4 %s)" % (fit.singular, ref["singular"], fit.theta,
                                                                     ref.get("theta")))
    if not close(fit.sigma, ref["sigma"], VC_REL, 1e-6):
        probs.append("sigma %.6g != %.6g" % (fit.sigma, ref["sigma"]))
    # variance components (as.data.frame(VarCorr(m)))
    got = {_vc_key(row["grp"], row["var1"], row["var2"]): float(row["vcov"]) for _, row in fit.varcorr.iterrows()}
    scale = max(abs(x["vcov"]) for x in ref["varcorr"])
    for x in ref["varcorr"]:
        k = _vc_key(x["grp"], x["var1"], x["var2"])
        if k not in got:
            probs.append("varcorr %s missing (have %s)" % (k, sorted(got)))
        elif not close(got[k], x["vcov"], VC_REL, 1e-4 * scale):
            probs.append("varcorr %s %.6g != %.6g" % (k, got[k], x["vcov"]))
    if len(got) != len(ref["varcorr"]):
        probs.append("varcorr has %d rows, lme4 %d" % (len(got), len(ref["varcorr"])))
    # fixed effects and their SEs, matched by name
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
    # ML refit
    want = r["ml"]
    if not (want["loglik"] - 5e-5 <= float(ml.loglik) <= want["loglik"] + 5e-3):
        probs.append("ML logLik %.7f vs lme4 %.7f" % (ml.loglik, want["loglik"]))
    for k in ("aic", "bic"):
        if not close(getattr(ml, k), want[k], 0, 2e-2):
            probs.append("ML %s %.6f vs lme4 %.6f" % (k, getattr(ml, k), want[k]))
    if not math.isnan(float(ml.reml_criterion)):
        probs.append("reml_criterion of an ML fit is %s, not NaN" % ml.reml_criterion)
    mlvc = {}
    for _, row in ml.varcorr.iterrows():
        mlvc.setdefault(_vc_key(row["grp"], None, None)[0], []).append(float(row["vcov"]))
    refvc = {}
    for x in want["varcorr"]:
        refvc.setdefault(_vc_key(x["grp"], None, None)[0], []).append(x["vcov"])
    mscale = max(abs(v) for vs in refvc.values() for v in vs)
    for g, vs in refvc.items():
        have = sorted(mlvc.get(g, []))
        if len(have) != len(vs) or any(not close(a, b, VC_REL, 1e-4 * mscale) for a, b in zip(have, sorted(vs))):
            probs.append("ML varcorr %s %s != %s" % (g, have, sorted(vs)))
    return probs


def _level_key(level) -> str:
    return ":".join(sorted(str(level).split(":")))


def ranef_problems(r, fit) -> list[str]:
    """Conditional modes (ranef) per group, coefficient and level against lme4."""
    probs = []
    got = {norm_term(g): v for g, v in fit.ranef.items()}
    tol_abs = 1e-4 * r["reml"]["sigma"]
    for grp, cols in r["reml"]["ranef"].items():
        frame = got.get(norm_term(grp))
        if frame is None:
            probs.append("ranef group %s missing (have %s)" % (grp, sorted(got)))
            continue
        fcols = {norm_coef(c): c for c in frame.columns}
        levels = {_level_key(i): i for i in frame.index}
        for coef, vals in cols.items():
            c = fcols.get(norm_coef(coef))
            if c is None:
                probs.append("ranef %s column %s missing" % (grp, coef))
                continue
            big = max(abs(v) for v in vals.values())
            for lev, v in vals.items():
                i = levels.get(_level_key(lev))
                if i is None:
                    probs.append("ranef %s level %s missing" % (grp, lev))
                    break
                g = float(frame.loc[i, c])
                if not close(g, v, VC_REL, max(1e-3 * big, tol_abs)):
                    probs.append("ranef %s[%s, %s] %.6g != %.6g" % (grp, lev, coef, g, v))
    return probs


# ---------------------------------------------------------------- Satterthwaite / Kenward-Roger

def anova_problems(table, ref_rows, label, dtol) -> list[str]:
    """An lmm anova table (num_df, den_df, F, p, row count) against lmerTest's."""
    probs = []
    an = {norm_term(k): v for k, v in table.iterrows()}
    for term, w in ref_rows.items():
        g = an.get(norm_term(term))
        if g is None:
            probs.append("%s: %s missing" % (label, term))
            continue
        if round(float(g["num_df"])) != w["num_df"]:
            probs.append("%s %s: num_df %s != %s" % (label, term, g["num_df"], w["num_df"]))
        if not close(g["den_df"], w["den_df"], dtol, 1e-3):
            probs.append("%s %s: den_df %.6g != %.6g" % (label, term, g["den_df"], w["den_df"]))
        if not close(g["F"], w["F"], 2e-3):
            probs.append("%s %s: F %.6g != %.6g" % (label, term, g["F"], w["F"]))
        if not close(g["p"], w["p"], 10 * dtol, 1e-4):
            probs.append("%s %s: p %.6g != %.6g" % (label, term, g["p"], w["p"]))
    if len(an) != len(ref_rows):
        probs.append("%s: %d rows, R has %d" % (label, len(an), len(ref_rows)))
    return probs


def coef_problems(fit, ref, method) -> list[str]:
    """coef_table(ddf=method) (estimate, se, df, t, p) against lmerTest / pbkrtest."""
    dtol = ddf_tol(ref)
    probs = []
    got = {norm_coef(k): v for k, v in fit.coef_table(ddf=method).iterrows()}
    want = {norm_coef(c["name"]): c for c in ref["coef_" + method.replace("-", "_")]}
    if set(got) != set(want):
        probs.append("%s coefficients %s, R has %s" % (method, sorted(got), sorted(want)))
    se_min = min(c["se"] for c in want.values())
    for name, w in want.items():
        g = got.get(name)
        if g is None:
            continue
        if abs(float(g["estimate"]) - w["estimate"]) > 2e-3 * se_min + 1e-9 * abs(w["estimate"]):
            probs.append("%s %s estimate %.8g != %.8g" % (method, name, g["estimate"], w["estimate"]))
        if not close(g["se"], w["se"], VC_REL):
            probs.append("%s %s se %.6g != %.6g" % (method, name, g["se"], w["se"]))
        if not close(g["df"], w["df"], dtol, 1e-3):
            probs.append("%s %s df %.6g != %.6g" % (method, name, g["df"], w["df"]))
        if not close(g["t"], w["t"], VC_REL, 2e-3):
            probs.append("%s %s t %.6g != %.6g" % (method, name, g["t"], w["t"]))
        if not close(g["p"], w["p"], 10 * dtol, 1e-4):
            probs.append("%s %s p %.6g != %.6g" % (method, name, g["p"], w["p"]))
    return probs


def ddf_anova_problems(fit, ref, method, type) -> list[str]:
    """The type ``type`` (1 or 3) anova with ``ddf=method`` against R's, if R has one."""
    key = ("anova_" if type == 3 else "anova1_") + method.replace("-", "_")
    if key not in ref:
        return []
    return anova_problems(fit.anova(ddf=method, type=type), ref[key],
                          "%s type %s anova" % (method, "III" if type == 3 else "I"), ddf_tol(ref))


def finite_df_problems(fit) -> list[str]:
    """SEs and df of both methods finite and df > 0 (when R's df belong to a wrong lme4 optimum)."""
    probs = []
    for method in DDF_METHODS:
        ct = fit.coef_table(ddf=method)
        if not (np.isfinite(ct[["se", "df"]].to_numpy()).all() and (ct["df"] > 0).all()):
            probs.append("%s: se/df not finite and positive:\n%s" % (method, ct[["se", "df"]]))
    return probs


# ---------------------------------------------------------------- crosscheck

def crosscheck_problems(r, cc) -> list[str]:
    """Design.crosscheck: MoM (raw, truncated), REML components, classical and lmerTest tests, notes."""
    ref3 = r["classical"]["type3"] or r["classical"]["type1"]
    probs = []
    comps = by_term(cc.components)
    raw = {k: num(v) for k, v in (ref3.get("mom_fixed_first") or ref3["mom"])["raw"].items()}
    reml = {("Residual" if x["grp"] == "Residual" else norm_term(x["grp"])): x["vcov"] for x in r["reml"]["varcorr"]}
    scale = max(abs(v) for v in raw.values())
    for comp, v in raw.items():
        c = norm_term(comp)
        got = comps.get(c)
        if got is None:
            probs.append("component %s missing" % comp)
            continue
        if not close(got["mom_raw"], v, 1e-6, 1e-9 * scale):
            probs.append("mom_raw %s %.8g != %.8g" % (comp, got["mom_raw"], v))
        if not close(got["mom"], max(v, 0.0), 1e-6, 1e-9 * scale):
            probs.append("mom %s %.8g != %.8g" % (comp, got["mom"], max(v, 0.0)))
        if not close(got["reml"], reml[c], VC_REL, 1e-4 * scale):
            probs.append("reml %s %.6g != %.6g" % (comp, got["reml"], reml[c]))
    tests = by_term(cc.tests)
    for term, t in (ref3.get("tests") or {}).items():
        if t is None or term in r["random"]:
            continue
        g = tests.get(norm_term(term))
        if g is None:
            probs.append("test row %s missing" % term)
            continue
        for a, b in (("F_anova", "F"), ("den_df_anova", "den_df"), ("p_anova", "p")):
            if not close(g[a], t[b], 1e-6, 1e-12):
                probs.append("%s %s %.8g != %.8g" % (a, term, g[a], num(t[b])))
    dtol = ddf_tol(r["reml"])
    for key in ("satterthwaite", "kenward_roger"):
        for term, t in (r["reml"].get("anova_" + key) or {}).items():
            g = tests.get(norm_term(term))
            if g is None:
                probs.append("test row %s missing" % term)
                continue
            if not close(g["F_" + key], t["F"], 2e-3) or not close(g["den_df_" + key], t["den_df"], dtol, 1e-3):
                probs.append("%s %s F %.6g/%.6g den_df %.6g/%.6g" % (
                    key, term, g["F_" + key], t["F"], g["den_df_" + key], t["den_df"]))
    if any(v < 0 for v in raw.values()) and not cc.notes:
        probs.append("a negative MoM estimate was truncated but notes are empty")
    if r["reml"]["singular"] and not cc.notes:
        probs.append("the REML fit is on the boundary but notes are empty")
    if not all(isinstance(n, str) for n in cc.notes):
        probs.append("notes must be strings")
    return probs


# ---------------------------------------------------------------- shrinkage

def shrinkage_problems(r, sh) -> list[str]:
    """fit.shrinkage() against lm(y ~ x) per cluster and coef(m)$cluster."""
    sh = sh.copy()
    sh.index = [str(i) for i in sh.index]
    probs = []
    if len(sh) != len(r["shrinkage"]):
        probs.append("%d rows, R has %d clusters" % (len(sh), len(r["shrinkage"])))
    for row in r["shrinkage"]:
        k = row["cluster"]
        if k not in sh.index:
            probs.append("cluster %s missing" % k)
            continue
        g = sh.loc[k]
        if int(g["n"]) != row["n"]:
            probs.append("%s n %s != %s" % (k, g["n"], row["n"]))
        for a, b in (("ols_Intercept", "ols_intercept"), ("ols_x", "ols_slope")):
            # the acceptance check wants None where R has NA (JSON null)
            if (row[b] is None) != (g[a] is None) or not close(g[a], row[b], 1e-7, 1e-9):
                probs.append("%s %s %s != %s" % (k, a, g[a], row[b]))
        for a, b in (("mixed_Intercept", "mixed_intercept"), ("mixed_x", "mixed_slope")):
            if not close(g[a], row[b], VC_REL, 2e-4):
                probs.append("%s %s %s != %s" % (k, a, g[a], row[b]))
    return probs
