"""vcomp's Means against frozen emmeans / multcomp references (tests/reference/means).

The JSON layout is that of /work/shared/refdata/<case>.round2.json (``means[ddf][term]``,
``classical_means.means[term]``); the comparisons and tolerances follow
/work/shared/refcheck/check_means.py: classical 1e-6 relative, mixed estimates 2e-5 x SE, SEs
1e-5, df 2e-3 (5e-2 singular), p 1e-4 absolute or 2e-3 relative, interval bounds 2e-3.
Letters are compared as the groups of levels sharing a letter in each slice.
"""
from __future__ import annotations

import glob
import json
import math
import os
import warnings

import pandas as pd

import vcomp

MEANS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "means")
ADJUST = ("none", "tukey", "bonferroni", "holm", "sidak", "scheffe")


def load(directory: str) -> list[dict]:
    out = []
    for f in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(f) as fh:
            r = json.load(fh)
        r["_dir"] = os.path.normpath(os.path.join(directory, r.get("csv_dir", ".")))
        out.append(r)
    return out


def data(r) -> pd.DataFrame:
    df = pd.read_csv(os.path.join(r["_dir"], r["csv"]))
    for v in r["factors"]:
        df[v] = df[v].astype(str)
    return df


_FITS: dict = {}


def fit(r):
    key = r["case"]
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = vcomp.lmm(r["vcomp_formula"], data(r))
    return _FITS[key]


def anova(r):
    key = ("anova", r["case"])
    if key not in _FITS:
        _FITS[key] = eval(r["builder"], {"vcomp": vcomp}).anova(data(r), r["response"])
    return _FITS[key]


class Tol:
    def __init__(self, classical: bool, singular: bool):
        self.se = 1e-6 if classical else 1e-5
        self.est_se = 1e-6 if classical else 2e-5
        self.df = 5e-2 if singular else 2e-3
        self.p_abs, self.p_rel = (1e-3, 2e-2) if singular else (1e-4, 2e-3)
        self.ci = 2e-3


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def _close(a, b, rel, abs_=0.0) -> bool:
    b = _num(b)
    if math.isnan(b):
        return True                       # R's NA is not checked
    a = float(a)
    return not math.isnan(a) and abs(a - b) <= max(abs_, rel * abs(b))


def _key(levels: dict) -> frozenset:
    return frozenset((str(f), str(v)) for f, v in levels.items())


def _tuple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _side(row, col, facs, by):
    vals = _tuple(row[col])
    if len(vals) == len(facs):
        lev = dict(zip(facs, vals))
    else:
        lev = dict(zip([f for f in facs if f not in by], vals))
        lev.update({b: row[b] for b in by})
    return _key(lev)


def table_problems(means, ref, tol, what) -> list[str]:
    probs = []
    names = list(means.table.index.names)
    got = {frozenset(zip(names, map(str, _tuple(i)))): row for i, row in means.table.iterrows()}
    if len(got) != len(ref):
        probs.append("%s: %d means, R has %d" % (what, len(got), len(ref)))
    for r in ref:
        g = got.get(_key(r["levels"]))
        if g is None:
            probs.append("%s: %s missing" % (what, r["levels"]))
            continue
        se = _num(r["se"])
        for name, ok in (("mean", _close(g["mean"], r["mean"], 0.0, max(tol.est_se * se, 1e-6 * abs(_num(r["mean"]))))),
                         ("se", _close(g["se"], r["se"], tol.se)), ("df", _close(g["df"], r["df"], tol.df, 1e-3)),
                         ("lower", _close(g["lower"], r["lower"], 0.0, tol.ci * max(abs(_num(r["lower"])), se))),
                         ("upper", _close(g["upper"], r["upper"], 0.0, tol.ci * max(abs(_num(r["upper"])), se)))):
            if not ok:
                probs.append("%s %s %s: %.8g vs R %s" % (what, r["levels"], name, g[name], r[name]))
    return probs


def pairs_problems(means, ref, facs, by, tol, what) -> list[str]:
    probs = []
    for adj in ADJUST:
        frame = means.pairs(adjust=adj)
        got = {}
        for row in frame.to_dict("records"):
            k1, k2 = _side(row, "level1", facs, by), _side(row, "level2", facs, by)
            got[frozenset((k1, k2))] = (k1, row)
        if len(got) != len(ref):
            return probs + ["%s pairs(%s): %d rows, R has %d" % (what, adj, len(got), len(ref))]
        for r in ref:
            k1, k2 = _key(r["level1"]), _key(r["level2"])
            first, g = got[frozenset((k1, k2))]
            s = 1.0 if first == k1 else -1.0
            se = _num(r["se"])
            lo, up = (g["lower"], g["upper"]) if s > 0 else (-g["upper"], -g["lower"])
            checks = [("estimate", _close(s * g["estimate"], r["estimate"], 0.0,
                                          max(tol.est_se * se, 1e-6 * abs(_num(r["estimate"]))))),
                      ("se", _close(g["se"], r["se"], tol.se)), ("df", _close(g["df"], r["df"], tol.df, 1e-3)),
                      ("t", _close(s * g["t"], r["t"], 10 * tol.se, 2 * tol.est_se)),
                      ("p", _close(g["p"], r["p"][adj], tol.p_rel, tol.p_abs))]
            if adj != "holm":
                checks += [("lower", _close(lo, r["lower"][adj], 0.0, tol.ci * max(abs(_num(r["lower"][adj])), se))),
                           ("upper", _close(up, r["upper"][adj], 0.0, tol.ci * max(abs(_num(r["upper"][adj])), se)))]
            bad = [n for n, ok in checks if not ok]
            if bad:
                probs.append("%s pairs(%s) %s - %s: %s" % (what, adj, r["level1"], r["level2"], ", ".join(bad)))
                break
    return probs


def letters_problems(means, ref, ref_pairs, facs, tol, what) -> list[str]:
    if ref is None or ref.get("borderline"):
        return []
    if any(x["p"].get("tukey") is not None and abs(float(x["p"]["tukey"]) - 0.05) <= tol.p_abs for x in ref_pairs):
        return []
    got = means.letters(adjust="tukey", alpha=0.05)
    names = list(means.table.index.names)
    rows = [(frozenset(zip(names, map(str, _tuple(i)))), set(str(v).replace(" ", ""))) for i, v in got.items()]
    probs = []
    for sl in ref["slices"]:
        byk = _key(sl["by"]) if sl.get("by") else frozenset()
        inside = [(k, ls) for k, ls in rows if byk <= k]
        chars = set().union(*[ls for _, ls in inside]) if inside else set()
        mine = {frozenset(k for k, ls in inside if ch in ls) for ch in chars}
        want = {frozenset(_key(lv) for lv in grp) for grp in sl["groups"]}
        if mine != want:
            probs.append("%s letters %s differ from multcomp::cld" % (what, sl.get("by") or ""))
    return probs


def sed_problems(means, ref_sed, ref_lsd, tol, what) -> list[str]:
    def norm(k):
        return ":".join(sorted(str(k).split(":")))
    sed = {norm(k): row for k, row in means.sed.iterrows()}
    lsd = {norm(k): row for k, row in means.lsd(alpha=0.05).iterrows()}
    if set(sed) != {norm(s["kind"]) for s in ref_sed}:
        return ["%s sed kinds %s, R %s" % (what, sorted(sed), sorted(s["kind"] for s in ref_sed))]
    probs = []
    for s in ref_sed:
        g = sed[norm(s["kind"])]
        if not all(_close(g[c], s[c], tol.se) for c in ("min", "mean", "max")) or not _close(g["df"], s["df"], tol.df, 1e-3):
            probs.append("%s sed[%s] differs" % (what, s["kind"]))
        if int(g["n"]) != int(s["n"]):
            probs.append("%s sed[%s].n %d vs %d" % (what, s["kind"], g["n"], s["n"]))
    for s in ref_lsd:
        g = lsd[norm(s["kind"])]
        if not all(_close(g[c], s[c], tol.ci) for c in ("min", "mean", "max")):
            probs.append("%s lsd[%s] differs" % (what, s["kind"]))
    return probs


def block_problems(get_means, ref, tol, what) -> list[str]:
    """Every comparison of one term's references; ``get_means(by)`` returns the Means."""
    facs = list(ref["factors"])
    m = get_means(None)
    probs = table_problems(m, ref["table"], tol, what)
    probs += pairs_problems(m, ref["pairs"], facs, [], tol, what)
    probs += letters_problems(m, ref.get("letters"), ref["pairs"], facs, tol, what)
    probs += sed_problems(m, ref["sed"], ref["lsd"], tol, what)
    for b, rb in (ref.get("by") or {}).items():
        mb = get_means(b)
        w = "%s | %s" % (what, b)
        probs += pairs_problems(mb, rb["pairs"], facs, [b], tol, w)
        probs += letters_problems(mb, rb.get("letters"), rb["pairs"], facs, tol, w)
        probs += sed_problems(mb, rb["sed"], rb["lsd"], tol, w)
    return probs
