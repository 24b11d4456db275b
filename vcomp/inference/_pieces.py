"""Per-model ingredients of Satterthwaite and Kenward-Roger inference.

Everything is computed from cross-products (``X'X``, ``Z'X``, ``Z'Z``, ``Z'y``)
and ``q x q`` dense algebra, never an ``n x n`` matrix.  With
``Sigma = sigma^2 (I + Z Lambda Lambda' Z')`` Woodbury gives

.. math:: \\Sigma^{-1} = \\sigma^{-2}(I - Z K Z'),\\quad K = \\Lambda C^{-1}\\Lambda',
          \\quad C = \\Lambda' Z'Z \\Lambda + I.

The variance parameters ``gamma`` are those of pbkrtest: for each random term
the entries of its ``k x k`` covariance matrix ``sigma^2 Lambda_t Lambda_t'``
(lower triangle, column-major), then the residual variance.  ``dSigma/dgamma_r
= G_r = Z D_r Z'`` (``D_r`` a block indicator) or ``I`` for the residual.

Notation of the formulas (``F = Z'Sigma^{-1}X``, ``S = Z'Sigma^{-1}Z``,
``M = I - Z'Z K``): ``P_r = -X'Sigma^{-1}G_r Sigma^{-1}X = -F'D_rF``,
``Q_rs = X'Sigma^{-1}G_r Sigma^{-1}G_s Sigma^{-1}X = F'D_r S D_s F``, the
trace matrix ``tr(Sigma^{-1}G_r Sigma^{-1}G_s) = tr(D_r S D_s S)``; the
residual parameter uses ``Z'Sigma^{-2}X = sigma^{-4} M M Z'X`` and friends.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .._errors import VcompError
from ..mixed.crossprod import SMALL_DENSE_Q, CrossProducts
from ..mixed.reterm import lambda_dense, lambda_matrix

__all__ = ["VarPar", "Pieces", "compute_pieces", "compute_pieces_blocks", "compute_pieces_crossed", "model_pieces_auto",
           "kr_vcov_pieces", "satterthwaite_pieces"]


@dataclass(frozen=True)
class VarPar:
    """One variance parameter gamma: entry ``(i, j)`` (``i >= j``) of term ``term``, or the residual (term -1)."""

    term: int
    i: int = 0
    j: int = 0
    name: str = ""


def _term_idx(t) -> np.ndarray:
    return np.arange(t.offset, t.offset + t.q)


def _local_D(t, i: int, j: int) -> sp.csr_matrix:
    E = np.zeros((t.k, t.k))
    E[i, j] = E[j, i] = 1.0
    return sp.kron(sp.identity(t.nlev, format="csr"), sp.csr_matrix(E), format="csr")


def _sym(a: np.ndarray) -> np.ndarray:
    return (a + a.T) / 2.0


@dataclass
class Pieces:
    """Ingredients shared by every contrast of a fitted model.

    Attributes
    ----------
    beta, Phi : ndarray
        GLS estimate and its covariance ``(X'Sigma^{-1}X)^{-1}`` at the estimates.
    varpars : list of VarPar
        The variance parameters gamma (pbkrtest order), residual last.
    gamma : ndarray
        Their values.
    P : list of ndarray (p x p)
        ``P_r = -X'Sigma^{-1} G_r Sigma^{-1} X``.
    Q : dict[(r, s), ndarray]
        ``Q_rs = X'Sigma^{-1}G_r Sigma^{-1}G_s Sigma^{-1}X`` for ``r <= s``.
    IE2 : ndarray
        ``tr(P G_r P G_s)`` (P the REML projection): twice the expected information.
    grad : ndarray
        Gradient of the REML deviance (-2 log-likelihood) in gamma.
    Hobs : ndarray
        Observed Hessian of the deviance in gamma (REML, or profiled ML when ``reml`` is False).
    reml : bool
        Whether the pieces belong to a REML fit (Kenward-Roger needs one).
    """

    beta: np.ndarray
    Phi: np.ndarray
    varpars: list
    gamma: np.ndarray
    P: list
    Q: dict
    IE2: np.ndarray
    grad: np.ndarray
    Hobs: np.ndarray
    theta: np.ndarray
    sigma: float
    terms: list
    cache: dict = field(default_factory=dict)
    reml: bool = True


def _varpars(terms: Sequence, theta: np.ndarray, s2: float) -> tuple[list, list]:
    """The variance parameters gamma (pbkrtest order: per term, column-major lower triangle; residual last)."""
    varpars: list[VarPar] = []
    gamma = []
    for k, t in enumerate(terms):
        Lt = t.lam(theta[t.theta_slice])
        cov = s2 * Lt @ Lt.T
        for i, j in t.varpars():
            varpars.append(VarPar(k, i, j, "%s[%d,%d]" % (t.name, i, j)))
            gamma.append(cov[i, j])
    varpars.append(VarPar(-1, 0, 0, "Residual"))
    gamma.append(s2)
    return varpars, gamma


def compute_pieces(cp: CrossProducts, terms: Sequence, theta: np.ndarray, sigma: float,
                   reml: bool = True, kernel=None) -> Pieces:
    """Every per-model ingredient from the general (q x q) cross-products (no n x n matrix, no data pass).

    Parameters
    ----------
    cp : CrossProducts
        In general form (``cp.general(terms)``): ``Z'Z``, ``Z'X``, ``X'X``, ``Z'y``, ``X'y``, ``y'y``.
    terms : sequence of ReTerm
        In theta order (their ``lam``, ``offset``, ``k``, ``nlev``).
    theta : ndarray
        Internal θ.
    sigma : float
        Internal residual standard deviation.
    kernel : GeneralKernel, optional
        The model's criterion kernel: its blocked factor gives ``A^-1`` without a dense ``q x q``
        Cholesky (see :func:`_inverse_parts`).

    Returns
    -------
    Pieces
    """
    theta = np.asarray(theta, dtype=float)
    n, p = cp.n, cp.p
    q = cp.ZtZ.shape[0]
    if q > MAX_DENSE_PIECES_Q:
        raise VcompError("Satterthwaite and Kenward-Roger df for this model need dense %d x %d matrices of the "
                         "random effects (%s), about %.0f GB; vcomp computes them up to %d random effects in "
                         "total. Test the fixed effects of a model with fewer random-effect levels, or compare "
                         "nested models with vcomp.compare (likelihood ratio)."
                         % (q, q, ", ".join("%s: %d" % (t.name, t.q) for t in terms), 6 * 8 * q * q / 1e9,
                            MAX_DENSE_PIECES_Q))
    s2 = float(sigma) ** 2
    # Z'Z stays sparse (every product with it is nnz x q, not q^3) except for small q, where dense BLAS wins
    A = _dense(cp.ZtZ) if q <= SMALL_DENSE_Q else sp.csr_matrix(cp.ZtZ)
    B = np.asarray(cp.ZtX)
    XX = cp.XtX
    Zy = np.asarray(cp.Zty).ravel()
    Xy = cp.Xty
    K, M, S0 = _inverse_parts(A, terms, theta, kernel)
    KB = K @ B
    BKB = _sym(B.T @ KB)
    XtSiX = _sym(XX - BKB) / s2
    Phi = _sym(np.linalg.inv(XtSiX))
    beta = Phi @ ((Xy - KB.T @ Zy) / s2)
    F = (M @ B) / s2                      # Z' Sigma^-1 X
    S = S0 / s2                           # Z' Sigma^-1 Z
    del S0
    MF = M @ F
    N = MF / s2                           # Z' Sigma^-2 X
    TT = _sym(XX - 2.0 * BKB + KB.T @ np.asarray(A @ KB))
    XS2X = TT / s2 ** 2                   # X' Sigma^-2 X
    MB = F * s2
    XS3X = _sym(TT - MB.T @ K @ MB) / s2 ** 3
    trKA = float(A.multiply(K).sum()) if sp.issparse(A) else float(np.sum(A * K))
    trKAKA = float(q - 2.0 * np.trace(M) + np.sum(M * M.T))   # tr((Z'Z K)^2), Z'Z K = I - M
    trSi = (n - trKA) / s2
    trSi2 = (n - 2.0 * trKA + trKAKA) / s2 ** 2

    # residual cross-products r = y - X beta, from the stored cross-products
    zr = Zy - B @ beta
    rr = float(cp.yty - 2.0 * beta @ Xy + beta @ XX @ beta)
    Xr = Xy - XX @ beta
    u = (M @ zr) / s2                     # Z' Sigma^-1 r
    Kz = K @ zr
    mmz = (M @ u) / s2                    # Z' Sigma^-2 r
    tt = rr - 2.0 * zr @ Kz + Kz @ (A @ Kz)
    Mz = M @ zr

    varpars, gamma = _varpars(terms, theta, s2)
    ng = len(varpars)

    # per-parameter pieces
    P, trSiG, DF, HS, Wv, cvec, ypgpy, idxs = [], [], [], [], [], [], [], []
    for vp in varpars:
        if vp.term < 0:
            P.append(-XS2X)
            trSiG.append(trSi)
            DF.append(None); HS.append(None); Wv.append(None); idxs.append(None)
            ypgpy.append((rr - 2.0 * zr @ Kz + Kz @ (A @ Kz)) / s2 ** 2)
            cvec.append((Xr - 2.0 * KB.T @ zr + KB.T @ (A @ Kz)) / s2 ** 2)
            continue
        t = terms[vp.term]
        idx = slice(t.offset, t.offset + t.q)       # a term's columns are contiguous: views, no copies
        Ft = F[idx]
        if t.k == 1:                                 # D_r is the identity on the term's block
            dfr, hs, w = Ft, S[idx, :], u[idx]
        else:
            D = _local_D(t, vp.i, vp.j)
            dfr = np.asarray(D @ Ft)
            hs = np.asarray(D @ S[idx, :])
            w = np.asarray(D @ u[idx]).ravel()
        P.append(-_sym(Ft.T @ dfr))
        trSiG.append(float(np.trace(hs[:, idx])))
        DF.append(dfr); HS.append(hs); Wv.append(w); idxs.append(idx)
        ypgpy.append(float(u[idx] @ w))
        cvec.append(Ft.T @ w)

    Q: dict = {}
    Ktr = np.zeros((ng, ng))
    bSb = np.zeros((ng, ng))
    for a in range(ng):
        va = varpars[a]
        for c in range(a, ng):
            vc = varpars[c]
            if va.term >= 0 and vc.term >= 0:
                ia, ic = idxs[a], idxs[c]
                Stu = S[ia, ic]
                Q[a, c] = DF[a].T @ (Stu @ DF[c])
                if terms[va.term].k == 1 and terms[vc.term].k == 1:   # tr(S_ac S_ca) = ||S_ac||^2
                    Ktr[a, c] = float(np.einsum("ij,ij->", Stu, Stu))
                else:
                    Ktr[a, c] = float(np.sum(HS[a][:, ic] * HS[c][:, ia].T))
                bSb[a, c] = float(Wv[a] @ Stu @ Wv[c])
            elif va.term >= 0:  # c is the residual
                ia = idxs[a]
                Q[a, c] = DF[a].T @ N[ia]
                t = va.term
                # sum of D_r o (block of Z'Sigma^-2 Z = S M'/s2): only D's entries, row by row
                if terms[t].k == 1:
                    Ktr[a, c] = float(np.einsum("ij,ij->", S[ia], M[ia])) / s2
                else:
                    D = sp.coo_matrix(_local_D(terms[t], va.i, va.j))
                    rows, cols = ia.start + D.row, ia.start + D.col
                    Ktr[a, c] = float(np.sum(D.data * np.einsum("ij,ij->i", S[rows], M[cols]))) / s2
                bSb[a, c] = float(Wv[a] @ mmz[ia])
            else:  # both residual
                Q[a, c] = XS3X
                Ktr[a, c] = trSi2
                bSb[a, c] = (tt - Mz @ K @ Mz) / s2 ** 3
            Ktr[c, a] = Ktr[a, c]
            bSb[c, a] = bSb[a, c]

    return _assemble(beta, Phi, varpars, gamma, P, Q, Ktr, bSb, cvec, trSiG, ypgpy, theta, sigma, terms, reml)


def _dense(M) -> np.ndarray:
    return M.toarray() if sp.issparse(M) else np.asarray(M, dtype=float)


#: largest total number of random effects for the dense q x q pieces (about 6 such matrices are held)
MAX_DENSE_PIECES_Q = 9000
#: above this order, A^-1 comes from the criterion's blocked factor when Λ is well conditioned
_BLOCKED_INVERSE_Q = 1500


def _inverse_parts(A: sp.csr_matrix, terms: Sequence, theta: np.ndarray, kernel=None):
    """``K = Λ C^-1 Λ'``, ``M = I - Z'Z K`` and ``S0 = Z'Z - Z'Z K Z'Z`` (σ-free), dense ``q x q``.

    With ``C = Λ'Z'ZΛ + I`` and Λ invertible, ``M = Λ^-T C^-1 Λ'`` and ``S0 = Λ^-T (I - C^-1) Λ^-1``,
    so everything is a rescaling of ``C^-1``; for large q that inverse is assembled from the
    criterion's blocked factor (first block diagonal, sparse off-diagonal block, dense trailing
    block) instead of a dense Cholesky and q^3 products.  Near a boundary (a small diagonal of Λ)
    or for small q: the direct formulas, with the sparse Z'Z in every product.
    """
    q = A.shape[0]
    if not sp.issparse(A):                           # small q: all dense
        small = getattr(kernel, "small", None)
        if small is not None:                        # the criterion's dense factor at the optimum
            Ld = small.lam(theta)
            K = _sym(Ld @ small.a_inverse(theta) @ Ld.T)
        else:
            Ld = lambda_dense(list(terms), theta)
            C = _sym(Ld.T @ A @ Ld) + np.eye(q)
            K = _sym(Ld @ sla.cho_solve(sla.cho_factor(C, lower=True), Ld.T))
        AK = A @ K
        return K, np.eye(q) - AK, _sym(A - AK @ A)
    Lam = _lambda(terms, theta)
    pat = getattr(kernel, "pattern", None)
    dg = np.abs(Lam.diagonal())
    if pat is not None and q > _BLOCKED_INVERSE_Q and dg.size and dg.min() >= 1e-3:
        Ci = pat.dense_inverse(pat.factor(theta))
        if _is_diag(Lam):                            # scalar terms: elementwise rescalings
            d = Lam.diagonal()
            K = Ci * d[:, None] * d[None, :]
            M = Ci * (1.0 / d)[:, None] * d[None, :]
            Ci *= -1.0
            Ci[np.diag_indices(q)] += 1.0
            Ci *= (1.0 / d)[:, None]
            Ci *= (1.0 / d)[None, :]
            return K, M, Ci
        Li = sp.csr_matrix(sla.solve_triangular(Lam.toarray(), np.eye(q), lower=True))
        K = _sym(np.asarray(Lam @ np.asarray(Lam @ Ci).T))
        M = np.asarray(Li.T @ np.asarray(Lam @ Ci.T).T)
        Ci *= -1.0
        Ci[np.diag_indices(q)] += 1.0
        S0 = _sym(np.asarray(Li.T @ np.asarray(Li.T @ Ci).T))
        return K, M, S0
    Ad = A.toarray()
    C = _sym((Lam.T @ A @ Lam).toarray()) + np.eye(q)
    cho = sla.cho_factor(C, lower=True)
    K = _sym(np.asarray(Lam @ sla.cho_solve(cho, Lam.T.toarray())))
    AK = np.asarray(A @ K)
    M = np.eye(q) - AK
    S0 = _sym(Ad - np.asarray(A @ AK.T))
    return K, M, S0


def _crossed_ok(terms: Sequence, theta: np.ndarray, kernel) -> bool:
    """The blocked scalar path applies: every term scalar, the criterion's blocked factor on its
    scalar path, and Λ well conditioned (its inverse rescales A^-1)."""
    pat = getattr(kernel, "pattern", None)
    if pat is None or not getattr(pat, "scalar", False) or any(t.k != 1 for t in terms):
        return False
    lam = np.array([theta[t.theta_slice][0] for t in terms])
    return bool(np.all(np.abs(lam) >= 1e-3))


def compute_pieces_crossed(cp: CrossProducts, terms: Sequence, theta: np.ndarray, sigma: float,
                           reml: bool = True, kernel=None) -> Pieces:
    """:func:`compute_pieces` for scalar terms on crossed/nested factors, from the criterion's blocked factor.

    Nothing of order ``q x q`` is formed.  With ``C = ΛZ'ZΛ + I`` and Λ diagonal and invertible,
    ``K = Λ C^-1 Λ``, ``M = Λ^-1 C^-1 Λ`` and ``Z'Σ^-1 Z = Λ^-1 (I - C^-1) Λ^-1 / σ²``, so every
    product is a solve with the blocked factor (:meth:`BlockedPattern.inv_solve`) and every trace
    is a trace or a block Frobenius norm of ``C^-1`` (:meth:`BlockedPattern.inverse_traces`):
    ``tr(Z'Z K) = q - tr C^-1``, ``tr((Z'Z K)^2) = tr((I - C^-1)^2)``,
    ``tr(Σ^-1 G_a Σ^-1 G_c) = ||δ_ac I - C^-1_ac||^2 / (λ_a λ_c σ²)^2``.
    """
    theta = np.asarray(theta, dtype=float)
    pat = kernel.pattern
    fac = pat.factor(theta)
    n, p = cp.n, cp.p
    q = cp.ZtZ.shape[0]
    s2 = float(sigma) ** 2
    A = sp.csr_matrix(cp.ZtZ)
    B = np.asarray(cp.ZtX)
    XX, Zy, Xy = cp.XtX, np.asarray(cp.Zty).ravel(), cp.Xty
    d = np.concatenate([np.full(t.q, theta[t.theta_slice][0]) for t in terms])

    def cs(V):
        V = np.asarray(V, dtype=float)
        return pat.inv_solve(fac, V.reshape(q, -1)).reshape(V.shape)

    def Kop(V):
        dd = d if V.ndim == 1 else d[:, None]
        return dd * cs(dd * V)

    def Mop(V):
        dd = d if V.ndim == 1 else d[:, None]
        return cs(dd * V) / dd

    KB = Kop(B)
    BKB = _sym(B.T @ KB)
    XtSiX = _sym(XX - BKB) / s2
    Phi = _sym(np.linalg.inv(XtSiX))
    beta = Phi @ ((Xy - KB.T @ Zy) / s2)
    F = Mop(B) / s2
    N = Mop(F) / s2
    TT = _sym(XX - 2.0 * BKB + KB.T @ np.asarray(A @ KB))
    XS2X = TT / s2 ** 2
    MB = F * s2
    XS3X = _sym(TT - MB.T @ Kop(MB)) / s2 ** 3
    tr = pat.inverse_traces(fac)
    diag, norms = tr["diag"], tr["norms"]
    trCi = float(np.sum(diag))
    trKA = q - trCi
    trKAKA = float(q - 2.0 * trCi + np.sum(norms))
    trSi = (n - trKA) / s2
    trSi2 = (n - 2.0 * trKA + trKAKA) / s2 ** 2
    zr = Zy - B @ beta
    rr = float(cp.yty - 2.0 * beta @ Xy + beta @ XX @ beta)
    Xr = Xy - XX @ beta
    u = Mop(zr) / s2
    Kz = Kop(zr)
    mmz = Mop(u) / s2
    tt = rr - 2.0 * zr @ Kz + Kz @ (A @ Kz)
    Mz = Mop(zr)

    varpars, gamma = _varpars(terms, theta, s2)
    ng = len(varpars)
    sl = [slice(t.offset, t.offset + t.q) for t in terms]
    lam = [theta[t.theta_slice][0] for t in terms]
    trc = [float(np.sum(diag[s_])) for s_ in sl]
    # C^-1 applied to each term's F and u (zero outside the term), for Q and bSb
    CF, Cu = [], []
    for t, s_, lt in zip(terms, sl, lam):
        V = np.zeros((q, p + 1))
        V[s_, :p] = F[s_] / lt
        V[s_, p] = u[s_] / lt
        X = cs(V)
        CF.append(X[:, :p])
        Cu.append(X[:, p])
    P, trSiG, cvec, ypgpy = [], [], [], []
    for vp in varpars:
        if vp.term < 0:
            P.append(-XS2X)
            trSiG.append(trSi)
            ypgpy.append(tt / s2 ** 2)
            cvec.append((Xr - 2.0 * KB.T @ zr + KB.T @ (A @ Kz)) / s2 ** 2)
            continue
        a = vp.term
        Ft = F[sl[a]]
        P.append(-_sym(Ft.T @ Ft))
        trSiG.append((terms[a].q - trc[a]) / (lam[a] ** 2 * s2))
        ypgpy.append(float(u[sl[a]] @ u[sl[a]]))
        cvec.append(Ft.T @ u[sl[a]])
    Q: dict = {}
    Ktr = np.zeros((ng, ng))
    bSb = np.zeros((ng, ng))
    for i in range(ng):
        a = varpars[i].term
        for j in range(i, ng):
            c = varpars[j].term
            if a >= 0 and c >= 0:
                la, lc = lam[a], lam[c]
                SF = (-CF[c][sl[a]] + (F[sl[a]] / lc if a == c else 0.0)) / (la * s2)   # S_ac F_c
                Q[i, j] = F[sl[a]].T @ SF
                Su = (-Cu[c][sl[a]] + (u[sl[a]] / lc if a == c else 0.0)) / (la * s2)
                bSb[i, j] = float(u[sl[a]] @ Su)
                fro = (terms[a].q - 2.0 * trc[a] + norms[a, a]) if a == c else norms[a, c]
                Ktr[i, j] = fro / (la * lc * s2) ** 2
            elif a >= 0:
                Q[i, j] = F[sl[a]].T @ N[sl[a]]
                Ktr[i, j] = (trc[a] - float(np.sum(norms[a]))) / (lam[a] ** 2 * s2 ** 2)
                bSb[i, j] = float(u[sl[a]] @ mmz[sl[a]])
            else:
                Q[i, j] = XS3X
                Ktr[i, j] = trSi2
                bSb[i, j] = (tt - Mz @ Kop(Mz)) / s2 ** 3
            Ktr[j, i] = Ktr[i, j]
            bSb[j, i] = bSb[i, j]
    return _assemble(beta, Phi, varpars, gamma, P, Q, Ktr, bSb, cvec, trSiG, ypgpy, theta, sigma, terms, reml)


def _is_diag(L: sp.spmatrix) -> bool:
    C = sp.coo_matrix(L)
    return bool(np.all(C.row == C.col))


def _lambda(terms: Sequence, theta: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix(lambda_matrix(list(terms), theta))


def _assemble(beta, Phi, varpars, gamma, P, Q, Ktr, bSb, cvec, trSiG, ypgpy, theta, sigma, terms,
              reml: bool = True) -> Pieces:
    """Information, gradient and observed Hessian from the trace and quadratic-form pieces (both paths).

    REML deviance: gradient ``tr(P G_r) - y'P G_r P y``, Hessian ``-tr(P G_r P G_s) + 2 y'P G_r P G_s P y``.
    Profiled ML deviance: the traces take ``Sigma^{-1}`` in place of ``P``.
    """
    ng = len(varpars)
    IE2 = np.zeros((ng, ng))
    PhiP = [Phi @ Pr for Pr in P]
    for a in range(ng):
        for c in range(a, ng):
            IE2[a, c] = IE2[c, a] = (Ktr[a, c] - 2.0 * np.sum(Phi * Q[a, c])
                                     + np.sum(PhiP[a] * PhiP[c].T))
    cv = np.array(cvec)                       # ng x p
    ypgpgpy = bSb - cv @ Phi @ cv.T
    if reml:
        grad = np.array([trSiG[a] + np.trace(PhiP[a]) - ypgpy[a] for a in range(ng)])
        Hobs = _sym(-IE2 + 2.0 * ypgpgpy)
    else:
        grad = np.array([trSiG[a] - ypgpy[a] for a in range(ng)])
        Hobs = _sym(-np.asarray(Ktr) + 2.0 * ypgpgpy)
    return Pieces(beta=beta, Phi=Phi, varpars=varpars, gamma=np.array(gamma), P=P, Q=Q, IE2=IE2,
                  grad=grad, Hobs=Hobs, theta=theta, sigma=float(sigma), terms=list(terms), reml=bool(reml))


# --------------------------------------------------------------------------- one grouping factor: per-level blocks
def _tsum(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``sum_l A_l' B_l`` for stacked ``A`` (g x K x p), ``B`` (g x K x q): one BLAS call."""
    return A.reshape(-1, A.shape[-1]).T @ B.reshape(-1, B.shape[-1])


def _bsym(a: np.ndarray) -> np.ndarray:
    return (a + np.swapaxes(a, -1, -2)) / 2.0


def compute_pieces_blocks(cp: CrossProducts, terms: Sequence, theta: np.ndarray, sigma: float,
                          reml: bool = True) -> Pieces:
    """:func:`compute_pieces` for a single grouping factor, as sums over levels (cost ``O(g K^3 + g K^2 p^2)``).

    Every ``q x q`` matrix of the dense path (``Z'Z``, ``K``, ``M``, ``Z'Sigma^-1 Z``, the
    ``D_r``) is block diagonal with one ``K x K`` block per level, so each product of the
    dense formulas is a stack of per-level products and each ``X'...X`` or trace a sum over
    levels.  Same results as the dense path to rounding.

    Parameters
    ----------
    cp : CrossProducts
        In block form (per-level ``S``, ``ZX``, ``Zy``).
    terms : sequence of ReTerm
        All on one grouping factor, in theta order.
    theta, sigma
        Internal θ and residual SD.
    """
    theta = np.asarray(theta, dtype=float)
    terms = list(terms)
    n, p = cp.n, cp.p
    S, Bz, zy = cp.S, cp.ZX, cp.Zy
    g, Kd = S.shape[0], S.shape[1]
    offs = np.cumsum([0] + [t.k for t in terms])[:-1]
    s2 = float(sigma) ** 2
    XX = cp.XtX
    Xy = cp.Xty
    # per-level Lambda (block diagonal over the terms) and K_i = Lam C_i^-1 Lam'
    Lam = np.zeros((Kd, Kd))
    for t, o in zip(terms, offs):
        Lam[o:o + t.k, o:o + t.k] = t.lam(theta[t.theta_slice])
    Cm = _bsym(Lam.T @ S @ Lam) + np.eye(Kd)
    Lc = np.linalg.cholesky(Cm)
    Y = np.linalg.solve(Lc, np.broadcast_to(Lam.T, (g, Kd, Kd)))     # L_i^-1 Lam'
    Km = _bsym(np.swapaxes(Y, 1, 2) @ Y)                               # Lam C_i^-1 Lam'
    SK = S @ Km
    M = np.eye(Kd) - SK                                                # I - S_i K_i
    KB = Km @ Bz
    BKB = _sym(_tsum(Bz, KB))
    XtSiX = _sym(XX - BKB) / s2
    Phi = _sym(np.linalg.inv(XtSiX))
    beta = Phi @ ((Xy - _tsum(KB, zy[:, :, None]).ravel()) / s2)
    F = (M @ Bz) / s2                                                  # Z_i' Sigma_i^-1 X_i
    St = _bsym(M @ S) / s2                                             # Z_i' Sigma_i^-1 Z_i
    N = (M @ F) / s2                                                   # Z_i' Sigma_i^-2 X_i
    TT = _sym(XX - 2.0 * BKB + _tsum(KB, S @ KB))
    MB = F * s2
    XS2X = TT / s2 ** 2
    XS3X = _sym(TT - _tsum(MB, Km @ MB)) / s2 ** 3
    trKA = float(np.sum(Km * S))
    trKAKA = float(np.sum(SK * np.swapaxes(SK, 1, 2)))
    trSi = (n - trKA) / s2
    trSi2 = (n - 2.0 * trKA + trKAKA) / s2 ** 2

    # residual cross-products r = y - X beta, from the stored cross-products
    zr = zy - Bz @ beta                                                # g x K
    rr = float(cp.yty - 2.0 * beta @ Xy + beta @ XX @ beta)
    Xr = Xy - XX @ beta
    u = np.einsum("lab,lb->la", M, zr) / s2                            # Z_i' Sigma_i^-1 r_i
    Kz = np.einsum("lab,lb->la", Km, zr)
    mmz = np.einsum("lab,lb->la", M, u) / s2
    SKz = np.einsum("lab,lb->la", S, Kz)
    tt = rr - 2.0 * float(np.sum(zr * Kz)) + float(np.sum(Kz * SKz))
    Mz = np.einsum("lab,lb->la", M, zr)
    KMz = np.einsum("lab,lb->la", Km, Mz)

    varpars, gamma = _varpars(terms, theta, s2)
    ng = len(varpars)
    Ssum = St.sum(axis=0)
    Rsum = (St @ np.swapaxes(M, 1, 2)).sum(axis=0) / s2              # sum_i block of Z'Sigma^-2 Z
    P, trSiG, DF, HS, Wv, cvec, ypgpy, Ds = [], [], [], [], [], [], [], []
    for vp in varpars:
        if vp.term < 0:
            P.append(-XS2X)
            trSiG.append(trSi)
            DF.append(None); HS.append(None); Wv.append(None); Ds.append(None)
            ypgpy.append(tt / s2 ** 2)
            cvec.append((Xr - 2.0 * _tsum(KB, zr[:, :, None]).ravel() + _tsum(KB, SKz[:, :, None]).ravel())
                        / s2 ** 2)
            continue
        o = offs[vp.term]
        D = np.zeros((Kd, Kd))
        D[o + vp.i, o + vp.j] = D[o + vp.j, o + vp.i] = 1.0
        dfr = D @ F
        P.append(-_sym(_tsum(F, dfr)))
        trSiG.append(float(np.sum(D * Ssum)))
        w = u @ D                                                        # D u_i (D symmetric)
        DF.append(dfr); HS.append(D @ St); Wv.append(w); Ds.append(D)
        ypgpy.append(float(np.sum(u * w)))
        cvec.append(_tsum(F, w[:, :, None]).ravel())

    Q: dict = {}
    Ktr = np.zeros((ng, ng))
    bSb = np.zeros((ng, ng))
    for a in range(ng):
        for c in range(a, ng):
            if Ds[a] is not None and Ds[c] is not None:
                Q[a, c] = _tsum(DF[a], St @ DF[c])
                Ktr[a, c] = float(np.sum(HS[a] * np.swapaxes(HS[c], 1, 2)))
                bSb[a, c] = float(np.sum(Wv[a] * np.einsum("lab,lb->la", St, Wv[c])))
            elif Ds[a] is not None:  # c is the residual
                Q[a, c] = _tsum(DF[a], N)
                Ktr[a, c] = float(np.sum(Ds[a] * Rsum))
                bSb[a, c] = float(np.sum(Wv[a] * mmz))
            else:  # both residual
                Q[a, c] = XS3X
                Ktr[a, c] = trSi2
                bSb[a, c] = (tt - float(np.sum(Mz * KMz))) / s2 ** 3
            Ktr[c, a] = Ktr[a, c]
            bSb[c, a] = bSb[a, c]
    return _assemble(beta, Phi, varpars, gamma, P, Q, Ktr, bSb, cvec, trSiG, ypgpy, theta, sigma, terms, reml)


def model_pieces_auto(cp: CrossProducts, terms: Sequence, theta: np.ndarray, sigma: float,
                      path: str = "auto", reml: bool = True, kernel=None) -> Pieces:
    """The one place that picks the algebra: per-level blocks for one grouping factor, else dense ``q x q``.

    Parameters
    ----------
    path : {"auto", "block", "dense"}
        ``"auto"``: blocks when the cross-products are in block form, else dense.  ``"dense"``
        forces the q x q path (the cross-products are converted).
    """
    if path not in ("auto", "block", "dense"):
        raise ValueError("path must be 'auto', 'block' or 'dense'")
    use_block = cp.block if path == "auto" else path == "block"
    if use_block:
        if not cp.block:
            raise ValueError("the block path needs every random term on one grouping factor")
        return compute_pieces_blocks(cp, terms, theta, sigma, reml=reml)
    gcp = cp.general(list(terms))
    if gcp.ZtZ.shape[0] > _BLOCKED_INVERSE_Q and _crossed_ok(terms, np.asarray(theta, dtype=float), kernel):
        return compute_pieces_crossed(gcp, terms, theta, sigma, reml=reml, kernel=kernel)
    return compute_pieces(gcp, terms, theta, sigma, reml=reml, kernel=kernel)


# --------------------------------------------------------------------------- derived, cached
def kr_vcov_pieces(pc: Pieces) -> dict:
    """Kenward-Roger's adjusted covariance ``Phi_A`` and ``W`` (pbkrtest's ``vcovAdj``).

    Returns
    -------
    dict
        ``PhiA``, ``W`` (``2 * IE2^{-1}``, generalized inverse if ill-conditioned) and ``condi``.
    """
    if "kr" in pc.cache:
        return pc.cache["kr"]
    if not pc.reml:
        raise VcompError("Kenward-Roger's method is only available for REML fits (as in pbkrtest and lmerTest); "
                         "refit with vcomp.lmm(formula, data, reml=True) or use ddf='satterthwaite'.")
    ng = len(pc.varpars)
    ev = np.linalg.eigvalsh(pc.IE2)
    condi = float(np.min(np.abs(ev)))
    if condi > 1e-10:
        W = 2.0 * np.linalg.inv(pc.IE2)
    else:
        W = 2.0 * np.linalg.pinv(pc.IE2, rcond=np.sqrt(np.finfo(float).eps))
    W = _sym(W)
    Phi = pc.Phi
    p = Phi.shape[0]
    U = np.zeros((p, p))
    for a in range(ng):
        PaPhi = pc.P[a] @ Phi
        for c in range(ng):
            Qac = pc.Q[a, c] if a <= c else pc.Q[c, a].T
            U += W[a, c] * (Qac - PaPhi @ pc.P[c])
    PhiA = _sym(Phi + 2.0 * Phi @ U @ Phi)
    out = {"PhiA": PhiA, "W": W, "condi": condi}
    pc.cache["kr"] = out
    return out


def _dgamma(pc: Pieces) -> tuple[np.ndarray, np.ndarray]:
    """Jacobian (ng x nv) and Hessians (ng x nv x nv) of gamma in lmerTest's varpar = (theta, sigma)."""
    theta, sigma = pc.theta, pc.sigma
    s2 = sigma ** 2
    nth = theta.size
    nv = nth + 1
    ng = len(pc.varpars)
    J = np.zeros((ng, nv))
    H = np.zeros((ng, nv, nv))
    # theta index of entry (a, b) of each term's factor
    offs, Ls = [], []
    for t in pc.terms:
        offs.append({ij: t.theta_slice.start + m for m, ij in enumerate(t.varpars())})
        Ls.append(t.lam(theta[t.theta_slice]))
    for r, vp in enumerate(pc.varpars):
        if vp.term < 0:
            J[r, nth] = 2.0 * sigma
            H[r, nth, nth] = 2.0
            continue
        L = Ls[vp.term]
        pos = offs[vp.term]
        i, j = vp.i, vp.j
        LLt = L @ L.T
        J[r, nth] = 2.0 * sigma * LLt[i, j]
        H[r, nth, nth] = 2.0 * LLt[i, j]
        for (a, bb), ma in pos.items():
            d = (L[j, bb] if a == i else 0.0) + (L[i, bb] if a == j else 0.0)
            J[r, ma] = s2 * d
            H[r, ma, nth] = H[r, nth, ma] = 2.0 * sigma * d
            for (c, dd), mc in pos.items():
                if dd != bb:
                    continue
                v = (1.0 if (a == i and c == j) else 0.0) + (1.0 if (a == j and c == i) else 0.0)
                H[r, ma, mc] += s2 * v
    return J, H


def satterthwaite_pieces(pc: Pieces) -> dict:
    """lmerTest's ``vcov_varpar`` and ``Jac_list`` in varpar = (theta, sigma), analytically.

    The Hessian of the REML deviance in varpar is ``J' H_gamma J + sum_r g_r d2gamma_r``
    (chain rule; ``g`` the deviance gradient in gamma), inverted on its positive
    eigen-space as lmerTest does (tolerance 1e-8), times 2.

    Returns
    -------
    dict
        ``vcov_varpar`` (nv x nv) and ``jac`` (nv x p x p): derivatives of ``Phi``.
    """
    if "satt" in pc.cache:
        return pc.cache["satt"]
    J, Hg = _dgamma(pc)
    Hv = J.T @ pc.Hobs @ J + np.einsum("r,rab->ab", pc.grad, Hg)
    Hv = _sym(Hv)
    w, v = np.linalg.eigh(Hv)
    pos = w > 1e-8
    vcov_vp = 2.0 * (v[:, pos] / w[pos]) @ v[:, pos].T
    dPhi = np.array([-(pc.Phi @ Pr @ pc.Phi) for Pr in pc.P])      # ng x p x p
    jac = np.einsum("rj,rab->jab", J, dPhi)
    out = {"vcov_varpar": vcov_vp, "jac": jac, "hessian": Hv}
    pc.cache["satt"] = out
    return out
