"""Cross-products ``W'BW`` for block-diagonal ``B`` with one ``k x k`` matrix per residual pattern.

``W = [Z X y]`` (n x m). For a pattern with blocks ``s = 1..N`` and rows ``w_{s,a}`` (a = 1..k),

.. math:: W'BW = \\sum_s \\sum_{a,b} B_{ab} w_{s,a} w_{s,b}' = \\sum_{a,b} B_{ab} C_{ab},
          \\quad C_{ab} = \\sum_s w_{s,a} w_{s,b}'.

The ``k^2`` matrices ``C_ab`` are formed once (one ``(N, k m)`` Gram matrix) and stored as a
``(k^2, m^2)`` array, so each ``W'BW`` is one matrix-vector product whose cost does not depend on
the number of blocks ("stored" patterns). Patterns with few large blocks (a field trial's grid)
keep their rows instead and multiply them out at each call ("direct" patterns), which is cheaper
there. Both give the same numbers.
"""
from __future__ import annotations

import numpy as np

__all__ = ["PatternCrossprods", "STORE_BUDGET"]

#: bytes allowed for the stored C_ab matrices of all patterns together
STORE_BUDGET = 400 * 2 ** 20


class PatternCrossprods:
    """``W'BW`` over residual patterns (see the module docstring).

    Parameters
    ----------
    W : ndarray, shape (n, m)
        ``[Z X y]`` (Z dense).
    patterns : list of Pattern
        From :func:`vcomp.mixed.residual.build_structure`.
    budget : int
        Bytes for stored patterns; beyond it patterns are kept as rows.
    """

    def __init__(self, W: np.ndarray, patterns: list, budget: int = STORE_BUDGET) -> None:
        W = np.asarray(W, dtype=float)
        self.m = m = W.shape[1]
        self.patterns = list(patterns)
        self.counts = np.array([p.count for p in self.patterns])
        # a stored pattern costs k^2 m^2 per call, a direct one about N k m (k + m)
        gain = []
        for i, p in enumerate(self.patterns):
            k, N = p.k, p.count
            gain.append((N * k * m * (k + m)) / max(k * k * m * m, 1))
        order = np.argsort(gain)[::-1]
        used = 0
        self.stored = np.zeros(len(self.patterns), dtype=bool)
        for i in order:
            p = self.patterns[i]
            size = p.k * p.k * m * m * 8
            if gain[i] > 1.0 and used + size <= budget:
                self.stored[i] = True
                used += size
        self._Gs, self._st_idx, self._direct = [], [], []
        for i, p in enumerate(self.patterns):
            Wp = W[p.rows]                                     # (N, k, m)
            if self.stored[i]:
                Wf = Wp.reshape(p.count, p.k * m)
                G = Wf.T @ Wf                                  # (k m, k m)
                G = G.reshape(p.k, m, p.k, m).transpose(0, 2, 1, 3).reshape(p.k * p.k, m * m)
                self._Gs.append(G)
                self._st_idx.append(i)
            else:
                self._direct.append((i, Wp))
        self._G = np.vstack(self._Gs) if self._Gs else np.zeros((0, m * m))
        del self._Gs

    def M(self, Bs: list) -> np.ndarray:
        """``W'BW`` for ``Bs[i]`` the ``k x k`` block of pattern ``i`` (``None`` = zero)."""
        m = self.m
        out = np.zeros((m, m))
        if len(self._st_idx):
            w = [np.zeros(self.patterns[i].k ** 2) if Bs[i] is None else np.asarray(Bs[i]).ravel()
                 for i in self._st_idx]
            out += (np.concatenate(w) @ self._G).reshape(m, m)
        for i, Wp in self._direct:
            B = Bs[i]
            if B is None:
                continue
            BW = np.einsum("ab,sbj->saj", B, Wp)
            out += Wp.reshape(-1, m).T @ BW.reshape(-1, m)
        return out

    def trace(self, Bs: list) -> float:
        """``sum_blocks tr(B_pattern)`` (``None`` = zero)."""
        return float(sum(c * np.trace(B) for c, B in zip(self.counts, Bs) if B is not None))
