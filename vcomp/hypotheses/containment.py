"""SAS's containment rule, the one test of which term contains which.

SAS/STAT ("The Four Types of Estimable Functions"): effect ``E`` contains effect ``F`` when
``E``'s variables are a strict superset of ``F``'s and both involve the *same continuous
variables* (covariates).  So ``A:x`` does not contain ``A`` when ``x`` is a covariate, and
``A:B`` contains ``A``.  Type II hypotheses, SAS's type III construction and lmerTest's
contrasts all use this rule.
"""
from __future__ import annotations

from typing import Iterable

from ..terms import term_key

__all__ = ["contains", "containing"]


def contains(big, small, continuous: Iterable[str] = ()) -> bool:
    """Whether term ``big`` contains term ``small`` (SAS's rule; ``continuous`` names the covariates)."""
    kb, ks = term_key(big), term_key(small)
    cont = set(continuous)
    return ks < kb and (kb & cont) == (ks & cont)


def containing(terms, continuous: Iterable[str] = ()) -> dict:
    """Term -> the terms of ``terms`` that contain it."""
    terms = list(terms)
    cont = set(continuous)
    return {t: [e for e in terms if e != t and contains(e, t, cont)] for t in terms}
