"""The frozen R references of tests/reference/vcinfer (vcinfer.R): variance-component intervals,
heritability, ranova and model comparison on designs beyond the shared visible cases."""
from __future__ import annotations

import glob
import json
import os

import pandas as pd

import _rcompare as rc

VC_DIR = os.path.join(rc.REF_DIR, "vcinfer")


def cases(field: str) -> list[tuple[dict, dict]]:
    """``(case, reference)`` pairs whose vcinfer JSON has ``field``: the case JSON of tests/reference
    (data, roles) and the vcinfer JSON."""
    out = []
    for f in sorted(glob.glob(os.path.join(VC_DIR, "*.json"))):
        with open(f) as fh:
            ref = json.load(fh)
        if field not in ref:
            continue
        base = os.path.join(rc.REF_DIR, ref["case"] + ".json")
        if os.path.exists(base):
            with open(base) as fh:
                r = json.load(fh)
            r["_dir"] = rc.REF_DIR
            r["name"] = r.get("name") or ref["case"]
        else:  # a data set made by vcinfer.R itself
            r = {"name": ref["case"], "_dir": VC_DIR}
        out.append((r, ref))
    return out


def data(r: dict) -> pd.DataFrame:
    if r["_dir"] == VC_DIR:
        return pd.read_csv(os.path.join(VC_DIR, r["name"] + ".csv"), dtype=str).astype(
            {"yield": float})
    return rc.data(r)


def ids(pairs) -> list[str]:
    return [p[0]["name"] for p in pairs]


def rel(a, b, tol, abs_=0.0) -> bool:
    """``a`` within ``tol`` (relative) of ``b``; None/NaN in ``b`` is not checked."""
    import math

    if b is None or (isinstance(b, float) and math.isnan(b)):
        return True
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return False
    return abs(float(a) - float(b)) <= max(abs_, tol * abs(float(b)))
