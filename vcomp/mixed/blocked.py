"""Blocked Cholesky factor of ``A = Λ'Z'ZΛ + I`` for several grouping factors, with a fixed symbolic analysis.

Following MixedModels.jl, the random-effect columns are split into the first term (the one with
most levels, which :func:`~vcomp.mixed.reterm.build_re_terms` puts first) and the rest::

    A = [ A11  A12 ]     A11: block diagonal (one k1 x k1 block per level of term 1)
        [ A21  A22 ]     A12: sparse (each level meets few levels of the other factors)
                         A22: dense, small (the other terms' levels together)

    L = [ L11   0  ]     L11 = chol(A11) level by level, W = L11^-1 A12 (sparse, same pattern)
        [ W'   L22 ]     L22 = chol(A22 - W'W) dense

The pattern of ``A12`` is fixed once (:class:`BlockedPattern`): every level's rows share one
column list made of whole level-blocks of the trailing terms, so each evaluation only rescales
the stored values by the terms' Λ (no symbolic work, never a dense ``q1 x q2`` matrix).

The same factor gives the analytic gradient of the profiled criterion (:meth:`BlockedPattern.gradient`),
which needs ``A^-1`` only on the pattern of ``Z'Z`` (a selected inverse: the dense ``S^-1`` of the
trailing block, its products with the sparse ``W``, and the level blocks of ``A11^-1``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .. import _threads
from .reterm import ReTerm, lambda_matrix

__all__ = ["BlockedPattern", "BlockedFactor", "diag_blocks", "chol_small", "forward_small", "back_small"]

#: largest number of (column, column) pairs within the rows of A12 handled pairwise
_PAIR_MAX = 30_000_000
#: smallest trailing scale for which the scalar path factors ``K = Pm + diag(d2)^-2`` instead of
#: ``d2 Pm d2 + I`` (the same factor up to a row scaling, without the two dense scaling passes)
_SCALED_MIN = 1e-4


def diag_blocks(D: sp.spmatrix, g: int, k: int) -> np.ndarray:
    """The ``g`` diagonal ``k x k`` blocks of a (block-diagonal) sparse matrix."""
    out = np.zeros((g, k, k))
    C = sp.coo_matrix(D)
    lev_r, lev_c = C.row // k, C.col // k
    on = lev_r == lev_c
    np.add.at(out, (lev_r[on], C.row[on] % k, C.col[on] % k), C.data[on])
    return out


def chol_small(T: np.ndarray) -> np.ndarray:
    """Batched Cholesky of ``g x K x K`` SPD matrices, vectorised over g (fast for small K)."""
    g, K, _ = T.shape
    if K > 6:
        return np.linalg.cholesky(T)
    L = np.zeros_like(T)
    for j in range(K):
        d = T[:, j, j] - np.einsum("gk,gk->g", L[:, j, :j], L[:, j, :j]) if j else T[:, j, j].copy()
        if np.any(d <= 0) or not np.all(np.isfinite(d)):
            raise np.linalg.LinAlgError("not positive definite")
        ljj = np.sqrt(d)
        L[:, j, j] = ljj
        for i in range(j + 1, K):
            v = T[:, i, j] - (np.einsum("gk,gk->g", L[:, i, :j], L[:, j, :j]) if j else 0.0)
            L[:, i, j] = v / ljj
    return L


def forward_small(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Batched forward substitution ``L X = B`` (L: g x K x K lower, B: g x K x m)."""
    K = L.shape[1]
    if K > 6:
        return np.linalg.solve(L, B)
    X = np.empty_like(B)
    for i in range(K):
        v = B[:, i, :]
        if i:
            v = v - np.einsum("gk,gkm->gm", L[:, i, :i], X[:, :i, :])
        X[:, i, :] = v / L[:, i, i][:, None]
    return X


def back_small(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Batched back substitution ``L' X = B`` (L: g x K x K lower, B: g x K x m)."""
    K = L.shape[1]
    if K > 6:
        return np.linalg.solve(np.swapaxes(L, 1, 2), B)
    X = np.empty_like(B)
    for i in range(K - 1, -1, -1):
        v = B[:, i, :]
        if i < K - 1:
            v = v - np.einsum("gk,gkm->gm", L[:, i + 1:, i], X[:, i + 1:, :])
        X[:, i, :] = v / L[:, i, i][:, None]
    return X


def _inv_small(Lc: np.ndarray) -> np.ndarray:
    """``L^-1`` of a batch of lower-triangular factors."""
    K = Lc.shape[1]
    if K == 1:
        return 1.0 / Lc
    return forward_small(Lc, np.broadcast_to(np.eye(K), Lc.shape).copy())


def _level_pairs(fstart: np.ndarray, counts: np.ndarray, upper: bool) -> tuple:
    """All pairs ``(f1, f2)`` of flat positions within each level (``f1 <= f2`` when ``upper``), and their level.

    Levels are grouped by their number of positions, so the work is the size of the output.
    """
    f1s, f2s, ls = [], [], []
    for m in np.unique(counts):
        if m == 0:
            continue
        levs = np.flatnonzero(counts == m)
        i, j = np.triu_indices(m) if upper else np.divmod(np.arange(m * m), m)
        base = fstart[levs][:, None]
        f1s.append((base + i[None, :]).ravel())
        f2s.append((base + j[None, :]).ravel())
        ls.append(np.repeat(levs, len(i)))
    if not f1s:
        z = np.zeros(0, np.int64)
        return z, z, z
    return (np.concatenate(f1s).astype(np.int64), np.concatenate(f2s).astype(np.int64),
            np.concatenate(ls).astype(np.int64))


@dataclass
class BlockedFactor:
    """The factor at one θ: ``Lc`` (level blocks of L11), ``W`` (values on the pattern), ``L22``, ``R``."""

    theta: np.ndarray
    lam1: np.ndarray
    Lam2: object          # sparse q2 x q2, or None when every trailing term is scalar (then d2)
    d2: np.ndarray | None
    Lc: np.ndarray        # g1 x k1 x k1
    LD: np.ndarray        # k1 x nF: Λ1' Z12 values
    W: np.ndarray         # k1 x nF: L11^-1 Λ1' Z12 Λ2 values
    Wm: sp.csr_matrix     # W as a (k1 g1) x q2 matrix, rows i-major
    t22: dict             # trailing factor: see :meth:`BlockedPattern._scalar22` ("plain", "scaled", "struct")
    R1: np.ndarray        # g1 x k1 x m: L11^-1 Λ1' Z1'W
    R2: np.ndarray        # q2 x m
    ldL2: float
    RtR: np.ndarray
    Pm: np.ndarray | None = None  # plain scalar path: Z22 - sum_l (λ1^2 / T_l) D_l D_l'

    @property
    def L22(self) -> np.ndarray | None:
        """Dense factor of the trailing block (``plain`` kind) or of its rescaling ``K`` (``scaled``)."""
        return self.t22.get("L")


class BlockedPattern:
    """Symbolic analysis of ``Z'Z`` split as [term 1 | other terms] (done once per model)."""

    #: keep a diagonal first trailing block structured (the ``struct`` kind of :meth:`_scalar22`)
    use_struct = True

    def __init__(self, terms: list[ReTerm], ZtZ: sp.spmatrix, ZtW: np.ndarray) -> None:
        self.terms = terms
        t1 = terms[0]
        self.t1, self.rest = t1, list(terms[1:])
        self.k1, self.g1, self.q1 = t1.k, t1.nlev, t1.q
        q = ZtZ.shape[0]
        self.q2 = q2 = q - self.q1
        k1, g1, q1 = self.k1, self.g1, self.q1
        Z = sp.csr_matrix(ZtZ)
        self.S1 = diag_blocks(Z[:q1, :q1], g1, k1)
        m = ZtW.shape[1]
        self.ZtW1 = np.ascontiguousarray(ZtW[:q1]).reshape(g1, k1, m)
        self.ZtW2 = np.ascontiguousarray(ZtW[q1:])
        self.Z22 = Z[q1:, q1:].toarray()
        self.scalar2 = all(t.k == 1 for t in self.rest)
        # trailing columns: term (index into rest), level-block id, coefficient index, block start
        kk = [t.k for t in self.rest]
        self.kmax2 = max(kk) if kk else 1
        term_c = np.concatenate([np.full(t.q, s) for s, t in enumerate(self.rest)]) if self.rest else np.zeros(0, int)
        jc = np.concatenate([np.tile(np.arange(t.k), t.nlev) for t in self.rest]) if self.rest else np.zeros(0, int)
        blk = np.concatenate([np.repeat(np.arange(t.nlev), t.k) + sum(r.nlev for r in self.rest[:s])
                              for s, t in enumerate(self.rest)]) if self.rest else np.zeros(0, int)
        self.term_c, self.jc = term_c.astype(np.int64), jc.astype(np.int64)
        nb2 = int(blk.max()) + 1 if blk.size else 0
        bstart = np.zeros(max(nb2, 1), dtype=np.int64)
        bsize = np.zeros(max(nb2, 1), dtype=np.int64)
        if blk.size:
            first = np.r_[0, np.flatnonzero(np.diff(blk)) + 1]
            bstart[blk[first]] = first
            bsize[blk[first]] = np.bincount(blk, minlength=nb2)
        # level-block pattern of A12: pairs (level of term 1, trailing level-block)
        Z12 = sp.coo_matrix(Z[:q1, q1:])
        keys = np.unique((Z12.row // k1).astype(np.int64) * max(nb2, 1) + blk[Z12.col]) if Z12.nnz else \
            np.zeros(0, np.int64)
        lev_p, blk_p = keys // max(nb2, 1), keys % max(nb2, 1)
        sizes = bsize[blk_p]
        # flat index f over (level, column) with whole trailing blocks, sorted by level then column
        nF = int(sizes.sum())
        self.nF = nF
        rep = np.repeat(np.arange(len(keys)), sizes)
        within = np.arange(nF) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        self.cols = (bstart[blk_p][rep] + within).astype(np.int64)            # trailing column of f
        self.lev = lev_p[rep].astype(np.int64)                                 # level of f
        self.fstart = np.searchsorted(self.lev, np.arange(g1 + 1))            # level pointers
        # values of Z12 on the pattern: D[i, f] = Z12[l k1 + i, cols[f]] (f of each nonzero by its pair)
        self.D = np.zeros((k1, nF))
        if Z12.nnz:
            kidx = np.searchsorted(keys, (Z12.row // k1).astype(np.int64) * max(nb2, 1) + blk[Z12.col])
            f_of = (np.cumsum(sizes) - sizes)[kidx] + jc[Z12.col]
            np.add.at(self.D, (Z12.row % k1, f_of), Z12.data)
        # partners within a trailing block: P[f, j'] = flat index of (same level, same block, coef j')
        jcf = self.jc[self.cols] if nF else np.zeros(0, np.int64)
        self.jcf = jcf
        self.termf = self.term_c[self.cols] if nF else np.zeros(0, np.int64)
        kf = np.array(kk, dtype=np.int64)[self.termf] if nF else np.zeros(0, np.int64)
        self.P = np.arange(nF)[:, None] - jcf[:, None] + np.arange(self.kmax2)[None, :]
        self.Pmask = np.arange(self.kmax2)[None, :] < kf[:, None]
        self.P = np.where(self.Pmask, self.P, np.arange(nF)[:, None])
        # CSR structure of a k1 g1 x q2 matrix with rows i-major (row i g1 + l), data = X.ravel() for X: k1 x nF
        counts = np.diff(self.fstart)
        rowptr = np.concatenate([[0], np.cumsum(np.tile(counts, k1))]).astype(np.int64)
        self._csr = (np.tile(self.cols, k1).astype(np.int32 if q2 < 2 ** 31 else np.int64), rowptr)
        # pairs of columns within a level
        cnt64 = counts.astype(np.int64)
        npair = int(np.sum(cnt64 ** 2))
        self.pairs = npair <= _PAIR_MAX
        # scalar path (k1 = 1, every trailing term scalar): W'W and the gradient's traces are linear in
        # one weight per level, through the fixed matrix of pair products D[f1] D[f2] (upper triangle)
        self.scalar = k1 == 1 and self.scalar2 and bool(nF) and self.pairs
        self.s1 = self.S1[:, 0, 0]
        # scalar path with a dense-ish off-diagonal block of moderate size (a fully crossed design):
        # keep Z12 dense and let BLAS form the level-weighted Gram matrix instead of the pairs
        self.D12 = None
        if self.scalar and g1 * q2 <= 4_000_000 and nF >= 0.1 * g1 * q2:
            self.D12 = np.zeros((g1, q2))
            self.D12[self.lev, self.cols] = self.D[0]
        if self.pairs and nF and self.D12 is None:
            f1, f2, lp = _level_pairs(self.fstart, cnt64, upper=self.scalar)
            if self.scalar:
                c1, c2 = self.cols[f1], self.cols[f2]
                self.Pmat = sp.csr_matrix((self.D[0, f1] * self.D[0, f2], (c1 * q2 + c2, lp)),
                                          shape=(q2 * q2, g1))
                # the adjoint reads the upper triangle of a symmetric M: off-diagonal pairs count twice
                self.PmatT2 = sp.csr_matrix((self.D[0, f1] * self.D[0, f2] * np.where(c1 == c2, 1.0, 2.0),
                                             (lp, c1 * q2 + c2)), shape=(g1, q2 * q2))
            else:
                self.pf1, self.pf2 = f1, f2
                c1, c2 = self.cols[f1], self.cols[f2]
                self.psidx = c1 * q2 + c2
        # second level: when the first trailing term is scalar and no level of term 1 meets two of its
        # levels, its block of the Schur complement stays diagonal and is eliminated the same way
        # (a MET: genotypes x environments under genotype-by-environment cells)
        self.n2 = self.rest[0].q if self.rest else 0
        self.split2 = bool(self.rest) and self.rest[0].k == 1 and len(self.rest) > 1 and self.q2 > 200
        if self.split2 and nF:
            if not self.pairs or self.D12 is not None:
                self.split2 = False
            else:
                n2 = self.n2
                both = (c1 < n2) & (c2 < n2) & (c1 != c2)
                z22 = sp.coo_matrix(Z[q1:q1 + n2, q1:q1 + n2])
                self.split2 = not np.any(both) and bool(np.all(z22.row == z22.col))
        # Z22 sparse (the products of g_times) and its upper triangle (added into the scalar path's K)
        self.Z22s = sp.csr_matrix(Z[q1:, q1:])
        zu = sp.triu(self.Z22s).tocoo()
        zu.sum_duplicates()
        self._z22u = (zu.row.astype(np.int64), zu.col.astype(np.int64), zu.data)
        # scalar path with a diagonal first trailing block (split2): the trailing block is kept as
        # [[diag, C], [C', E]] (n2 + ne), never dense q2 x q2 per evaluation
        self.struct = bool(self.use_struct and self.scalar and self.split2 and self.D12 is None)
        if self.struct:
            self._init_struct(f1, f2, lp)

    def _init_struct(self, f1: np.ndarray, f2: np.ndarray, lp: np.ndarray) -> None:
        """Pair products keyed by their distinct (column, column) positions, split by block (split2)."""
        q2, n2, g1 = self.q2, self.n2, self.g1
        c1, c2 = self.cols[f1], self.cols[f2]
        keys, inv = np.unique(c1 * q2 + c2, return_inverse=True)
        vals = self.D[0, f1] * self.D[0, f2]
        nu = len(keys)
        self.Pu = sp.csr_matrix((vals, (inv, lp)), shape=(nu, g1))
        self.PuT2 = sp.csr_matrix((vals * np.where(c1 == c2, 1.0, 2.0), (lp, inv)), shape=(g1, nu))
        self.keys = keys
        k1, k2 = keys // q2, keys % q2
        gg, ge = k2 < n2, (k1 < n2) & (k2 >= n2)
        ee = k1 >= n2
        self._kg = (np.flatnonzero(gg), k1[gg])
        self._kc = (np.flatnonzero(ge), k1[ge], k2[ge] - n2)
        self._ke = (np.flatnonzero(ee), k1[ee] - n2, k2[ee] - n2)
        Z22 = self.Z22
        self.zd = np.diag(Z22)[:n2].copy()
        self.Zc = Z22[:n2, n2:].copy()
        self.Ze = Z22[n2:, n2:].copy()
        del self.Pmat, self.PmatT2

    # ------------------------------------------------------------------ per-θ pieces
    def pair_gram(self, w: np.ndarray) -> np.ndarray:
        """Scalar path: ``sum_l w_l D_l D_l'`` as a dense symmetric q2 x q2 matrix."""
        q2 = self.q2
        if self.D12 is not None:
            return self.D12.T @ (w[:, None] * self.D12)
        out = self._upper_pairs(w)
        d = np.diag(out).copy()
        out += out.T
        out[np.diag_indices(q2)] = d
        return out

    def pair_trace(self, M: np.ndarray) -> np.ndarray:
        """Scalar path: per level ``D_l' M D_l`` for a symmetric q2 x q2 M (the adjoint of :meth:`pair_gram`)."""
        if self.D12 is not None:
            return np.einsum("ij,ij->i", self.D12 @ M, self.D12)
        if self.struct:
            return self.PuT2 @ np.ascontiguousarray(M).ravel()[self.keys]
        return self.PmatT2 @ np.ascontiguousarray(M).ravel()

    def _upper_pairs(self, w: np.ndarray) -> np.ndarray:
        """``sum_l w_l D_l D_l'`` on its upper triangle (a new dense q2 x q2 array; zero below)."""
        q2 = self.q2
        if self.struct:
            out = np.zeros(q2 * q2)
            out[self.keys] = self.Pu @ w
            return out.reshape(q2, q2)
        return (self.Pmat @ w).reshape(q2, q2)

    def gram_complement(self, w: np.ndarray) -> np.ndarray:
        """Scalar path: ``Z22 - sum_l w_l D_l D_l'`` (dense, symmetric), with one pass over the upper pairs."""
        q2 = self.q2
        if self.D12 is not None:
            return self.Z22 - self.pair_gram(w)
        U = self._upper_pairs(w)
        B = self.Z22 - U
        B -= U.T
        B[np.diag_indices(q2)] += np.diag(U)
        return B

    def _csr_of(self, X: np.ndarray) -> sp.csr_matrix:
        ind, ptr = self._csr
        M = sp.csr_matrix((X.ravel(), ind, ptr), shape=(self.k1 * self.g1, self.q2))
        M.has_sorted_indices = True
        return M

    def _right(self, X: np.ndarray, theta: np.ndarray, d2: np.ndarray | None) -> np.ndarray:
        """Values of ``X Λ2`` on the pattern (X: k1 x nF values of a q1 x q2 matrix)."""
        if self.nF == 0:
            return X.copy()
        if d2 is not None:
            return X * d2[self.cols][None, :]
        lams = np.zeros((len(self.rest), self.kmax2, self.kmax2))
        for s, t in enumerate(self.rest):
            lams[s, :t.k, :t.k] = t.lam(theta[t.theta_slice])
        w = lams[self.termf[:, None], np.arange(self.kmax2)[None, :], self.jcf[:, None]] * self.Pmask
        out = np.zeros_like(X)
        for j in range(self.kmax2):
            out += X[:, self.P[:, j]] * w[:, j][None, :]
        return out

    def _left(self, M: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Values of ``blockdiag(M_l) X`` (M: g1 x k1 x k1 per level, or k1 x k1 for all levels)."""
        if self.nF == 0:
            return X.copy()
        if M.ndim == 2:
            return M @ X
        if self.k1 == 1:
            return M[self.lev, 0, 0][None, :] * X
        return np.einsum("fij,jf->if", M[self.lev], X)

    def _lam2(self, theta):
        if self.scalar2:
            d2 = np.concatenate([np.full(t.nlev, theta[t.theta_slice][0]) for t in self.rest]) if self.rest \
                else np.zeros(0)
            return None, d2
        return sp.csr_matrix(lambda_matrix(self.rest, theta)), None

    def _t2(self, Lam2, d2, B: np.ndarray) -> np.ndarray:
        """``Λ2' B`` for a dense ``q2 x m`` B."""
        return d2[:, None] * B if d2 is not None else np.asarray(Lam2.T @ B)

    def _m2(self, Lam2, d2, B: np.ndarray) -> np.ndarray:
        """``Λ2 B``."""
        return d2[:, None] * B if d2 is not None else np.asarray(Lam2 @ B)

    def factor(self, theta: np.ndarray) -> BlockedFactor:
        """The blocked Cholesky factor at θ (raises ``LinAlgError`` when not positive definite)."""
        theta = np.asarray(theta, dtype=float)
        k1 = self.k1
        lam1 = self.t1.lam(theta[self.t1.theta_slice])
        Lam2, d2 = self._lam2(theta)
        T = lam1.T @ self.S1 @ lam1 + np.eye(k1)
        Lc = chol_small(T)
        LD = lam1.T @ self.D
        W = self._left(_inv_small(Lc), self._right(LD, theta, d2))
        Wm = self._csr_of(W)
        B1 = lam1.T @ self.ZtW1
        R1 = forward_small(Lc, B1)
        ldL2 = 2.0 * float(np.sum(np.log(np.diagonal(Lc, axis1=1, axis2=2))))
        RtR = np.einsum("lim,lin->mn", R1, R1)
        Pm = None
        if self.q2:
            if self.scalar:
                # A22 - W'W = d2 (Z22 - sum_l (λ1^2/T_l) D_l D_l') d2 + I
                t22 = self._scalar22(lam1[0, 0] ** 2 / T[:, 0, 0], d2)
                Pm = t22.get("Pm")
            else:
                if d2 is not None:
                    A22 = (d2[:, None] * self.Z22) * d2[None, :]
                else:
                    A22 = np.asarray(Lam2.T @ np.asarray(Lam2.T @ self.Z22).T)
                A22[np.diag_indices_from(A22)] += 1.0
                if self.nF:
                    A22 -= self._wtw(W, Wm)
                L22 = self._chol22(A22)
                t22 = {"kind": "plain", "L": L22, "ld": 2.0 * float(np.sum(np.log(np.diag(L22))))}
            R1r = np.ascontiguousarray(R1.transpose(1, 0, 2)).reshape(k1 * self.g1, -1)
            rhs = self._t2(Lam2, d2, self.ZtW2)
            if self.nF:
                rhs = rhs - np.asarray(Wm.T @ R1r)
            R2 = self._fwd22(t22, rhs)
            ldL2 += t22["ld"]
            RtR = RtR + R2.T @ R2
        else:
            t22 = {"kind": "plain", "L": np.zeros((0, 0)), "ld": 0.0}
            R2 = np.zeros((0, self.ZtW2.shape[1]))
        return BlockedFactor(theta, lam1, Lam2, d2, Lc, LD, W, Wm, t22, R1, R2, ldL2, RtR, Pm)

    def _scalar22(self, w: np.ndarray, d2: np.ndarray) -> dict:
        """Factor of the scalar path's trailing block ``S = d2 Pm d2 + I``, ``Pm = Z22 - sum_l w_l D_l D_l'``.

        Three kinds (each with ``ld = log|S|``):

        * ``struct`` (split2): ``S = [[diag(Sg), C], [C', E]]`` kept in blocks; ``sg = sqrt(Sg)``,
          ``Xc = C / sg``, ``LE = chol(E - Xc'Xc)``: O(n2 ne^2), nothing q2 x q2;
        * ``scaled`` (every scale >= ``_SCALED_MIN``): ``S = d2 K d2`` with ``K = Pm + d2^-2``, so
          ``chol(S) = d2 chol(K)`` (row scaling ``r = d2``); K is assembled in place on the upper
          triangle of the pair products and factored without a copy;
        * ``plain``: ``chol(S)`` of the explicitly scaled matrix (a zero or tiny scale), Pm kept.
        """
        q2 = self.q2
        if self.struct:
            return self._struct22(w, d2)
        if float(d2.min()) >= _SCALED_MIN:
            if self.D12 is not None:
                K = self.gram_complement(w)
            else:
                K = self._upper_pairs(w)
                np.negative(K, out=K)
                zr, zc, zv = self._z22u
                K[zr, zc] += zv
            K[np.diag_indices(q2)] += 1.0 / (d2 * d2)
            with _threads.large(q2):
                L, info = sla.lapack.dpotrf(K.T, lower=1, clean=0, overwrite_a=1)
            if info != 0:
                raise np.linalg.LinAlgError("not positive definite")
            ld = 2.0 * float(np.sum(np.log(np.diag(L)))) + 2.0 * float(np.sum(np.log(d2)))
            return {"kind": "scaled", "L": L, "r": d2, "ld": ld}
        Pm = self.gram_complement(w)
        A22 = Pm * d2[:, None]
        A22 *= d2[None, :]
        A22[np.diag_indices_from(A22)] += 1.0
        L = self._chol22(A22)
        return {"kind": "plain", "L": L, "Pm": Pm, "ld": 2.0 * float(np.sum(np.log(np.diag(L))))}

    def _struct22(self, w: np.ndarray, d2: np.ndarray) -> dict:
        """The ``struct`` kind of :meth:`_scalar22`."""
        n2 = self.n2
        pd, Pc, Pe = self._struct_blocks(self.Pu @ w, (self.zd, self.Zc, self.Ze))
        g, e = d2[:n2], d2[n2:]
        Sg = g * g * pd + 1.0
        if np.any(Sg <= 0) or not np.all(np.isfinite(Sg)):
            raise np.linalg.LinAlgError("not positive definite")
        sg = np.sqrt(Sg)
        Xc = Pc * (g / sg)[:, None] * e[None, :]
        SE = Pe * e[:, None] * e[None, :]
        SE[np.diag_indices_from(SE)] += 1.0
        SE -= Xc.T @ Xc
        LE = sla.cholesky(SE, lower=True, check_finite=False)
        ld = 2.0 * float(np.sum(np.log(sg))) + 2.0 * float(np.sum(np.log(np.diag(LE))))
        return {"kind": "struct", "sg": sg, "Xc": Xc, "LE": LE, "pd": pd, "Pc": Pc, "Pe": Pe, "ld": ld}

    def _fwd22(self, t: dict, B: np.ndarray) -> np.ndarray:
        """``L22^-1 B`` for the trailing factor ``t`` (B: q2 x m)."""
        kind = t["kind"]
        if kind == "struct":
            n2 = self.n2
            yg = B[:n2] / t["sg"][:, None]
            ye = sla.solve_triangular(t["LE"], B[n2:] - t["Xc"].T @ yg, lower=True, check_finite=False)
            return np.vstack([yg, ye])
        if kind == "scaled":
            B = B / t["r"][:, None]
        return sla.solve_triangular(t["L"], B, lower=True, check_finite=False)

    def _bwd22(self, t: dict, B: np.ndarray) -> np.ndarray:
        """``L22^-T B`` for the trailing factor ``t`` (B: q2 x m)."""
        kind = t["kind"]
        if kind == "struct":
            n2 = self.n2
            xe = sla.solve_triangular(t["LE"], B[n2:], lower=True, trans="T", check_finite=False)
            xg = (B[:n2] - t["Xc"] @ xe) / t["sg"][:, None]
            return np.vstack([xg, xe])
        X = sla.solve_triangular(t["L"], B, lower=True, trans="T", check_finite=False)
        return X / t["r"][:, None] if kind == "scaled" else X

    def _wtw(self, W: np.ndarray, Wm: sp.csr_matrix) -> np.ndarray:
        """Dense ``W'W`` (q2 x q2) from the pairs of columns within each level (or a sparse product)."""
        if not self.pairs:
            return (Wm.T @ Wm).toarray()
        w = W[0, self.pf1] * W[0, self.pf2]
        for i in range(1, self.k1):
            w += W[i, self.pf1] * W[i, self.pf2]
        return np.bincount(self.psidx, weights=w, minlength=self.q2 * self.q2).reshape(self.q2, self.q2)

    # ------------------------------------------------------------------ solves with the factor
    def back(self, fac: BlockedFactor, Y1: np.ndarray, Y2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``L' x = [Y1; Y2]`` (Y1: g1 x k1 x m, Y2: q2 x m) -> (x1, x2)."""
        if self.q2:
            x2 = self._bwd22(fac.t22, Y2)
            if self.nF:
                Wx = np.asarray(fac.Wm @ x2).reshape(self.k1, self.g1, -1).transpose(1, 0, 2)
                Y1 = Y1 - Wx
        else:
            x2 = Y2
        return back_small(fac.Lc, Y1), x2

    def inv_solve(self, fac: BlockedFactor, V: np.ndarray) -> np.ndarray:
        """``A^-1 V`` for a dense ``q x m`` V (lme4 row order), by a forward and a back substitution."""
        k1, g1, q1 = self.k1, self.g1, self.q1
        V = np.asarray(V, dtype=float).reshape(V.shape[0], -1)
        Y1 = forward_small(fac.Lc, V[:q1].reshape(g1, k1, -1))
        Y2 = V[q1:]
        if self.q2:
            if self.nF:
                Y1r = np.ascontiguousarray(Y1.transpose(1, 0, 2)).reshape(k1 * g1, -1)
                Y2 = Y2 - np.asarray(fac.Wm.T @ Y1r)
            Y2 = self._fwd22(fac.t22, Y2)
        X1, X2 = self.back(fac, Y1, Y2)
        return np.vstack([X1.reshape(q1, -1), X2])

    def inverse_traces(self, fac: BlockedFactor) -> dict:
        """Scalar path: ``diag(A^-1)`` and the squared Frobenius norm of every term-by-term block of ``A^-1``.

        With ``V = A11^-1 A12`` (sparse), ``A^-1 = [[diag(1/T) + V S^-1 V', -V S^-1], [-S^-1 V', S^-1]]``;
        with ``G = V'V`` (q2 x q2, from the pair matrix), ``||V S^-1 V'||^2 = tr(S^-1 G S^-1 G)`` and the
        column norms of ``V S^-1`` are the diagonal of ``S^-1 G S^-1``: nothing of order q1 x q1 or q1 x q2.
        """
        if not self.scalar:
            raise ValueError("inverse_traces needs the scalar path")
        if self.struct:
            return self._struct_inverse_traces(fac)
        lam, T, d2 = fac.lam1[0, 0], fac.Lc[:, 0, 0] ** 2, fac.d2
        Sinv = self.sinv(fac)
        qv = self.pair_trace((d2[:, None] * Sinv) * d2[None, :])
        vsv = lam * lam * qv / T ** 2                                # diag of V S^-1 V'
        G = (d2[:, None] * self.pair_gram(lam * lam / T ** 2)) * d2[None, :]
        with _threads.large(self.q2):
            SG = Sinv @ G
        SGS = np.einsum("ij,ji->i", SG, Sinv)                        # diag(S^-1 G S^-1): column norms of V S^-1
        n11 = float(np.sum(1.0 / T ** 2) + 2.0 * np.sum(vsv / T) + np.einsum("ij,ji->", SG, SG))
        bounds = [0]
        for t in self.rest:
            bounds.append(bounds[-1] + t.q)
        nt = 1 + len(self.rest)
        norms = np.zeros((nt, nt))
        norms[0, 0] = n11
        for a in range(len(self.rest)):
            sa = slice(bounds[a], bounds[a + 1])
            norms[0, a + 1] = norms[a + 1, 0] = float(np.sum(SGS[sa]))
            for c in range(len(self.rest)):
                sc = slice(bounds[c], bounds[c + 1])
                norms[a + 1, c + 1] = float(np.einsum("ij,ij->", Sinv[sa, sc], Sinv[sa, sc]))
        diag = np.concatenate([1.0 / T + vsv, np.diag(Sinv)])
        return {"diag": diag, "norms": norms}

    def _struct_inverse_traces(self, fac: BlockedFactor) -> dict:
        """:meth:`inverse_traces` of the ``struct`` kind, in O(n2 ne^2): with ``S^-1 = P + Z Z'``
        (``P = diag(1/Sg, 0)``) and ``G = [[diag(gd), Gc], [Gc', Ge]]``, ``S^-1 G = D0 + Z Y``
        (``D0 = [[diag(gd/Sg), Gc/Sg], [0, 0]]``, ``Y = Z'G``): every trace is of ne x ne products."""
        n2, ne = self.n2, self.q2 - self.n2
        t, d2 = fac.t22, fac.d2
        lam, T = fac.lam1[0, 0], fac.Lc[:, 0, 0] ** 2
        Z = self._struct_z(t)
        Zg, Ze = Z[:n2], Z[n2:]
        Sg = t["sg"] ** 2
        g, e = d2[:n2], d2[n2:]
        qv = self.PuT2 @ self._struct_mv(t, d2, Z)
        vsv = lam * lam * qv / T ** 2
        gd, Gc, Ge = self._struct_blocks(self.Pu @ (lam * lam / T ** 2))
        gd, Gc, Ge = gd * g * g, Gc * g[:, None] * e[None, :], Ge * e[:, None] * e[None, :]
        a = gd / Sg
        B = Gc / Sg[:, None]
        Yg = Zg.T * gd[None, :] + Ze.T @ Gc.T                       # Y = Z'G, gen columns (ne x n2)
        Ye = Zg.T @ Gc + Ze.T @ Ge                                   # env columns (ne x ne)
        YZ = Yg @ Zg + Ye @ Ze
        trSG2 = float(np.sum(a * a) + 2.0 * np.trace((Yg * a[None, :]) @ Zg + (Yg @ B) @ Ze)
                      + np.einsum("ij,ji->", YZ, YZ))
        D0Z = a[:, None] * Zg + B @ Ze                               # gen rows of D0 Z
        ZYZ = Z @ YZ
        SGS = np.einsum("ij,ij->i", ZYZ, Z)                          # diag(S^-1 G S^-1)
        SGS[:n2] += a / Sg + np.einsum("ij,ij->i", D0Z, Zg) + np.einsum("ij,ji->i", Zg, Yg) / Sg
        n11 = float(np.sum(1.0 / T ** 2) + 2.0 * np.sum(vsv / T) + trSG2)
        bounds = [0]
        for term in self.rest:
            bounds.append(bounds[-1] + term.q)
        nt = 1 + len(self.rest)
        norms = np.zeros((nt, nt))
        norms[0, 0] = n11
        # S^-1 blocks: gen-gen diag(1/Sg) + Zg Zg', others Z_a Z_c' (the rest lies in the ne part)
        ZZg = Zg.T @ Zg
        for ia in range(len(self.rest)):
            sa = slice(bounds[ia], bounds[ia + 1])
            norms[0, ia + 1] = norms[ia + 1, 0] = float(np.sum(SGS[sa]))
            for ic in range(len(self.rest)):
                sc = slice(bounds[ic], bounds[ic + 1])
                if ia == 0 and ic == 0:
                    val = np.sum(1.0 / Sg ** 2) + 2.0 * np.sum(np.einsum("ij,ij->i", Zg, Zg) / Sg) \
                        + np.einsum("ij,ij->", ZZg, ZZg)
                elif ia == 0 or ic == 0:
                    Zo = Z[sc] if ia == 0 else Z[sa]
                    val = np.einsum("ij,ij->", ZZg, Zo.T @ Zo)
                else:
                    blk = Z[sa] @ Z[sc].T
                    val = np.einsum("ij,ij->", blk, blk)
                norms[ia + 1, ic + 1] = float(val)
        diag = np.concatenate([1.0 / T + vsv, 1.0 / Sg + np.einsum("ij,ij->i", Zg, Zg),
                               np.einsum("ij,ij->i", Ze, Ze)])
        return {"diag": diag, "norms": norms}

    def selected_inverse(self, fac: BlockedFactor) -> dict:
        """``A^-1`` on the pattern of ``Z'Z``: level blocks of the first term, values on A12's pattern, dense S^-1."""
        k1, g1 = self.k1, self.g1
        Lci = _inv_small(fac.Lc)
        C11 = np.swapaxes(Lci, 1, 2) @ Lci                      # (A11)^-1 level blocks
        out = {"H11": C11, "H12": np.zeros((k1, self.nF)), "H22": np.zeros((0, 0))}
        if not self.q2:
            return out
        if self.scalar:
            Sinv = self.sinv(fac)
            lam, T, d2 = fac.lam1[0, 0], fac.Lc[:, 0, 0] ** 2, fac.d2
            if self.struct:
                qv = self.PuT2 @ self._struct_mv(fac.t22, d2, self._struct_z(fac.t22))
            else:
                qv = self.pair_trace((d2[:, None] * Sinv) * d2[None, :])
            out.update(H22=Sinv, H12=None, H11=(1.0 / T + lam * lam * qv / T ** 2)[:, None, None])
            return out
        Sinv = self.sinv(fac)
        if self.nF and self.pairs:
            sv = Sinv.ravel()[self.psidx]
        out["H22"] = Sinv
        if not self.nF:
            return out
        V = self._left(np.swapaxes(Lci, 1, 2), fac.W)           # L11^-T W = A11^-1 A12 values
        if self.pairs:
            H12 = np.empty((k1, self.nF))
            for i in range(k1):
                H12[i] = -np.bincount(self.pf2, weights=V[i, self.pf1] * sv, minlength=self.nF)
        else:
            H12 = -self._rows_times_dense(V, Sinv)
        out["H12"] = H12
        # diagonal blocks: C11 + V_l S^-1 V_l' = C11 - sum_j H12[i, f] V[i', f] over the level's f
        H11 = C11.copy()
        for i in range(k1):
            for j in range(k1):
                H11[:, i, j] -= np.bincount(self.lev, weights=H12[i] * V[j], minlength=g1)
        out["H11"] = H11
        return out

    def _rows_times_dense(self, V: np.ndarray, Sinv: np.ndarray, chunk: int = 4_000_000) -> np.ndarray:
        """Values of ``V S^-1`` on the pattern, by row chunks (when the pairs within rows are too many)."""
        Vm = self._csr_of(V)
        out = np.empty(Vm.nnz)
        n = Vm.shape[0]
        step = max(1, chunk // max(self.q2, 1))
        for a in range(0, n, step):
            blk = Vm[a:a + step]
            P = np.asarray(blk @ Sinv)
            r = np.repeat(np.arange(blk.shape[0]), np.diff(blk.indptr))
            out[Vm.indptr[a]:Vm.indptr[min(a + step, n)]] = P[r, blk.indices]
        return out.reshape(self.k1, self.nF)

    # ------------------------------------------------------------------ products with G = Z'Z Λ
    def g_times(self, fac: BlockedFactor, Y1: np.ndarray, Y2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``Z'Z Λ [Y1; Y2]`` (Y1: g1 x k1 x m, Y2: q2 x m) -> (rows of term 1, trailing rows)."""
        k1, g1 = self.k1, self.g1
        LY1 = fac.lam1 @ Y1
        top = self.S1 @ LY1
        LY2 = self._m2(fac.Lam2, fac.d2, Y2) if self.q2 else Y2
        if self.nF:
            Zm = self._csr_of(self.D)                              # Z12 values, rows i-major
            top = top + np.asarray(Zm @ LY2).reshape(k1, g1, -1).transpose(1, 0, 2)
            flat = np.ascontiguousarray(LY1.transpose(1, 0, 2)).reshape(k1 * g1, -1)
            bot = np.asarray(Zm.T @ flat)
        else:
            bot = np.zeros((self.q2, Y1.shape[2]))
        bot = bot + np.asarray(self.Z22s @ LY2) if self.q2 else bot
        return top, bot

    def sinv(self, fac: BlockedFactor) -> np.ndarray:
        """Dense ``S^-1`` of the trailing Schur complement."""
        t = fac.t22
        if t["kind"] == "struct":
            n2 = self.n2
            E = np.zeros((self.q2, self.q2 - n2))
            E[n2:] = np.eye(self.q2 - n2)
            Zs = self._bwd22(t, E)                                  # S^-1 = diag(1/Sg, 0) + Zs Zs'
            Sinv = Zs @ Zs.T
            Sinv[np.diag_indices(n2)] += 1.0 / t["sg"] ** 2
            return Sinv
        if t["kind"] == "scaled":
            with _threads.large(self.q2):
                Ki, info = sla.lapack.dpotri(t["L"], lower=1)
            Ki = np.tril(Ki)                                        # (the other triangle is not clean)
            Ki += Ki.T
            Ki[np.diag_indices_from(Ki)] *= 0.5
            r = 1.0 / t["r"]
            Ki *= r[:, None]
            Ki *= r[None, :]
            return Ki
        if self.split2:
            n2 = self.n2
            L = fac.L22
            lg = np.diag(L)[:n2].copy()
            LEi = sla.solve_triangular(L[n2:, n2:], np.eye(self.q2 - n2), lower=True, check_finite=False)
            L21 = -LEi @ (L[n2:, :n2] / lg[None, :])               # block (2,1) of L22^-1
            Sinv = np.empty((self.q2, self.q2))
            Sinv[:n2, :n2] = L21.T @ L21
            Sinv[np.diag_indices(n2)] += 1.0 / lg ** 2
            Sinv[:n2, n2:] = L21.T @ LEi
            Sinv[n2:, :n2] = Sinv[:n2, n2:].T
            Sinv[n2:, n2:] = LEi.T @ LEi
            return Sinv
        with _threads.large(self.q2):
            Sinv, info = sla.lapack.dpotri(fac.L22, lower=1)
        Sinv += Sinv.T
        Sinv[np.diag_indices_from(Sinv)] *= 0.5
        return Sinv

    def _chol22(self, A22: np.ndarray) -> np.ndarray:
        """Cholesky factor of the trailing Schur complement (two-level when its first block is diagonal)."""
        if not self.split2:
            with _threads.large(self.q2):
                return sla.cholesky(A22, lower=True, check_finite=False)
        n2 = self.n2
        dg = np.diag(A22)[:n2]
        if np.any(dg <= 0) or not np.all(np.isfinite(dg)):
            raise np.linalg.LinAlgError("not positive definite")
        lg = np.sqrt(dg)
        X = A22[:n2, n2:] / lg[:, None]
        LE = sla.cholesky(A22[n2:, n2:] - X.T @ X, lower=True, check_finite=False)
        L = np.zeros_like(A22)
        L[np.diag_indices(n2)] = lg
        L[n2:, :n2] = X.T
        L[n2:, n2:] = LE
        return L

    def dense_inverse(self, fac: BlockedFactor) -> np.ndarray:
        """The whole ``A^-1`` (q x q, lme4 order) from the blocked factor: ``A11^-1 + V S^-1 V'``, ``-V S^-1``, ``S^-1``.

        ``V = A11^-1 A12`` stays sparse, so this costs ``nnz(V) (q1 + q2)`` plus the trailing inverse,
        not a dense ``q^3`` factorization (for Kenward-Roger's traces on crossed fits).
        """
        k1, g1, q1, q2 = self.k1, self.g1, self.q1, self.q2
        Lci = _inv_small(fac.Lc)
        C11 = np.swapaxes(Lci, 1, 2) @ Lci
        out = np.zeros((q1 + q2, q1 + q2))
        idx = np.arange(g1)[:, None] * k1 + np.arange(k1)[None, :]
        out[idx[:, :, None], idx[:, None, :]] = C11
        if not q2:
            return out
        Sinv = self.sinv(fac)
        out[q1:, q1:] = Sinv
        if not self.nF:
            return out
        V = self._csr_of(self._left(np.swapaxes(Lci, 1, 2), fac.W))   # rows i-major (i g1 + l)
        if k1 > 1:
            perm = (np.arange(k1)[:, None] * g1 + np.arange(g1)[None, :]).T.ravel()  # lme4 row l k1 + i
            V = V[perm]
        VS = np.asarray(V @ Sinv)
        out[:q1, q1:] = -VS
        VSt = np.ascontiguousarray(VS.T)
        out[q1:, :q1] = -VSt
        out[:q1, :q1] += np.asarray(V @ VSt)
        return out

    def logdet_grad_scalar(self, fac: BlockedFactor) -> list[np.ndarray]:
        """Scalar path of :meth:`logdet_grad_blocks`: the traces from ``S^-1`` and the fixed pair matrix.

        Term 1 needs ``qv_l = D_l' (d2 S^-1 d2) D_l`` on the pattern of the pair products, trailing
        column j needs ``(Pm d2 S^-1)_jj``.  ``scaled``: ``d2 S^-1 d2 = K^-1`` (one ``dpotri``, read on
        its triangle) and ``(Pm d2 S^-1)_jj = 1/d2_j - (K^-1)_jj / d2_j^3``; ``struct``: from
        ``S^-1 = diag(1/Sg, 0) + Zs Zs'`` (Zs: q2 x ne) on the pattern only.
        """
        lam = fac.lam1[0, 0]
        T = fac.Lc[:, 0, 0] ** 2
        d2 = fac.d2
        t = fac.t22
        if t["kind"] == "struct":
            qv, col = self._struct_traces(t, d2)
        elif t["kind"] == "scaled":
            with _threads.large(self.q2):
                Ki, info = sla.lapack.dpotri(t["L"], lower=1)        # lower triangle (Fortran order)
            M = Ki.T                                                  # its upper triangle, C order
            if self.D12 is not None:                                 # both triangles needed
                M = np.tril(Ki)
                M = M + M.T
                M[np.diag_indices_from(M)] *= 0.5
            qv = self.pair_trace(M)
            col = 1.0 / d2 - np.diag(Ki) / d2 ** 3
        else:
            Sinv = self.sinv(fac)
            dS = d2[:, None] * Sinv
            qv = self.pair_trace(dS * d2[None, :])                    # D_l' (d2 S^-1 d2) D_l
            col = np.einsum("ij,ij->j", dS, fac.Pm)
        N1 = float(np.sum(self.s1 * lam * (1.0 / T + lam * lam * qv / T ** 2) - lam * qv / T))
        out = [np.array([[N1]])]
        o = 0
        for term in self.rest:
            out.append(np.array([[float(np.sum(col[o:o + term.q]))]]))
            o += term.q
        return out

    def _struct_z(self, t: dict) -> np.ndarray:
        """``struct`` kind: ``Zs = L22^-T [0; I]`` (q2 x ne), so that ``S^-1 = diag(1/Sg, 0) + Zs Zs'``."""
        n2, ne = self.n2, self.q2 - self.n2
        E = np.zeros((self.q2, ne))
        E[n2:] = np.eye(ne)
        return self._bwd22(t, E)

    def _struct_mv(self, t: dict, d2: np.ndarray, Zs: np.ndarray) -> np.ndarray:
        """``struct`` kind: ``d2 S^-1 d2`` at the keys of the pair products."""
        n2 = self.n2
        Zg, Ze = Zs[:n2], Zs[n2:]
        g, e = d2[:n2], d2[n2:]
        ig, kg = self._kg
        ic, cr, cc = self._kc
        ie, er, ec = self._ke
        Mv = np.empty(len(self.keys))
        Mv[ig] = g[kg] ** 2 * (1.0 / t["sg"][kg] ** 2 + np.einsum("ij,ij->i", Zg[kg], Zg[kg]))
        Mv[ic] = g[cr] * e[cc] * np.einsum("ij,ij->i", Zg[cr], Ze[cc])
        Mv[ie] = e[er] * e[ec] * np.einsum("ij,ij->i", Ze[er], Ze[ec])
        return Mv

    def _struct_blocks(self, u: np.ndarray, base: tuple | None = None) -> tuple:
        """``struct`` kind: values at the keys -> (diagonal n2, n2 x ne, symmetric ne x ne) blocks
        (subtracted from ``base`` = (zd, Zc, Ze) when given, else from zero)."""
        n2, ne = self.n2, self.q2 - self.n2
        ig, kg = self._kg
        ic, cr, cc = self._kc
        ie, er, ec = self._ke
        if base is None:
            dg, C, E, sgn = np.zeros(n2), np.zeros((n2, ne)), np.zeros((ne, ne)), 1.0
        else:
            dg, C, E, sgn = base[0].copy(), base[1].copy(), base[2].copy(), -1.0
        dg[kg] += sgn * u[ig]
        C[cr, cc] += sgn * u[ic]
        E[er, ec] += sgn * u[ie]
        off = er != ec
        E[ec[off], er[off]] += sgn * u[ie[off]]
        return dg, C, E

    def _struct_traces(self, t: dict, d2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``struct`` kind: ``qv`` per level of term 1 and ``(Pm d2 S^-1)_jj`` per trailing column."""
        n2 = self.n2
        Zs = self._struct_z(t)
        Zg, Ze = Zs[:n2], Zs[n2:]
        g, e = d2[:n2], d2[n2:]
        qv = self.PuT2 @ self._struct_mv(t, d2, Zs)
        dZg, dZe = g[:, None] * Zg, e[:, None] * Ze
        Pc = t["Pc"]
        PZg = t["pd"][:, None] * dZg + Pc @ dZe                      # Pm (d2 Zs)
        PZe = Pc.T @ dZg + t["Pe"] @ dZe
        col = np.concatenate([np.einsum("ij,ij->i", PZg, Zg) + t["pd"] * g / t["sg"] ** 2,
                              np.einsum("ij,ij->i", PZe, Ze)])
        return qv, col

    def logdet_grad_blocks(self, fac: BlockedFactor, H: dict) -> list[np.ndarray]:
        """Per term ``N_t = sum_l G_l H_l'`` (``G = Z'ZΛ``, H the selected inverse): d log|A| = 2 <dΛ, N_t>."""
        k1 = self.k1
        G11 = self.S1 @ fac.lam1
        N1 = np.einsum("lij,lkj->ik", G11, H["H11"])
        out = []
        if self.nF:
            G12 = self._right(self.D, fac.theta, fac.d2)
            N1 = N1 + G12 @ H["H12"].T
        out.append(N1)
        if not self.rest:
            return out
        # trailing terms: from A12's pattern (G21 = (Λ1'Z12)') and from the dense trailing block
        G22 = self.Z22 * fac.d2[None, :] if fac.d2 is not None else np.asarray((fac.Lam2.T @ self.Z22.T).T)
        km = self.kmax2
        acc = np.zeros((len(self.rest), km, km))
        if self.nF:
            for j in range(km):
                vals = np.sum(fac.LD * H["H12"][:, self.P[:, j]], axis=0) * self.Pmask[:, j]
                np.add.at(acc, (self.termf, self.jcf, j), vals)
        o = 0
        for s, t in enumerate(self.rest):
            rows = slice(o, o + t.q)
            Gs = G22[rows].reshape(t.nlev, t.k, -1)
            Hs = H["H22"][rows].reshape(t.nlev, t.k, -1)
            out.append(acc[s, :t.k, :t.k] + np.einsum("mic,mjc->ij", Gs, Hs))
            o += t.q
        return out

    def split_rows(self, top: np.ndarray, bot: np.ndarray) -> list[np.ndarray]:
        """Per term, its rows as ``nlev x k x m`` (top: term 1 as g1 x k1 x m; bot: trailing q2 x m)."""
        out = [top]
        o = 0
        for t in self.rest:
            out.append(bot[o:o + t.q].reshape(t.nlev, t.k, -1))
            o += t.q
        return out
