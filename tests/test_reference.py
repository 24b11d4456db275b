"""vcomp against the frozen R references in tests/reference (see tests/reference/README.md).

One parametrized test per case and area; select an area with ``-k``:
``test_classical_reference``, ``test_lmm_reference``, ``test_ddf_reference``,
``test_crosscheck_reference``, ``test_shrinkage_reference``.
Each test collects every disagreement with R and reports them together; the comparisons
and tolerances live in tests/_rcompare.py (shared with test_stress_reference.py).
"""
from __future__ import annotations

import os

import pytest

import _rcompare as rc

CASES = rc.load_cases(rc.REF_DIR, type2_dir=os.path.join(rc.REF_DIR, "oracle_type2"))

CLASSICAL = [(r, ss) for r in CASES if r.get("builder") and r.get("classical")
             for ss in (1, 2, 3) if r["classical"].get("type%d" % ss) is not None]
LMM = [(r,) for r in CASES if r.get("lmer") and r.get("reml")]
DDF = [(r, m) for (r,) in LMM for m in rc.DDF_METHODS]
DDF1 = [(r, m) for (r, m) in DDF if "anova1_" + m.replace("-", "_") in r["reml"]]
CROSS = [(r,) for r in CASES if r.get("builder") and r.get("classical") and r.get("reml")]
SHRINK = [(r,) for r in CASES if r.get("shrinkage")]


@pytest.mark.parametrize("r, ss_type", CLASSICAL, ids=rc.ids(CLASSICAL))
def test_classical_reference(r, ss_type):
    rc.report(rc.classical_problems(r, ss_type, rc.classical(r, ss_type)))


@pytest.mark.parametrize("r", [p[0] for p in LMM], ids=rc.ids(LMM))
def test_lmm_reference(r):
    rc.report(rc.lmm_problems(r, rc.fit(r), rc.fit(r, reml=False)))


@pytest.mark.parametrize("r", [p[0] for p in LMM], ids=rc.ids(LMM))
def test_lmm_reference_ranef(r):
    rc.report(rc.ranef_problems(r, rc.fit(r)))


@pytest.mark.parametrize("r, method", DDF, ids=rc.ids(DDF))
def test_ddf_reference(r, method):
    fit = rc.fit(r)
    rc.report(rc.coef_problems(fit, r["reml"], method) + rc.ddf_anova_problems(fit, r["reml"], method, 3))


@pytest.mark.parametrize("r, method", DDF1, ids=rc.ids(DDF1))
def test_ddf_reference_anova1(r, method):
    rc.report(rc.ddf_anova_problems(rc.fit(r), r["reml"], method, 1))


@pytest.mark.parametrize("r", [p[0] for p in CROSS], ids=rc.ids(CROSS))
def test_crosscheck_reference(r):
    rc.report(rc.crosscheck_problems(r, rc.crosscheck(r)))


@pytest.mark.parametrize("r", [p[0] for p in SHRINK], ids=rc.ids(SHRINK))
def test_shrinkage_reference(r):
    rc.report(rc.shrinkage_problems(r, rc.fit(r).shrinkage()))
