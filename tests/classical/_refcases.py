"""Load the frozen R reference cases (tests/reference, else /work/shared/refdata) and compare."""
from __future__ import annotations

import glob
import json
import math
import os

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
CANDIDATES = [os.path.join(HERE, "..", "reference"), "/work/shared/refdata"]


def ref_dir() -> str | None:
    for d in CANDIDATES:
        if glob.glob(os.path.join(d, "*.json")):
            return d
    return None


def norm_term(t) -> str:
    return ":".join(sorted(str(t).split(":")))


def load_cases() -> list[dict]:
    d = ref_dir()
    if d is None:
        return []
    out = []
    for f in sorted(glob.glob(os.path.join(d, "*.json"))):
        with open(f) as fh:
            r = json.load(fh)
        if not (r.get("classical") and r.get("builder")):
            continue
        r["_dir"] = d
        r["name"] = r.get("name") or os.path.splitext(os.path.basename(f))[0]
        out.append(r)
    return out


def case_data(r: dict) -> pd.DataFrame:
    df = pd.read_csv(os.path.join(r["_dir"], r.get("csv", r["name"]) + ".csv"))
    facs = set(r.get("factors") or [])
    for t in r.get("terms") or []:
        facs.update(t.split(":"))
    for v in facs:
        if v in df.columns:
            df[v] = df[v].astype(str)
    return df


def case_design(r: dict):
    import vcomp
    return eval(r["builder"], {"vcomp": vcomp})


def close(a, b, rel, abs_=0.0) -> bool:
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def compare(r: dict, ss_type: int, res) -> list[str]:
    """Differences between an AnovaResult and the reference (empty list = match)."""
    ref = r["classical"]["type%d" % ss_type]
    probs = []
    tab = {norm_term(k): v for k, v in res.table.iterrows()}
    for row in ref["rows"]:
        got = tab.get(norm_term(row["source"]))
        if got is None:
            probs.append("source %s missing" % row["source"])
            continue
        if round(float(got["df"])) != row["df"]:
            probs.append("%s df %s != %s" % (row["source"], got["df"], row["df"]))
        for k in ("SS", "MS"):
            if not close(got[k], row[k], 1e-7, 1e-9):
                probs.append("%s %s %.10g != %.10g" % (row["source"], k, got[k], row[k]))
    ems = {norm_term(k): {norm_term(c): v for c, v in row.items()} for k, row in res.ems.iterrows()}
    for src, coefs in ref["ems"].items():
        for comp, v in coefs.items():
            g = ems.get(norm_term(src), {}).get(norm_term(comp))
            if g is None or abs(float(g) - v) > 1e-6 * max(1, abs(v)):
                probs.append("EMS[%s, %s] %s != %.6g" % (src, comp, g, v))
    comps = {norm_term(k): v for k, v in res.components.iterrows()}
    scale = max(abs(x) for x in ref["mom"]["raw"].values())
    for comp, v in ref["mom"]["raw"].items():
        c = comps.get(norm_term(comp))
        if c is None:
            probs.append("component %s missing" % comp)
            continue
        if not close(c["raw"], v, 1e-6, 1e-9 * scale):
            probs.append("raw %s %.8g != %.8g" % (comp, c["raw"], v))
        if not close(c["estimate"], ref["mom"]["truncated"][comp], 1e-6, 1e-9 * scale):
            probs.append("estimate %s" % comp)
    for src, t in (ref.get("tests") or {}).items():
        if t is None:
            continue
        got = tab.get(norm_term(src))
        for k in ("F", "den_df", "p"):
            if not close(got[k], t[k], 1e-6, 1e-12):
                probs.append("test %s %s %.8g != %.8g" % (src, k, got[k], t[k]))
        mine = {norm_term(k): v for k, v in res.error_terms[got.name].items()}
        for k, v in t["error"].items():
            if abs(mine.get(norm_term(k), 0.0) - v) > 1e-6 * max(1, abs(v)):
                probs.append("error term %s/%s" % (src, k))
    for src, q in (ref.get("Q") or {}).items():
        q = q if isinstance(q, list) else [q]
        mine = {norm_term(x) for x in res.fixed_parts.get(_match(res, src), [])}
        if mine != {norm_term(x) for x in q}:
            probs.append("Q[%s] %s != %s" % (src, sorted(mine), sorted(q)))
    return probs


def _match(res, src):
    for s in res.fixed_parts:
        if norm_term(s) == norm_term(src):
            return s
    return src
