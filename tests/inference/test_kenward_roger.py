"""Kenward-Roger's scalar formulas on degenerate inputs (vcomp/inference/kenward_roger.py)."""
import numpy as np

from vcomp.inference import kenward_roger as kr


def test_zero_over_zero_is_one_to_rounding():
    # 1 - A2/q and 1 - c2 B cancel exactly in a balanced stratum; what is left is rounding (~1e-13)
    assert kr._div0(-2.4e-14, -2.38e-14) == 1.0
    assert kr._div0(9.0e-14, 9.1e-14) == 1.0
    assert kr._div0(0.5, 0.25) == 2.0


def test_row_rank_detects_dependent_rows():
    rng = np.random.default_rng(0)
    G = rng.normal(size=(6, 6))
    Phi = G @ G.T + np.eye(6)
    L = rng.normal(size=(3, 6))
    assert kr._row_rank(L, L @ Phi @ L.T) == 3
    Ld = np.vstack([L, L[0] + 2 * L[1]])
    assert kr._row_rank(Ld, Ld @ Phi @ Ld.T) == 3
    assert kr._row_rank(L[:1], L[:1] @ Phi @ L[:1].T) == 1
