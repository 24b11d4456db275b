"""Profiled REML/ML criterion as a pure function of theta, from the cross-products kept on the model.

Two kernels, chosen by block structure, both with per-evaluation cost independent of n:

* :class:`BlockKernel` -- every random term on one grouping factor: per-level K x K blocks,
  a batched numpy Cholesky and a (p+1) x (p+1) downdate (see ``shared/notes/fast-lmm-and-kr.md``).
* :class:`GeneralKernel` -- several grouping factors (nested or crossed): the q x q system
  ``Lambda' Z'Z Lambda + I``, dense Cholesky for q <= 3000, scipy sparse LU beyond.

Both work in the internal (standardised) coordinates of :mod:`vcomp.mixed.crossprod` and
return lme4's profiled criterion (``REMLcrit`` / deviance) of the internal problem and,
at the optimum, beta, sigma, Var(beta), the conditional modes and their conditional
variances.  Each term's Λ comes from the term itself (:meth:`ReTerm.lam`).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .crossprod import CrossProducts
from .reterm import ReTerm, lambda_matrix

DENSE_MAX_Q = 3000
_LOG2PI = np.log(2 * np.pi)


def _profiled(ldL2: float, M: np.ndarray, n: int, p: int, reml: bool) -> tuple[float, dict]:
    """Criterion from log|L|^2 and the downdated [X y]'[X y] (shared by both kernels)."""
    try:
        Lm = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return np.inf, {}
    pwrss = Lm[p, p] ** 2
    if not np.isfinite(pwrss) or pwrss <= 0:
        return np.inf, {}
    ldRX2 = 2.0 * np.sum(np.log(np.diag(Lm)[:p]))
    if reml:
        nmp = n - p
        crit = ldL2 + ldRX2 + nmp * (1.0 + _LOG2PI + np.log(pwrss / nmp))
    else:
        crit = ldL2 + n * (1.0 + _LOG2PI + np.log(pwrss / n))
    return float(crit), {"Lm": Lm, "pwrss": pwrss, "ldL2": ldL2, "ldRX2": ldRX2}


def _estimates(parts: dict, n: int, p: int, reml: bool) -> dict:
    Lm = parts["Lm"]
    LX = Lm[:p, :p]
    beta = sla.solve_triangular(LX.T, Lm[p, :p], lower=False) if p else np.zeros(0)
    sigma2 = parts["pwrss"] / ((n - p) if reml else n)
    LXinv = sla.solve_triangular(LX, np.eye(p), lower=True) if p else np.zeros((0, 0))
    vcov = sigma2 * (LXinv.T @ LXinv)
    return {"beta": beta, "sigma": float(np.sqrt(sigma2)), "vcov": vcov}


def _chol_small(T: np.ndarray) -> np.ndarray:
    """Batched Cholesky of g x K x K SPD matrices, vectorised over g (fast for small K)."""
    g, K, _ = T.shape
    if K > 6:
        return np.linalg.cholesky(T)
    L = np.zeros_like(T)
    for j in range(K):
        d = T[:, j, j] - np.einsum("gk,gk->g", L[:, j, :j], L[:, j, :j]) if j else T[:, j, j].copy()
        if np.any(d <= 0):
            raise np.linalg.LinAlgError("not positive definite")
        ljj = np.sqrt(d)
        L[:, j, j] = ljj
        for i in range(j + 1, K):
            v = T[:, i, j] - (np.einsum("gk,gk->g", L[:, i, :j], L[:, j, :j]) if j else 0.0)
            L[:, i, j] = v / ljj
    return L


def _forward_small(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Batched forward substitution L X = B (L: g x K x K lower, B: g x K x m)."""
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


class BlockKernel:
    """All random terms on one grouping factor: per-level K x K blocks."""

    def __init__(self, terms: list[ReTerm], cp: CrossProducts) -> None:
        self.terms = terms
        self.n, self.p = cp.n, cp.p
        self.g, self.K = cp.S.shape[0], cp.S.shape[1]
        K = self.K
        self.S = cp.S
        self.ZW = np.concatenate([cp.ZX, cp.Zy[:, :, None]], axis=2)
        self.ZWt = np.ascontiguousarray(self.ZW.transpose(0, 2, 1)).reshape(-1, K)  # (g*m) x K
        self.S_flat = self.S.reshape(self.g, K * K)
        self.WtW = cp.WtW

    def lam(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((self.K, self.K))
        o = 0
        for t in self.terms:
            L[o:o + t.k, o:o + t.k] = t.lam(theta[t.theta_slice])
            o += t.k
        return L

    def _factor(self, theta):
        Lam = self.lam(np.asarray(theta, dtype=float))
        if self.K == 1:
            l = Lam[0, 0]
            T = l * l * self.S[:, 0, 0] + 1.0
            Lc = np.sqrt(T)
            R = (l * self.ZW[:, 0, :]) / Lc[:, None]
            ldL2 = float(np.sum(np.log(T)))
            return Lam, Lc[:, None, None], R[:, None, :], ldL2
        K = self.K
        # vec(Lam' S Lam) = S_flat @ kron(Lam, Lam): one BLAS call for all levels
        T = (self.S_flat @ np.kron(Lam, Lam)).reshape(self.g, K, K)
        T += np.eye(K)
        Lc = _chol_small(T)
        B = (self.ZWt @ Lam).reshape(self.g, -1, K).transpose(0, 2, 1)  # Lam' Z_i'W
        R = _forward_small(Lc, B)
        ldL2 = float(2.0 * np.sum(np.log(np.diagonal(Lc, axis1=1, axis2=2))))
        return Lam, Lc, R, ldL2

    def pieces(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """log|L|^2 and the downdated [X y]'[X y] (``(p+1) x (p+1)``) at theta; raises LinAlgError."""
        _, _, R, ldL2 = self._factor(theta)
        Rf = R.reshape(-1, R.shape[2])
        return ldL2, self.WtW - Rf.T @ Rf

    def parts(self, theta: np.ndarray, reml: bool = True) -> dict:
        """``ldL2`` (log|L|^2), ``ldRX2`` (log|R_X|^2), ``pwrss`` and the criterion at theta (σ profiled)."""
        crit, parts = _profiled(*self.pieces(theta), self.n, self.p, reml)
        return {"criterion": crit, "ldL2": parts.get("ldL2"), "ldRX2": parts.get("ldRX2"),
                "pwrss": parts.get("pwrss"), "n": self.n, "p": self.p}

    def __call__(self, theta: np.ndarray, reml: bool = True) -> float:
        try:
            ldL2, M = self.pieces(theta)
        except np.linalg.LinAlgError:
            return np.inf
        return _profiled(ldL2, M, self.n, self.p, reml)[0]

    def solve(self, theta: np.ndarray, reml: bool = True) -> dict:
        """Everything at theta: criterion, beta, sigma, vcov, b (lme4 order), condVar blocks."""
        Lam, Lc, R, ldL2 = self._factor(theta)
        Rf = R.reshape(-1, R.shape[2])
        M = self.WtW - Rf.T @ Rf
        crit, parts = _profiled(ldL2, M, self.n, self.p, reml)
        out = _estimates(parts, self.n, self.p, reml)
        out["criterion"] = crit
        p = self.p
        # u_i = T_i^{-1} Lam' (Z_i'y - Z_i'X beta) = Lc^{-T} (R_y - R_X beta)
        r = R[:, :, p] - R[:, :, :p] @ out["beta"]
        K = self.K
        if K == 1:
            u = r / Lc[:, :, 0]
            Tinv = 1.0 / Lc[:, 0, 0] ** 2
            cv = (Lam[0, 0] ** 2 * Tinv)[:, None, None]
        else:
            LcT = np.swapaxes(Lc, 1, 2)
            u = np.linalg.solve(LcT, r[:, :, None])[:, :, 0]
            Linv = np.linalg.solve(Lc, np.broadcast_to(np.eye(K), Lc.shape))
            Tinv = np.swapaxes(Linv, 1, 2) @ Linv
            cv = Lam @ Tinv @ Lam.T
        bl = u @ Lam.T  # g x K: b_i = Lam u_i
        cv = cv * out["sigma"] ** 2
        # split per term (lme4 order)
        out["b_terms"], out["condvar_terms"] = [], []
        o = 0
        for t in self.terms:
            out["b_terms"].append(bl[:, o:o + t.k])
            out["condvar_terms"].append(cv[:, o:o + t.k, o:o + t.k])
            o += t.k
        return out


class GeneralKernel:
    """Several grouping factors: the q x q system, dense or sparse."""

    def __init__(self, terms: list[ReTerm], cp: CrossProducts) -> None:
        self.terms = terms
        self.n, self.p = cp.n, cp.p
        self.q = cp.ZtZ.shape[0]
        self.ZtZ_sp = cp.ZtZ
        self.ZtW = np.column_stack([cp.ZtX, cp.Zty])
        self.WtW = cp.WtW
        self.dense = self.q <= DENSE_MAX_Q
        self._ZtZ = None
        self.diag_only = all(t.k == 1 for t in terms)
        self._setup_schur(terms)

    # -- Schur complement on the first (largest) term: its block of Z'Z is block diagonal
    def _setup_schur(self, terms) -> None:
        t1 = terms[0]
        q1 = t1.q
        q2 = self.q - q1
        self.schur = q2 > 0 and q2 <= DENSE_MAX_Q and q1 * q2 <= 2e7 and q1 > q2
        if not self.schur:
            return
        k = t1.k
        ZtZ = self.ZtZ_sp
        self.q1, self.k1, self.g1 = q1, k, t1.nlev
        self.S1 = _diag_blocks(ZtZ[:q1, :q1].tocsr(), t1.nlev, k)
        self.Z12 = ZtZ[:q1, q1:].toarray()  # q1 x q2
        self.Z22 = ZtZ[q1:, q1:].toarray()
        self.terms2 = terms[1:]

    def _schur_crit(self, theta, reml):
        return _profiled(*self._schur_pieces(theta), self.n, self.p, reml)[0]

    def _schur_pieces(self, theta):
        t1 = self.terms[0]
        k, g1, q1 = self.k1, self.g1, self.q1
        L1 = t1.lam(theta[t1.theta_slice])
        if self.diag_only:
            d2 = np.concatenate([np.full(t.nlev, theta[t.theta_slice][0]) for t in self.terms2])
            A12 = (self.Z12 * d2[None, :])
            A22 = (d2[:, None] * self.Z22) * d2[None, :]
            B2 = d2[:, None] * self.ZtW[q1:]
        else:
            blocks = [sp.kron(sp.identity(t.nlev), sp.csr_matrix(t.lam(theta[t.theta_slice])))
                      for t in self.terms2]
            Lam2 = sp.block_diag(blocks, format="csr")
            A12 = np.asarray((Lam2.T @ self.Z12.T).T)
            A22 = np.asarray(Lam2.T @ np.asarray(Lam2.T @ self.Z22).T)
            B2 = np.asarray(Lam2.T @ self.ZtW[q1:])
        A22[np.diag_indices_from(A22)] += 1.0
        # first block: Lam1' S_i Lam1 + I (batched), and Lam1' applied to A12 / B1 rows per level
        T = L1.T @ self.S1 @ L1 + np.eye(k)
        Lc = _chol_small(T)
        A12 = (L1.T @ A12.reshape(g1, k, -1))  # g1 x k x q2
        B1 = L1.T @ self.ZtW[:q1].reshape(g1, k, -1)
        L21t = _forward_small(Lc, A12)  # g1 x k x q2  (= L11^{-1} A12)
        R1 = _forward_small(Lc, B1)
        L21t = L21t.reshape(q1, -1)
        R1 = R1.reshape(q1, -1)
        Sch = A22 - L21t.T @ L21t
        L22 = sla.cholesky(Sch, lower=True, check_finite=False)
        R2 = sla.solve_triangular(L22, B2 - L21t.T @ R1, lower=True, check_finite=False)
        ldL2 = float(2.0 * (np.sum(np.log(np.diagonal(Lc, axis1=1, axis2=2))) + np.sum(np.log(np.diag(L22)))))
        RtR = R1.T @ R1 + R2.T @ R2
        return ldL2, self.WtW - RtR

    @property
    def ZtZ(self) -> np.ndarray:
        if self._ZtZ is None:
            self._ZtZ = self.ZtZ_sp.toarray()
        return self._ZtZ

    def _lam_diag(self, theta):
        return np.concatenate([np.full(t.nlev, theta[t.theta_slice][0]) for t in self.terms])

    def _factor(self, theta):
        theta = np.asarray(theta, dtype=float)
        if self.diag_only:
            d = self._lam_diag(theta)
            B = d[:, None] * self.ZtW
            if self.dense:
                A = (d[:, None] * self.ZtZ) * d[None, :]
                A[np.diag_indices_from(A)] += 1.0
            else:
                D = sp.diags(d)
                A = (D @ self.ZtZ_sp @ D + sp.identity(self.q)).tocsc()
            Lam = None
        else:
            Lam = lambda_matrix(self.terms, theta)
            B = np.asarray(Lam.T @ self.ZtW)
            if self.dense:
                LtZ = np.asarray(Lam.T @ self.ZtZ)
                A = np.asarray(Lam.T @ LtZ.T)
                A[np.diag_indices_from(A)] += 1.0
            else:
                A = (Lam.T @ self.ZtZ_sp @ Lam + sp.identity(self.q)).tocsc()
        if self.dense:
            L = sla.cholesky(A, lower=True, check_finite=False)
            ldL2 = float(2.0 * np.sum(np.log(np.diag(L))))
            R = sla.solve_triangular(L, B, lower=True, check_finite=False)
            RtR = R.T @ R
            fac = ("dense", L)
        else:
            lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
            ldL2 = float(np.sum(np.log(np.abs(lu.U.diagonal()))))
            RtR = B.T @ lu.solve(B)
            fac = ("sparse", lu)
        return theta, Lam, B, ldL2, RtR, fac

    def pieces(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """log|L|^2 and the downdated [X y]'[X y] (``(p+1) x (p+1)``) at theta; raises on failure."""
        theta = np.asarray(theta, dtype=float)
        if self.schur:
            return self._schur_pieces(theta)
        _, _, _, ldL2, RtR, _ = self._factor(theta)
        return ldL2, self.WtW - RtR

    def __call__(self, theta: np.ndarray, reml: bool = True) -> float:
        if self.schur:
            try:
                return self._schur_crit(np.asarray(theta, dtype=float), reml)
            except (np.linalg.LinAlgError, ValueError):
                return np.inf
        try:
            _, _, _, ldL2, RtR, _ = self._factor(theta)
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            return np.inf
        return _profiled(ldL2, self.WtW - RtR, self.n, self.p, reml)[0]

    def parts(self, theta: np.ndarray, reml: bool = True) -> dict:
        """``ldL2`` (log|L|^2), ``ldRX2`` (log|R_X|^2), ``pwrss`` and the criterion at theta (σ profiled)."""
        crit, parts = _profiled(*self.pieces(theta), self.n, self.p, reml)
        return {"criterion": crit, "ldL2": parts.get("ldL2"), "ldRX2": parts.get("ldRX2"),
                "pwrss": parts.get("pwrss"), "n": self.n, "p": self.p}

    def solve(self, theta: np.ndarray, reml: bool = True) -> dict:
        theta, Lam, B, ldL2, RtR, fac = self._factor(theta)
        crit, parts = _profiled(ldL2, self.WtW - RtR, self.n, self.p, reml)
        out = _estimates(parts, self.n, self.p, reml)
        out["criterion"] = crit
        p = self.p
        rhs = B[:, p] - B[:, :p] @ out["beta"]
        if fac[0] == "dense":
            L = fac[1]
            u = sla.cho_solve((L, True), rhs)
        else:
            u = fac[1].solve(rhs)
        if Lam is None:
            Lam = sp.diags(self._lam_diag(theta)).tocsc()
        b = Lam @ u
        s2 = out["sigma"] ** 2
        out["b_terms"], out["condvar_terms"] = [], []
        for t in self.terms:
            out["b_terms"].append(b[t.offset:t.offset + t.q].reshape(t.nlev, t.k))
        # conditional variances: diagonal k x k blocks of s2 * Lam A^{-1} Lam'
        if fac[0] == "dense":
            Linv = sla.solve_triangular(fac[1], np.eye(self.q), lower=True, check_finite=False)
            LL = np.asarray(Lam @ Linv.T)  # q x q: Lam L^{-T}
            for t in self.terms:
                blk = LL[t.offset:t.offset + t.q].reshape(t.nlev, t.k, self.q)
                out["condvar_terms"].append(s2 * blk @ np.swapaxes(blk, 1, 2))
        else:
            for t in self.terms:
                out["condvar_terms"].append(np.full((t.nlev, t.k, t.k), np.nan))
        return out


def _diag_blocks(D: sp.csr_matrix, g: int, k: int) -> np.ndarray:
    """The g diagonal k x k blocks of a block-diagonal sparse matrix."""
    out = np.zeros((g, k, k))
    C = D.tocoo()
    lev_r, lev_c = C.row // k, C.col // k
    on = lev_r == lev_c
    np.add.at(out, (lev_r[on], C.row[on] % k, C.col[on] % k), C.data[on])
    return out


def make_kernel(terms: list[ReTerm], cp: CrossProducts):
    """Pick the kernel by block structure: per-level blocks when every term is on one grouping factor."""
    if cp.block:
        return BlockKernel(terms, cp)
    return GeneralKernel(terms, cp)
