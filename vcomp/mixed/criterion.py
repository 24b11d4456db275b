"""Profiled REML/ML criterion and its analytic gradient in θ, from the cross-products kept on the model.

Two kernels, chosen by block structure, both with per-evaluation cost independent of n:

* :class:`BlockKernel` -- every random term on one grouping factor: per-level K x K blocks,
  a batched numpy Cholesky and a (p+1) x (p+1) downdate (see ``shared/notes/fast-lmm-and-kr.md``).
* :class:`GeneralKernel` -- several grouping factors (nested or crossed): the blocked factor of
  :mod:`vcomp.mixed.blocked` (first term block diagonal, sparse off-diagonal block with a fixed
  pattern, dense Cholesky of the small trailing block); scipy's sparse LU when even the
  trailing block is too large to be dense (criterion only).

Both work in the internal (standardised) coordinates of :mod:`vcomp.mixed.crossprod` and
return lme4's profiled criterion (``REMLcrit`` / deviance) of the internal problem and,
at the optimum, beta, sigma, Var(beta), the conditional modes and their conditional
variances.  Each term's Λ and dΛ/dθ come from the term itself (:meth:`ReTerm.lam`,
:meth:`ReTerm.dlam`).

The gradient.  With ``A = Λ'Z'ZΛ + I``, ``V0 = I + ZΛΛ'Z'``, ``E = dΛ/dθ_j`` (block diagonal):

* ``d log|A| = 2 tr(A^-1 Λ'Z'Z E) = 2 <dΛ_t, sum_l G_l H_l'>`` with ``G = Z'ZΛ`` and ``H = A^-1``
  needed only on the pattern of ``Z'Z``;
* ``d log|R_X|^2 = -2 <dΛ_t, (sum_l F_l Φ0 F_l') Λ_t>`` with ``F = Z'V0^-1 X``, ``Φ0 = (R_X'R_X)^-1``;
* ``d pwrss = -2 <dΛ_t, sum_l (Z'r)_l u_l'>`` (envelope theorem: r the penalised residual, u the
  spherical modes);

so ``d REML = d log|A| + d log|R_X|^2 + (n - p) d pwrss / pwrss`` (ML: ``n``, no R_X term).
"""
from __future__ import annotations

import copy

import numpy as np
from scipy.linalg.lapack import dpotrf as _potrf, dtrtri as _trtri
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .blocked import BlockedPattern, back_small, chol_small, forward_small
from .crossprod import SMALL_DENSE_Q as DENSE_SMALL_Q, CrossProducts  # systems factored whole and dense
from .reterm import ReTerm, lambda_dense, lambda_index, lambda_matrix

__all__ = ["BlockKernel", "GeneralKernel", "make_kernel", "objective", "DENSE_MAX_Q"]

#: largest trailing block (levels of all but the first term) factored densely
DENSE_MAX_Q = 3000
_LOG2PI = np.log(2 * np.pi)


def _criterion(ldL2: float, ldRX2: float, pwrss: float, n: int, p: int, reml: bool) -> float:
    """The profiled REML/ML criterion (-2 log-likelihood) from log|L|^2, log|R_X|^2 and the PWRSS."""
    if not np.isfinite(pwrss) or pwrss <= 0:
        return np.inf
    if reml:
        nmp = n - p
        return float(ldL2 + ldRX2 + nmp * (1.0 + _LOG2PI + np.log(pwrss / nmp)))
    return float(ldL2 + n * (1.0 + _LOG2PI + np.log(pwrss / n)))


def _profiled(ldL2: float, M: np.ndarray, n: int, p: int, reml: bool) -> tuple[float, dict]:
    """Criterion from log|L|^2 and the downdated [X y]'[X y] (shared by both kernels)."""
    Lm, info = _potrf(M, lower=1, clean=1)
    if info:
        return np.inf, {}
    pwrss = Lm[p, p] ** 2
    if not np.isfinite(pwrss) or pwrss <= 0:
        return np.inf, {}
    ldRX2 = 2.0 * np.sum(np.log(np.diag(Lm)[:p]))
    return _criterion(ldL2, ldRX2, pwrss, n, p, reml), {"Lm": Lm, "pwrss": pwrss, "ldL2": ldL2, "ldRX2": ldRX2}


def _estimates(parts: dict, n: int, p: int, reml: bool) -> dict:
    beta, Phi0 = _beta_phi0(parts, p)
    sigma2 = parts["pwrss"] / ((n - p) if reml else n)
    return {"beta": beta, "sigma": float(np.sqrt(sigma2)), "vcov": sigma2 * Phi0}


def _beta_phi0(parts: dict, p: int) -> tuple[np.ndarray, np.ndarray]:
    """β̂ and ``Φ0 = (R_X'R_X)^-1`` (σ-free) from the downdated factor."""
    Lm = parts["Lm"]
    if not p:
        return np.zeros(0), np.zeros((0, 0))
    LXinv = _trtri(Lm[:p, :p], lower=1)[0]       # p x p triangular: the call overhead is the cost here
    return LXinv.T @ Lm[p, :p], LXinv.T @ LXinv


def _assemble_gradient(terms, theta, blocks, parts, n, p, reml, dlams) -> np.ndarray:
    """The criterion's gradient from per-term pieces.

    ``blocks`` holds, per term: ``NL`` (k x k, ``sum_l G_l H_l'``), ``F`` (nlev x k x p rows of
    ``Z'V0^-1 X``), ``Zr`` (nlev x k rows of ``Z'r``) and ``u`` (nlev x k spherical modes).
    """
    Phi0 = parts["Phi0"]
    c = (n - p) if reml else n
    pw = parts["pwrss"]
    g = np.zeros(len(theta))
    for t, b, dl in zip(terms, blocks, dlams):
        lam = t.lam(theta[t.theta_slice])
        N = 2.0 * b["NL"] - (2.0 * c / pw) * (b["Zr"].T @ b["u"])
        if reml and p:
            F = b["F"]
            nl, k = F.shape[0], F.shape[1]
            Ft = np.ascontiguousarray(F.transpose(1, 0, 2)).reshape(k, nl * p)     # k x (levels, p)
            FP = np.ascontiguousarray((F.reshape(-1, p) @ Phi0).reshape(F.shape).transpose(1, 0, 2)).reshape(k, -1)
            N = N - 2.0 * (FP @ Ft.T) @ lam
        g[t.theta_slice] = dl @ N.ravel()
    return g


def _bmm(A: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Per-level products ``A_l X_l`` (A: g x K x K, X: g x K x m) as K broadcast passes (small K)."""
    K = A.shape[2]
    if K > 6:
        return A @ X
    out = A[:, :, 0, None] * X[:, None, 0, :]
    for j in range(1, K):
        out += A[:, :, j, None] * X[:, None, j, :]
    return out


def _lmul(M: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``M X_l`` for one K x K M and every level (X: g x K x m), through one matrix product."""
    g, K, m = X.shape
    return (np.ascontiguousarray(X.transpose(0, 2, 1)).reshape(g * m, K) @ M.T).reshape(g, m, K).transpose(0, 2, 1)


def _dlam_rows(terms) -> list[np.ndarray]:
    """Each term's dΛ/dθ (from :meth:`ReTerm.dlam`) as rows of a matrix acting on vec(N): asked once per kernel."""
    return [np.array([E.ravel() for E in t.dlam()]) for t in terms]


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
        self.offsets = np.cumsum([0] + [t.k for t in terms])[:-1]
        self._dlam = _dlam_rows(terms)

    def lam(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((self.K, self.K))
        for t, o in zip(self.terms, self.offsets):
            L[o:o + t.k, o:o + t.k] = t.lam(theta[t.theta_slice])
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
        Lc = chol_small(T)
        B = (self.ZWt @ Lam).reshape(self.g, -1, K).transpose(0, 2, 1)  # Lam' Z_i'W
        R = forward_small(Lc, B)
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

    def value_and_grad(self, theta: np.ndarray, reml: bool = True) -> tuple[float, np.ndarray]:
        """The criterion and its analytic gradient in the internal θ."""
        theta = np.asarray(theta, dtype=float)
        try:
            Lam, Lc, R, ldL2 = self._factor(theta)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros(len(theta))
        Rf = R.reshape(-1, R.shape[2])
        crit, parts = _profiled(ldL2, self.WtW - Rf.T @ Rf, self.n, self.p, reml)
        if not np.isfinite(crit):
            return np.inf, np.zeros(len(theta))
        p = self.p
        beta, parts["Phi0"] = _beta_phi0(parts, p)
        g, K = self.g, self.K
        Y = back_small(Lc, R)                                   # A^-1 Λ' Z'W, per level
        F = self.ZW - _bmm(self.S, _lmul(Lam, Y))               # Z'V0^-1 [X y]
        u = Y[:, :, p] - Y[:, :, :p] @ beta
        Zr = F[:, :, p] - F[:, :, :p] @ beta
        if K == 1:
            Cinv = 1.0 / Lc ** 2
        else:
            Li = forward_small(Lc, np.broadcast_to(np.eye(K), Lc.shape).copy())
            Cinv = _bmm(np.swapaxes(Li, 1, 2), Li)
        SL = (self.S.reshape(g * K, K) @ Lam).reshape(g, K, K)
        NL = np.ascontiguousarray(SL.transpose(1, 0, 2)).reshape(K, g * K) @ Cinv.reshape(g * K, K)
        blocks = []
        for t, o in zip(self.terms, self.offsets):
            s = slice(o, o + t.k)
            blocks.append({"NL": NL[s, s], "F": F[:, s, :p], "Zr": Zr[:, s], "u": u[:, s]})
        return crit, _assemble_gradient(self.terms, theta, blocks, parts, self.n, p, reml, self._dlam)

    has_gradient = True

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
            u = back_small(Lc, r[:, :, None])[:, :, 0]
            Linv = forward_small(Lc, np.broadcast_to(np.eye(K), Lc.shape).copy())
            Tinv = np.swapaxes(Linv, 1, 2) @ Linv
            cv = Lam @ Tinv @ Lam.T
        bl = u @ Lam.T  # g x K: b_i = Lam u_i
        cv = cv * out["sigma"] ** 2
        # split per term (lme4 order)
        out["b_terms"], out["condvar_terms"] = [], []
        for t, o in zip(self.terms, self.offsets):
            out["b_terms"].append(bl[:, o:o + t.k])
            out["condvar_terms"].append(cv[:, o:o + t.k, o:o + t.k])
        return out


class _DenseSystem:
    """Small q: the whole ``q x q`` system dense -- a handful of BLAS calls per evaluation.

    ``Λ`` is filled from θ through a fixed index map (lme4's ``Lind``): every θ entry's positions.
    The gradient evaluation factors the augmented matrix ``[Λ'Z'ZΛ + I, Λ'Z'W; W'ZΛ, W'W]`` once
    (lme4's and MixedModels.jl's blocked system), which gives log|L|, R_X, the residual sum of
    squares and, inverted, ``A^-1`` and ``R_X^-1``.
    """

    def __init__(self, terms: list[ReTerm], ZtZ, ZtW: np.ndarray, WtW: np.ndarray) -> None:
        self.terms = terms
        self.q = q = ZtZ.shape[0]
        self.A0 = np.asarray(ZtZ.toarray() if sp.issparse(ZtZ) else ZtZ, dtype=float)
        self.index = lambda_index(terms)
        self.lind, self.lth = self.index[:2], self.index[2]
        #: Λ is diagonal with θ entry ``lth[i]`` at position i (scalar terms): elementwise products
        self.diagonal = bool(np.array_equal(self.lind[0], np.arange(q)) and np.array_equal(self.lind[1], np.arange(q)))
        self._set_response(ZtW, WtW)

    def _set_response(self, ZtW: np.ndarray, WtW: np.ndarray) -> None:
        q, m = self.q, ZtW.shape[1]
        self.ZtW, self.WtW = ZtW, WtW
        C = np.empty((q + m, q + m))
        C[:q, :q], C[:q, q:], C[q:, :q], C[q:, q:] = self.A0, ZtW, ZtW.T, WtW
        self.C = C
        self._ones = np.ones(m)
        #: (θ's bytes, factor) of the last :meth:`_augmented` call: the optimizer's final iterate is reused
        self._last = None

    def with_response(self, ZtW: np.ndarray, WtW: np.ndarray) -> "_DenseSystem":
        """The same system for new cross-products of the response (Z'Z and the index map kept)."""
        new = copy.copy(self)
        new._set_response(ZtW, WtW)
        return new

    def lam(self, theta: np.ndarray) -> np.ndarray:
        return lambda_dense(self.terms, theta, self.index)

    def _augmented(self, theta: np.ndarray):
        """``G = Z'ZΛ``, the Cholesky factor ``Lf`` of the augmented matrix, its inverse and LAPACK's info.

        The last result is kept: the optimizer's final iterate is factored once (the cached
        arrays are the ones a fresh call computes, so results do not depend on the call history).
        """
        key = theta.tobytes()
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        q = self.q
        if self.diagonal:
            d = theta[self.lth]
            sc = np.concatenate([d, self._ones])      # a fresh array: no shared buffer between threads
            Af = self.C * sc[:, None] * sc[None, :]
            G = self.A0 * d[None, :]
        else:
            Lam = self.lam(theta)
            G = self.A0 @ Lam
            Af = np.empty_like(self.C)
            Af[:q, :q] = Lam.T @ G
            Af[:q, q:] = Lam.T @ self.ZtW
            Af[q:, :q] = Af[:q, q:].T
            Af[q:, q:] = self.WtW
        m = Af.shape[0]
        Af.flat[:q * (m + 1):m + 1] += 1.0
        Lf, info = _potrf(Af, lower=1, clean=1, overwrite_a=1)
        if 0 < info <= q:
            raise np.linalg.LinAlgError("not positive definite")
        out = (G, Lf, _trtri(Lf, lower=1)[0] if not info else None, info)
        self._last = (key, out)
        return out

    def crit_parts(self, theta: np.ndarray, n: int, p: int, reml: bool):
        """The criterion, the pieces of :func:`_profiled` (``Lm`` = the factor of the downdated
        ``[X y]'[X y]``) and the factor tuple of :meth:`factor`; raises LinAlgError."""
        q = self.q
        G, Lf, Lfi, info = self._augmented(theta)
        dg = np.diagonal(Lf)
        if info:                                  # R_X singular or no residual left
            return np.inf, {}, None
        lg = np.log(dg[:q + p])
        ldL2, ldRX2 = 2.0 * float(lg[:q].sum()), 2.0 * float(lg[q:].sum())
        pwrss = float(dg[q + p]) ** 2
        crit = _criterion(ldL2, ldRX2, pwrss, n, p, reml)
        parts = {"Lm": Lf[q:, q:], "pwrss": pwrss, "ldL2": ldL2, "ldRX2": ldRX2}
        return crit, parts, (G, Lf, Lfi)

    def a_inverse(self, theta: np.ndarray) -> np.ndarray:
        """``A^-1 = (Λ'Z'ZΛ + I)^-1`` at θ (from the cached factor after a fit)."""
        Li = self.factor(theta)[1]
        return Li.T @ Li

    def factor(self, theta: np.ndarray):
        """``(Λ, L^-1, R, log|L|^2, R'R)`` with ``R = L^-1 Λ'Z'W`` (``L L' = Λ'Z'ZΛ + I``)."""
        q = self.q
        G, Lf, Lfi, info = self._augmented(theta)
        Lam = self.lam(theta)
        ldL2 = 2.0 * float(np.sum(np.log(np.diagonal(Lf)[:q])))
        if info:   # the factorization stopped in the trailing block: the leading block is complete
            Li = _trtri(np.ascontiguousarray(Lf[:q, :q]), lower=1)[0]
            R = Li @ (Lam.T @ self.ZtW)
        else:
            Li, R = Lfi[:q, :q], Lf[q:, :q].T
        return Lam, Li, R, ldL2, R.T @ R

    def value_and_grad(self, theta: np.ndarray, n: int, p: int, reml: bool):
        """The criterion and its gradient with whole ``q x q`` products (no per-term pieces).

        ``∂crit/∂Λ = 2 G A^-1 - (2c/pwrss) Z'r u' - 2 (F_X Φ0 F_X') Λ`` (the last for REML), summed
        over each θ entry's positions in Λ (see the module docstring); for a diagonal Λ only the
        diagonal of that matrix is formed.
        """
        crit, parts, fac = self.crit_parts(theta, n, p, reml)
        if not np.isfinite(crit):
            return np.inf, np.zeros(len(theta))
        q = self.q
        G, Lf, Lfi = fac
        Li, R = Lfi[:q, :q], Lf[q:, :q].T
        LXinv = Lfi[q:q + p, q:q + p]
        coef = np.empty(p + 1)
        coef[:p] = -(LXinv.T @ Lf[q + p, q:q + p])       # -β
        coef[p] = 1.0
        Ainv = Li.T @ Li
        Y = Li.T @ R
        F = self.ZtW - G @ Y
        u, Zr = Y @ coef, F @ coef
        cf = 2.0 * ((n - p) if reml else n) / parts["pwrss"]
        if self.diagonal:
            N = 2.0 * np.einsum("ij,ij->i", G, Ainv) - cf * (Zr * u)
            if reml and p:
                FX = F[:, :p]
                N -= 2.0 * theta[self.lth] * np.einsum("ij,ij->i", FX @ (LXinv.T @ LXinv), FX)
            return crit, np.bincount(self.lth, weights=N, minlength=len(theta))
        N = 2.0 * (G @ Ainv) - cf * (Zr[:, None] * u[None, :])
        if reml and p:
            FX = F[:, :p]
            N -= 2.0 * (FX @ ((LXinv.T @ LXinv) @ (FX.T @ self.lam(theta))))
        return crit, np.bincount(self.lth, weights=N[self.lind], minlength=len(theta))

    def modes(self, fac) -> tuple[list, np.ndarray]:
        """Per term the rows of ``Y = A^-1 Λ'Z'W`` (nlev x k x m), and ``A^-1``."""
        _, Li, R, _, _ = fac
        Y = Li.T @ R
        return [Y[t.offset:t.offset + t.q].reshape(t.nlev, t.k, -1) for t in self.terms], Li.T @ Li


class GeneralKernel:
    """Several grouping factors: the blocked factor of :mod:`vcomp.mixed.blocked` (sparse LU beyond it)."""

    def __init__(self, terms: list[ReTerm], cp: CrossProducts) -> None:
        self.terms = terms
        self.n, self.p = cp.n, cp.p
        self.q = cp.ZtZ.shape[0]
        self.ZtW = np.column_stack([cp.ZtX, cp.Zty])
        self.WtW = cp.WtW
        q2 = self.q - terms[0].q
        self.mode = "dense" if self.q <= DENSE_SMALL_Q else "blocked" if q2 <= DENSE_MAX_Q else "sparse"
        self.ZtZ_sp = cp.ZtZ if sp.issparse(cp.ZtZ) or self.mode != "sparse" else sp.csc_matrix(cp.ZtZ)
        self.pattern = BlockedPattern(terms, cp.ZtZ, self.ZtW) if self.mode == "blocked" else None
        self._dlam = _dlam_rows(terms)
        self.small = _DenseSystem(terms, cp.ZtZ, self.ZtW, self.WtW) if self.mode == "dense" else None

    def with_response(self, cp: CrossProducts) -> "GeneralKernel":
        """The kernel of the same terms for new cross-products of the response (a refit): Z'Z, the
        dense system's Λ index map and the blocked factor's symbolic analysis are kept."""
        if self.mode == "sparse":
            return GeneralKernel(self.terms, cp)
        new = copy.copy(self)
        new.ZtW = np.column_stack([cp.ZtX, cp.Zty])
        new.WtW = cp.WtW
        if self.mode == "dense":
            new.small = self.small.with_response(new.ZtW, new.WtW)
        else:
            new.pattern = self.pattern.with_response(new.ZtW)
        return new

    @property
    def dense(self) -> bool:
        """True when a dense (whole or trailing-block) Cholesky factor is used."""
        return self.mode in ("dense", "blocked")

    # -- sparse LU fallback (trailing block too large for a dense factor)
    def _sparse_factor(self, theta):
        theta = np.asarray(theta, dtype=float)
        Lam = lambda_matrix(self.terms, theta)
        B = np.asarray(Lam.T @ self.ZtW)
        A = (Lam.T @ self.ZtZ_sp @ Lam + sp.identity(self.q)).tocsc()
        lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        ldL2 = float(np.sum(np.log(np.abs(lu.U.diagonal()))))
        return Lam, B, ldL2, B.T @ lu.solve(B), lu

    def _crit_parts(self, theta, reml):
        if self.mode == "dense":
            theta = np.asarray(theta, dtype=float)
            crit, parts, _ = self.small.crit_parts(theta, self.n, self.p, reml)
            return crit, parts, (self.small.factor(theta) if np.isfinite(crit) else None)
        if self.mode == "blocked":
            fac = self.pattern.factor(theta)
            ldL2, RtR = fac.ldL2, fac.RtR
        else:
            fac = self._sparse_factor(theta)
            ldL2, RtR = fac[2], fac[3]
        crit, parts = _profiled(ldL2, self.WtW - RtR, self.n, self.p, reml)
        return crit, parts, fac

    def pieces(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """log|L|^2 and the downdated [X y]'[X y] (``(p+1) x (p+1)``) at theta; raises on failure."""
        theta = np.asarray(theta, dtype=float)
        if self.mode == "dense":
            fac = self.small.factor(theta)
            return fac[3], self.WtW - fac[4]
        if self.mode == "blocked":
            fac = self.pattern.factor(theta)
            return fac.ldL2, self.WtW - fac.RtR
        fac = self._sparse_factor(theta)
        return fac[2], self.WtW - fac[3]

    def __call__(self, theta: np.ndarray, reml: bool = True) -> float:
        try:
            if self.mode == "dense":
                return self.small.crit_parts(np.asarray(theta, dtype=float), self.n, self.p, reml)[0]
            return self._crit_parts(theta, reml)[0]
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            return np.inf

    def parts(self, theta: np.ndarray, reml: bool = True) -> dict:
        """``ldL2`` (log|L|^2), ``ldRX2`` (log|R_X|^2), ``pwrss`` and the criterion at theta (σ profiled)."""
        crit, parts, _ = self._crit_parts(theta, reml)
        return {"criterion": crit, "ldL2": parts.get("ldL2"), "ldRX2": parts.get("ldRX2"),
                "pwrss": parts.get("pwrss"), "n": self.n, "p": self.p}

    def _modes(self, fac, beta):
        """``Y = A^-1 Λ'Z'[X y]`` and ``Z'V0^-1 [X y]`` per term, with u and Z'r."""
        pat = self.pattern
        Y1, Y2 = pat.back(fac, fac.R1, fac.R2)
        top, bot = pat.g_times(fac, Y1, Y2)
        F1 = pat.ZtW1 - top
        F2 = pat.ZtW2 - bot
        return pat.split_rows(Y1, Y2), pat.split_rows(F1, F2)

    def value_and_grad(self, theta: np.ndarray, reml: bool = True) -> tuple[float, np.ndarray]:
        """The criterion and its analytic gradient in the internal θ (blocked factor)."""
        theta = np.asarray(theta, dtype=float)
        if self.mode == "sparse":
            raise NotImplementedError("analytic gradient needs the dense or blocked factor")
        if self.mode == "dense":
            try:
                return self.small.value_and_grad(theta, self.n, self.p, reml)
            except (np.linalg.LinAlgError, ValueError):
                return np.inf, np.zeros(len(theta))
        try:
            crit, parts, fac = self._crit_parts(theta, reml)
        except (np.linalg.LinAlgError, ValueError):
            return np.inf, np.zeros(len(theta))
        if not np.isfinite(crit):
            return np.inf, np.zeros(len(theta))
        p = self.p
        beta, parts["Phi0"] = _beta_phi0(parts, p)
        Ys, Fs = self._modes(fac, beta)
        if self.pattern.scalar:
            NL = self.pattern.logdet_grad_scalar(fac)
        else:
            NL = self.pattern.logdet_grad_blocks(fac, self.pattern.selected_inverse(fac))
        blocks = []
        for t, Y, F, N in zip(self.terms, Ys, Fs, NL):
            blocks.append({"NL": N, "F": F[:, :, :p], "u": Y[:, :, p] - Y[:, :, :p] @ beta,
                           "Zr": F[:, :, p] - F[:, :, :p] @ beta})
        return crit, _assemble_gradient(self.terms, theta, blocks, parts, self.n, p, reml, self._dlam)

    @property
    def has_gradient(self) -> bool:
        return self.mode != "sparse"

    def solve(self, theta: np.ndarray, reml: bool = True) -> dict:
        theta = np.asarray(theta, dtype=float)
        crit, parts, fac = self._crit_parts(theta, reml)
        out = _estimates(parts, self.n, self.p, reml)
        out["criterion"] = crit
        p = self.p
        s2 = out["sigma"] ** 2
        out["b_terms"], out["condvar_terms"] = [], []
        if self.mode == "dense":
            Ys, Ainv = self.small.modes(fac)
            for t, Y in zip(self.terms, Ys):
                lam = t.lam(theta[t.theta_slice])
                s = slice(t.offset, t.offset + t.q)
                idx = np.arange(t.nlev)[:, None] * t.k + np.arange(t.k)[None, :]
                Hb = Ainv[s, s][idx[:, :, None], idx[:, None, :]]
                out["b_terms"].append((Y[:, :, p] - Y[:, :, :p] @ out["beta"]) @ lam.T)
                out["condvar_terms"].append(s2 * (lam @ Hb @ lam.T))
            return out
        if self.mode == "blocked":
            beta = out["beta"]
            Ys, _ = self._modes(fac, beta)
            H = self.pattern.selected_inverse(fac)
            Hs = [H["H11"]]
            o = 0
            for t in self.terms[1:]:
                blk = H["H22"][o:o + t.q, o:o + t.q]
                idx = np.arange(t.nlev)[:, None] * t.k + np.arange(t.k)[None, :]
                Hs.append(blk[idx[:, :, None], idx[:, None, :]])
                o += t.q
            for t, Y, Hb in zip(self.terms, Ys, Hs):
                lam = t.lam(theta[t.theta_slice])
                u = Y[:, :, p] - Y[:, :, :p] @ beta
                out["b_terms"].append(u @ lam.T)
                out["condvar_terms"].append(s2 * (lam @ Hb @ lam.T))
            return out
        Lam, B, _, _, lu = fac
        u = lu.solve(B[:, p] - B[:, :p] @ out["beta"])
        b = Lam @ u
        for t in self.terms:
            out["b_terms"].append(b[t.offset:t.offset + t.q].reshape(t.nlev, t.k))
            out["condvar_terms"].append(np.full((t.nlev, t.k, t.k), np.nan))
        return out


def objective(kernel, reml: bool) -> tuple:
    """``(f, fg)`` for :func:`~vcomp.mixed.optimize.optimize_theta`: the criterion and, where the
    kernel has one, its value with the analytic gradient (else ``None``)."""
    def f(th):
        return kernel(th, reml)

    def fg(th):
        return kernel.value_and_grad(th, reml)

    # the per-level kernel's values are cheap next to its gradient: a scaled start pays there
    fg.scale_start = isinstance(kernel, BlockKernel)
    # a plain BFGS run first (no scipy overhead, one evaluation per iteration) pays for small systems
    # and the per-level kernel (measured: oats 15 -> 11 evaluations, 1e6-row slopes 17 -> 16); the
    # blocked crossed fits keep L-BFGS-B (InstEval 22 with it, 27 without)
    fg.quick = isinstance(kernel, BlockKernel) or getattr(kernel, "mode", None) == "dense"
    return f, (fg if getattr(kernel, "has_gradient", False) else None)


def make_kernel(terms: list[ReTerm], cp: CrossProducts):
    """Pick the kernel by block structure: per-level blocks when every term is on one grouping factor."""
    if cp.block:
        return BlockKernel(terms, cp)
    return GeneralKernel(terms, cp)
