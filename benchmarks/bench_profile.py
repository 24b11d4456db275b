"""Profile intervals (``MixedModel.confint(method="profile")``): criterion evaluations per parameter and time.

For each fit -- the shared visible cases with profile references, the frozen cases of
tests/reference/vcinfer, and the oats split plot ``yield ~ nitro*variety + (1|block/variety)`` --
REML and ML: the kernel calls of each parameter's two bounds (max and mean over the parameters,
:func:`vcomp.mixed.profile.profile_evaluations`; without it, i.e. on an older vcomp, the calls of
``criterion_pieces`` made by the profile module) and the best of three ``confint()`` times (all rows,
one call).

Usage: ``python benchmarks/bench_profile.py [--refs ../shared/refdata]`` from the project root (a
worktree finds ``../../shared/refdata``).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

import vcomp
import vcomp.mixed.profile as P

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _cases(refs: str):
    out = []
    for f in sorted(glob.glob(os.path.join(refs, "*.round2.json"))):
        with open(f) as fh:
            r2 = json.load(fh)
        if not (r2.get("confint") or {}).get("profile"):
            continue
        with open(f.replace(".round2", "")) as fh:
            base = json.load(fh)
        d = pd.read_csv(os.path.join(refs, base["csv"] + ".csv"))
        facs = {v for t in base.get("terms") or [] for v in t.split(":")} | ({"cluster"} & set(d.columns))
        for v in facs:
            d[v] = d[v].astype(str)
        out.append((os.path.basename(f).split(".")[0], base["lmer"], d, r2["confint"]["level"]))
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import _vcref

    out += [(r["name"], ref["lmer"], _vcref.data(r), ref["level"]) for r, ref in _vcref.cases("confint")]
    out.append(("oats", "yield ~ nitro*variety + (1|block/variety)", vcomp.datasets.load("oats"), 0.95))
    return out


def _counts(fit, level) -> np.ndarray:
    if hasattr(P, "profile_evaluations"):
        return P.profile_evaluations(fit, level)["evaluations"].to_numpy()
    calls = [0]
    orig = P.criterion_pieces

    def counting(model, theta):
        calls[0] += 1
        return orig(model, theta)

    P.criterion_pieces = counting
    try:
        out = []
        for nm in P.vc_row_names(fit) + list(fit.fixef.index):
            calls[0] = 0
            fit.confint(level, parm=[nm])
            out.append(calls[0])
        return np.array(out)
    finally:
        P.criterion_pieces = orig


def main() -> None:
    ap = argparse.ArgumentParser()
    refs = [os.path.join(ROOT, *[".."] * k, "shared", "refdata") for k in (1, 2)]
    ap.add_argument("--refs", default=next((r for r in refs if os.path.isdir(r)), refs[0]))
    a = ap.parse_args()
    print("%-22s %-4s %9s %9s %9s" % ("case", "fit", "max/par", "mean/par", "confint s"))
    for name, f, d, level in _cases(a.refs):
        for reml in (True, False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = vcomp.lmm(f, d, reml=reml)
                c = _counts(fit, level)
                t = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    fit.confint(level)
                    t.append(time.perf_counter() - t0)
            print("%-22s %-4s %9d %9.1f %9.3f" % (name, "REML" if reml else "ML", c.max(), c.mean(), min(t)),
                  flush=True)
    print("load average %.1f" % os.getloadavg()[0])


if __name__ == "__main__":
    main()
