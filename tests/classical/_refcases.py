"""Load the frozen R reference cases (tests/reference, else /work/shared/refdata) and compare."""
from __future__ import annotations

import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.join(HERE, "..") not in sys.path:  # tests/_rcompare.py, shared with tests/test_reference.py
    sys.path.insert(0, os.path.join(HERE, ".."))

from _rcompare import classical_problems, design as case_design, norm_term  # noqa: E402,F401
from _rcompare import data as case_data, load_cases as _load_cases  # noqa: E402,F401

CANDIDATES = [os.path.join(HERE, "..", "reference"), "/work/shared/refdata"]


def ref_dir() -> str | None:
    for d in CANDIDATES:
        if glob.glob(os.path.join(d, "*.json")):
            return d
    return None


def load_cases() -> list[dict]:
    """The reference cases with a classical part and a design builder."""
    d = ref_dir()
    if d is None:
        return []
    return [r for r in _load_cases(d) if r.get("classical") and r.get("builder")]


def compare(r: dict, ss_type: int, res) -> list[str]:
    """Differences between an AnovaResult and the reference (empty list = match).

    The shared comparison of tests/_rcompare.py plus the Q(.) parts read from ``res.fixed_parts``.
    """
    ref = r["classical"]["type%d" % ss_type]
    probs = classical_problems(r, ss_type, res)
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
