"""Hypothesis matrices: type I/II/III sums of squares and tests, SAS containment, lmerTest's row bases;
the L matrices of estimated means and their differences.

The same L matrices drive the classical sums of squares and EMS (:mod:`vcomp.classical`) and
the mixed-model F tests (:mod:`vcomp.inference`).
"""
from .containment import contains, containing
from .matrices import hypothesis_matrices, pinv_psd, reparametrize, row_basis
from .means import means_matrix, pairs_matrix

__all__ = ["contains", "containing", "hypothesis_matrices", "pinv_psd", "reparametrize", "row_basis",
           "means_matrix", "pairs_matrix"]
