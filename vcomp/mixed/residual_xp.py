"""Cross-products ``W'BW`` for block-diagonal ``B`` with one ``k x k`` matrix per residual pattern.

``W = [Z X y]`` (n x m). For a pattern with blocks ``s = 1..N`` and rows ``w_{s,a}`` (a = 1..k),

.. math:: W'BW = \\sum_s \\sum_{a,b} B_{ab} w_{s,a} w_{s,b}' = \\sum_{a,b} B_{ab} C_{ab},
          \\quad C_{ab} = \\sum_s w_{s,a} w_{s,b}', \\quad C_{ba} = C_{ab}'.

The matrices ``C_ab`` (``a <= b``) are formed once and stored as rows of one array, so each
``W'BW`` is two matrix-vector products whose cost does not depend on the number of blocks
("stored" patterns). A structure whose precision is banded (AR(1): tridiagonal) stores only the
band; a ``B`` outside it (the inference's products) is multiplied out over the rows once.
Patterns with few large blocks (a field trial's grid) keep their rows and are always multiplied
out ("direct" patterns), which is cheaper there. All give the same numbers.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg.blas import dsyrk

__all__ = ["PatternCrossprods", "STORE_BUDGET"]

#: bytes allowed for the stored C_ab matrices of all patterns together
STORE_BUDGET = 400 * 2 ** 20


def _pairs(k: int, band: int | None) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.triu_indices(k)
    if band is not None:
        keep = (b - a) <= band
        a, b = a[keep], b[keep]
    return a, b


class PatternCrossprods:
    """``W'BW`` over residual patterns (see the module docstring).

    Parameters
    ----------
    W : ndarray, shape (n, m)
        ``[Z X y]`` (Z dense).
    patterns : list of Pattern
        From :func:`vcomp.mixed.residual.build_structure`.
    bands : list of (int or None), optional
        Per pattern, the bandwidth of the structure's precision matrix (None: full).
    budget : int
        Bytes for stored patterns; beyond it patterns are kept as rows.
    """

    def __init__(self, W: np.ndarray, patterns: list, bands: list | None = None,
                 budget: int = STORE_BUDGET) -> None:
        self.W = W = np.asarray(W, dtype=float)
        self.m = m = W.shape[1]
        self.patterns = list(patterns)
        bands = [None] * len(self.patterns) if bands is None else list(bands)
        self.counts = np.array([p.count for p in self.patterns])
        pairs = [_pairs(p.k, bd) for p, bd in zip(self.patterns, bands)]
        # a stored pattern costs (pairs) m^2 per call, a direct one about N k m (k + m)
        gain = np.array([(p.count * p.k * m * (p.k + m)) / max(len(pr[0]) * m * m, 1)
                         for p, pr in zip(self.patterns, pairs)])
        used = 0
        self.stored = np.zeros(len(self.patterns), dtype=bool)
        for i in np.argsort(-gain):
            size = len(pairs[i][0]) * m * m * 8
            if gain[i] > 1.0 and used + size <= budget:
                self.stored[i] = True
                used += size
        self._used, self._budget = used, budget
        self._pairs = pairs
        self._bands = bands
        self._blocks = {i: self._crossprods(i) for i in range(len(self.patterns)) if self.stored[i]}
        self._stack()
        self._rows_cache: dict = {}

    def _crossprods(self, i: int) -> np.ndarray:
        """The stored ``C_ab`` of pattern ``i`` (its pairs), as an ``(npairs, m^2)`` array."""
        p, W, m = self.patterns[i], self.W, self.m
        a, b = self._pairs[i]
        if len(a) > 0.6 * p.k * (p.k + 1) / 2:
            Wf = W[p.rows].reshape(p.count, p.k * m)              # (N, k m)
            # upper triangle of Wf'Wf (half the flops of a product); blocks a <= b lie in it
            G = dsyrk(1.0, Wf.T, trans=0, lower=0).reshape(p.k, m, p.k, m)
            C = G[a, :, b, :]                                     # (npairs, m, m)
            d = a == b
            C[d] = np.triu(C[d]) + np.swapaxes(np.triu(C[d], 1), 1, 2)
        else:
            Wk = self._by_position(i)                             # (k, N, m): contiguous slices
            C = np.empty((len(a), m, m))
            for j, (ai, bi) in enumerate(zip(a, b)):
                if ai == bi:                                      # symmetric: half the flops
                    U = dsyrk(1.0, Wk[ai].T, trans=0, lower=0)
                    C[j] = np.triu(U) + np.triu(U, 1).T
                else:
                    C[j] = Wk[ai].T @ Wk[bi]
        return C.reshape(len(a), m * m)

    def _stack(self) -> None:
        self._slices, off, blocks = {}, 0, []
        for i in sorted(self._blocks):
            n = self._blocks[i].shape[0]
            self._slices[i] = slice(off, off + n)
            blocks.append(self._blocks[i])
            off += n
        self._C = np.vstack(blocks) if blocks else np.zeros((0, self.m * self.m))

    def _widen(self, i: int) -> None:
        """Store all pairs of a banded pattern (first asked for a ``B`` outside its band)."""
        a, b = self._pairs[i]
        full = _pairs(self.patterns[i].k, None)
        extra_size = (len(full[0]) - len(a)) * self.m * self.m * 8
        if self._used + extra_size > self._budget:         # no room: multiply this pattern out
            self.stored[i] = False
            self._used -= len(a) * self.m * self.m * 8
            del self._blocks[i]
            self._stack()
            return
        self._used += extra_size
        have = {(x, y): j for j, (x, y) in enumerate(zip(a, b))}
        missing = [j for j, xy in enumerate(zip(*full)) if xy not in have]
        self._pairs[i] = (full[0][missing], full[1][missing])
        extra = self._crossprods(i)
        old = self._blocks[i]
        rows = [old[have[xy]] if xy in have else None for xy in zip(*full)]
        it = iter(extra)
        self._blocks[i] = np.stack([r if r is not None else next(it) for r in rows])
        self._pairs[i] = full
        self._bands[i] = None
        self._stack()

    def _fits_band(self, i: int, B: np.ndarray) -> bool:
        bd = self._bands[i]
        if bd is None:
            return True
        k = B.shape[0]
        out = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) > bd
        return not np.any(B[out])

    def M(self, Bs: list) -> np.ndarray:
        """``W'BW`` for ``Bs[i]`` the ``k x k`` block of pattern ``i`` (``None`` = zero)."""
        m = self.m
        nst = self._C.shape[0]
        wu, wl = np.zeros(nst), np.zeros(nst)
        direct = []
        for i, B in enumerate(Bs):
            if B is None:
                continue
            if self.stored[i] and not self._fits_band(i, B):
                self._widen(i)
                return self.M(Bs)
            if self.stored[i]:
                a, b = self._pairs[i]
                sl = self._slices[i]
                wu[sl] = B[a, b]
                wl[sl] = np.where(a == b, 0.0, B[b, a])
            else:
                direct.append(i)
        out = (wu @ self._C).reshape(m, m)
        if np.any(wl):
            out += (wl @ self._C).reshape(m, m).T
        for i in direct:
            Wk = self._rows_by_position(i)                             # (k, N m)
            out += Wk.reshape(-1, m).T @ (Bs[i] @ Wk).reshape(-1, m)
        return out

    def _by_position(self, i: int) -> np.ndarray:
        """Pattern ``i``'s rows of W as a ``(k, N, m)`` array: a view when they are one position-major
        block of W (as :class:`~vcomp.mixed.residual_fit.ResidualCriterion` orders them), else a copy."""
        p = self.patterns[i]
        r = p.rows.T.ravel()
        if len(r) and r[-1] - r[0] == len(r) - 1 and np.all(np.diff(r) == 1):
            return self.W[r[0]:r[-1] + 1].reshape(p.k, p.count, self.m)
        return self.W[p.rows.T]

    def _rows_by_position(self, i: int) -> np.ndarray:
        """Pattern ``i``'s rows of W as a ``(k, N m)`` array (kept after the first use)."""
        Wk = self._rows_cache.get(i)
        if Wk is None:
            p = self.patterns[i]
            Wk = self._by_position(i).reshape(p.k, -1)
            self._rows_cache[i] = Wk
        return Wk

    def contract(self, G: np.ndarray) -> list:
        """Per pattern the ``k x k`` matrix ``H[a, b] = sum(G * C_ab)`` for a symmetric ``m x m`` ``G``.

        Then ``sum(G * M(B)) = sum_i sum(Bs[i] * H[i])`` for any ``Bs``; stored banded patterns
        give ``H`` inside their band only (0 outside), enough for ``B`` inside the band.
        """
        c = self._C @ np.asarray(G, dtype=float).ravel()
        out = []
        for i, p in enumerate(self.patterns):
            if self.stored[i]:
                a, b = self._pairs[i]
                H = np.zeros((p.k, p.k))
                H[a, b] = c[self._slices[i]]
                H[b, a] = H[a, b]
            else:
                Wk = self._rows_by_position(i).reshape(p.k, p.count, self.m)
                WG = (Wk.reshape(-1, self.m) @ G).reshape(p.k, -1)
                H = WG @ Wk.reshape(p.k, -1).T
            out.append(H)
        return out
