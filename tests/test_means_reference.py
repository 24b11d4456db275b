"""Means, pairs, letters, SEDs and LSDs against frozen emmeans / multcomp references.

tests/reference/means/*.json: made by tests/reference/means/means.R (unbalanced split-plot, Latin
square, strip plot, alpha lattice, unbalanced RCBD and split-split-plot, a covariate, transformed
covariates, a numeric factor and a 0/1 covariate); tests/reference/means/oracle/*.json: the
``means`` / ``classical_means`` fields of the shared round-2 references. Comparisons and tolerances:
tests/_means_compare.py.
"""
from __future__ import annotations

import os

import pytest

import _means_compare as mc

OWN = mc.load(mc.MEANS_DIR)
ORACLE = mc.load(os.path.join(mc.MEANS_DIR, "oracle"))
#: kept in the default run: every case made here (Kenward-Roger, classical) and the oats split-plot;
#: the rest (Satterthwaite twins, the shared references that check.sh also runs) are marked slow
FAST_ORACLE = {"yates_oats"}


def _param(r, *rest, fast=True):
    return pytest.param(r, *rest, marks=() if fast else pytest.mark.slow,
                        id="-".join([r["case"]] + [str(x) for x in rest]))


MIXED = [_param(r, ddf, term, fast=(r in OWN and ddf == "kenward-roger") or r["case"] in FAST_ORACLE)
         for r in OWN + ORACLE for ddf in ("kenward-roger", "satterthwaite") for term in r["means"][ddf]]
CLASSICAL = [_param(r, term, fast=r in OWN or r["case"] in FAST_ORACLE)
             for r in OWN + ORACLE if r.get("classical_means") for term in r["classical_means"]["means"]]


@pytest.mark.parametrize("r, ddf, term", MIXED)
def test_mixed_means_reference(r, ddf, term):
    model = mc.fit(r)
    tol = mc.Tol(False, r["singular"])
    probs = mc.block_problems(lambda by: model.means(term, by=by, ddf=ddf), r["means"][ddf][term], tol, term)
    assert not probs, "\n".join(probs[:10])


@pytest.mark.parametrize("r, term", CLASSICAL)
def test_classical_means_reference(r, term):
    res = mc.anova(r)
    probs = mc.block_problems(lambda by: res.means(term, by=by), r["classical_means"]["means"][term],
                              mc.Tol(True, False), term)
    assert not probs, "\n".join(probs[:10])
