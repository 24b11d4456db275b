"""The one O(n) pass: standardisation and the blocked cross-products [Z X y]'[Z X y].

Every later stage (criterion, optimizer, BLUPs, Satterthwaite, Kenward-Roger, type III
contrasts, refits) works from the :class:`CrossProducts` kept on the model; X'X and Z'Z
are never recomputed from the data after the fit.

Results must not depend on the units or offsets of the data, so the cross-products are
formed from standardised columns (:class:`Standardization`): with an intercept, every
other fixed column is centred and scaled, and the response is centred and scaled
(``X_int = X T``, ``y_int = (y - c) / s``).  The random-effect columns are scaled by their
terms (see :mod:`vcomp.mixed.reterm`).  All fitted quantities are exact transforms of
the internal ones: ``beta = s T beta_int + c e_0``, ``Var(beta) = s^2 T Phi_int T'``,
``sigma = s sigma_int``; a contrast ``L`` of the original coefficients is ``L T`` inside.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
import scipy.linalg as sla
from scipy.linalg import solve_triangular

from .._errors import DataError, warn
from .reterm import ReTerm, z_dense, z_matrix

__all__ = ["Standardization", "standardization", "standardize", "drop_aliased", "CrossProducts", "crossproducts", "level_sums", "single_factor", "aliased_columns",
           "check_residual", "with_response"]


@dataclass(frozen=True)
class Standardization:
    """The affine map between the original and the internal (standardised) problem.

    Attributes
    ----------
    T : ndarray, shape (p, p)
        ``X_int = X T`` (identity when there is no intercept column).
    center : float
        ``c``, subtracted from y (0 without an intercept).
    scale : float
        ``s``, the response's standard deviation after centring (its RMS without an intercept).
    icpt : int or None
        Index of the intercept column.
    """

    T: np.ndarray
    center: float
    scale: float
    icpt: int | None

    @property
    def p(self) -> int:
        return self.T.shape[0]

    def internal_beta(self, beta_int: np.ndarray) -> np.ndarray:
        """The internal coefficients with the response's centre folded in: ``beta = s T beta_full``."""
        b = np.array(beta_int, dtype=float)
        if self.icpt is not None:
            b[self.icpt] += self.center / self.scale
        return b

    def beta(self, beta_int: np.ndarray) -> np.ndarray:
        return self.scale * (self.T @ self.internal_beta(beta_int))

    def vcov(self, phi_int: np.ndarray) -> np.ndarray:
        return self.scale ** 2 * (self.T @ phi_int @ self.T.T)

    def contrast(self, L: np.ndarray) -> np.ndarray:
        """A contrast of the original coefficients in internal coordinates."""
        return np.asarray(L, dtype=float) @ self.T

    def y(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=float) - self.center) / self.scale

    def log_det_T(self) -> float:
        """``log|det T|`` (T is triangular)."""
        d = np.abs(np.diag(self.T))
        return float(np.sum(np.log(d))) if d.size else 0.0

    def criterion(self, crit_int: float, reml: bool, n: int, p: int) -> float:
        """lme4's criterion of the original data from the internal one."""
        if reml:
            return crit_int + (n - p) * 2.0 * np.log(self.scale) - 2.0 * self.log_det_T()
        return crit_int + n * 2.0 * np.log(self.scale)


def standardization(center: np.ndarray, rms: np.ndarray, icpt: int | None, ycenter: float,
                    yscale: float) -> tuple[Standardization, np.ndarray]:
    """The map from the columns' centres and root-mean-squares about them (in memory or reduced data).

    Parameters
    ----------
    center : ndarray (p,)
        Subtracted from each column (0 for the intercept, and for every column without one).
    rms : ndarray (p,)
        Root-mean-square of each column about its centre (1 for the intercept).
    icpt : int or None
        The intercept column.
    ycenter, yscale : float
        The response's centre and root-mean-square about it.

    Returns
    -------
    Standardization, and the column divisors ``d`` (``X_int = (X - center) / d``).

    Raises
    ------
    DataError
        A constant response.
    """
    p = len(center)
    d = np.where(rms > 0, rms, 1.0)
    if icpt is not None:
        d[icpt] = 1.0
        T = np.eye(p)
        others = [j for j in range(p) if j != icpt]
        T[icpt, others] = -center[others] / d[others]
        T[others, others] = 1.0 / d[others]
    else:
        T = np.diag(1.0 / d)
    c, s = float(ycenter), float(yscale)
    if not np.isfinite(s) or s <= 0 or s <= 1e-13 * max(abs(c), 1e-300):
        raise DataError("the response is constant (every value is %.10g): there is no variation to analyse" % c)
    return Standardization(T, c, s, icpt), d


def standardize(X: np.ndarray, y: np.ndarray, names=None) -> tuple[Standardization, np.ndarray, np.ndarray]:
    """Centre and scale the fixed columns and the response.

    Returns the map and the internal ``X_int``, ``y_int``.

    Raises
    ------
    DataError
        A constant response, or a response fitted exactly by the fixed effects.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, p = X.shape
    means = X.mean(axis=0) if n else np.zeros(p)
    icpt = None
    for j in np.flatnonzero(means == 1.0):          # only a column averaging 1 can be the intercept
        if np.all(X[:, j] == 1.0):
            icpt = int(j)
            break
    center = np.zeros(p)
    Xc = np.array(X, order="F")                        # column by column below: no temporaries
    others = [j for j in range(p) if j != icpt]
    if icpt is not None:
        center[others] = means[others]
        c = float(np.mean(y))
        for j in others:
            Xc[:, j] -= center[j]
    else:
        c = 0.0
    rms = np.ones(p)
    for j in others:
        rms[j] = np.sqrt(float(Xc[:, j] @ Xc[:, j]) / n) if n else 0.0
    yc = y - c
    s = float(np.sqrt(float(yc @ yc) / n)) if n else 0.0
    std, d = standardization(center, rms, icpt, c if n else float("nan"), s)
    for j in others:
        Xc[:, j] /= d[j]
    if n:
        yc /= s
    return std, Xc, yc


def xtx_factor(cp: "CrossProducts"):
    """``scipy.linalg.cho_factor`` of X'X, or None when there is no X or it is not positive definite."""
    try:
        return sla.cho_factor(cp.XtX, lower=True) if cp.p else None
    except np.linalg.LinAlgError:
        return None


def check_residual(cp: "CrossProducts", factor=None) -> None:
    """Raise when the fixed effects fit the response exactly (no residual variation is left).

    ``factor`` (:func:`xtx_factor`, optional) spares refits the least-squares solve.
    """
    if cp.p == 0:
        return
    try:
        b = (sla.cho_solve(factor, cp.Xty, check_finite=False) if factor is not None
             else np.linalg.lstsq(cp.XtX, cp.Xty, rcond=None)[0])
    except np.linalg.LinAlgError:  # pragma: no cover
        return
    rss = cp.yty - float(cp.Xty @ b)
    if rss <= 1e-10 * cp.yty:
        raise DataError("the response is fitted exactly by the fixed effects (the residuals are all 0): no "
                        "variation is left for variance components; check for a duplicated or derived response")


def aliased_columns(XtX: np.ndarray, tol: float = 1e-7) -> tuple[list[int], list[int]]:
    """Columns kept and dropped as aliased, in order (as R's pivoting QR keeps the earlier column).

    A column is dropped when its residual variance after the kept earlier columns is below
    ``tol`` of its own (decided on the correlation scale, one incremental Cholesky: O(p^3)).
    """
    p = XtX.shape[0]
    d = np.sqrt(np.clip(np.diag(XtX), 0, None))
    if p and np.all(d > 0):  # full rank (the usual case): one Cholesky, the same pivots as the loop below
        try:
            piv = np.diag(np.linalg.cholesky(XtX / np.outer(d, d))) ** 2
        except np.linalg.LinAlgError:
            piv = np.zeros(0)
        if piv.size and np.all(piv > tol):
            return list(range(p)), []
    keep: list[int] = []
    dropped: list[int] = []
    L = np.zeros((p, p))
    m = 0
    for j in range(p):
        if d[j] <= 0:
            dropped.append(j)
            continue
        c = XtX[keep, j] / (d[keep] * d[j]) if keep else np.zeros(0)
        l = solve_triangular(L[:m, :m], c, lower=True, check_finite=False) if m else np.zeros(0)
        r = 1.0 - float(l @ l)
        if r > tol:
            L[m, :m] = l
            L[m, m] = np.sqrt(r)
            m += 1
            keep.append(j)
        else:
            dropped.append(j)
    return keep, dropped


#: rows per block of :func:`centered_crossprod` (its temporaries stay a few MB for any n)
_CHUNK_ROWS = 65536


def centered_crossprod(X: np.ndarray, intercept: bool) -> np.ndarray:
    """``Xc'Xc`` of the columns centred at their means (the intercept column, 0, first, kept at 1)
    with an intercept, else ``X'X``: summed over blocks of rows (no n x p copy, and as stable as
    centring first: no ``X'X - n m m'`` cancellation)."""
    X = np.asarray(X, dtype=float)
    if not intercept:
        return X.T @ X
    n, p = X.shape
    m = X.mean(axis=0)
    m[0] = 0.0
    out = np.zeros((p, p))
    for a in range(0, n, _CHUNK_ROWS):
        B = X[a:a + _CHUNK_ROWS] - m
        B[:, 0] = 1.0
        out += B.T @ B
    return out


def drop_aliased(fixed, XtXc: np.ndarray):
    """The fixed coding without its aliased columns (warned, as lme4 does) and the kept column indices.

    ``XtXc``: the cross-products of the fixed columns centred at their means (the intercept
    column kept at 1) when the model has an intercept, else raw.
    """
    keep, dropped = aliased_columns(XtXc)
    if dropped:
        warn("fixed-effect model matrix is rank deficient so dropping %d column(s): %s"
             % (len(dropped), ", ".join(fixed.colnames[j] for j in dropped)))
        fixed = fixed.subset(keep)
    return fixed, keep, dropped


def single_factor(terms: list[ReTerm]) -> bool:
    """True when every random term is on the same grouping factor (per-level block structure)."""
    if not terms:
        return False
    g0 = terms[0].group
    return all(t.group == g0 for t in terms[1:])


#: :func:`level_sums` uses one bincount per product column up to this many columns
_BINCOUNT_MAX = 32


def level_sums(codes: np.ndarray, nlev: int, A: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
    """Per-level cross-products ``sum_{i in level} a_i b_i'`` (``nlev x ka x kb``) in one sorted pass.

    The single owner of per-level sums: the criterion's ``Z_i'Z_i``, ``Z_i'X_i``, the shrinkage
    own fits and the Kenward-Roger block path all come from here.
    """
    A = np.asarray(A, dtype=float)
    sym = B is None
    B = A if sym else np.asarray(B, dtype=float)
    ka, kb = A.shape[1], B.shape[1]
    out = np.zeros((nlev, ka, kb))
    if ka * kb <= 64:  # a few weighted bincounts beat a sort
        for a in range(ka):
            for b in range(a if sym else 0, kb):
                v = np.bincount(codes, weights=A[:, a] * B[:, b], minlength=nlev)
                out[:, a, b] = v
                if sym:
                    out[:, b, a] = v
        return out
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    starts = np.searchsorted(sc, np.arange(nlev))
    prod = (A[order][:, :, None] * B[order][:, None, :]).reshape(len(order), -1)
    present = np.flatnonzero(np.bincount(sc, minlength=nlev) > 0)
    if len(order):
        out = out.reshape(nlev, -1)
        out[present] = np.add.reduceat(prod, starts[present], axis=0)
    return out.reshape(nlev, A.shape[1], B.shape[1])


def _column_sums(codes: np.ndarray, nlev: int, acols: list, bcols: list, sym: bool = False,
                 memo: dict | None = None) -> np.ndarray:
    """``level_sums`` from lists of columns (``None`` = a column of ones): no stacked n x k copies.

    One weighted ``bincount`` per pair of columns (plain counts for two columns of ones); ``memo``
    (shared between calls on the same columns) keeps each pair's sums, so a pair is summed once.
    """
    memo = {} if memo is None else memo
    out = np.empty((nlev, len(acols), len(bcols)))
    for i, a in enumerate(acols):
        for j in range(i if sym else 0, len(bcols)):
            b = bcols[j]
            key = tuple(sorted((0 if a is None else id(a), 0 if b is None else id(b))))
            v = memo.get(key)
            if v is None:
                w = None if a is None and b is None else (b if a is None else a if b is None else a * b)
                v = memo[key] = np.bincount(codes, weights=w, minlength=nlev)[:nlev]
            out[:, i, j] = v
            if sym and j > i:
                out[:, j, i] = out[:, i, j]
    return out


def _term_columns(terms: list[ReTerm]) -> tuple[list, np.ndarray]:
    """The original columns of the terms' model matrices (``None`` for an intercept) and their scales."""
    cols, scale = [], []
    for t in terms:
        for j in range(t.k):
            one = t.coef_names[j] == "(Intercept)" and t.scale[j] == 1.0
            cols.append(None if one else t.Xi[:, j])
            scale.append(t.scale[j])
    return cols, np.asarray(scale, dtype=float)


@dataclass
class CrossProducts:
    """Blocked cross-products of the internal ``[Z X y]``.

    Attributes
    ----------
    n, p : int
    XtX, Xty, yty
        Fixed part.
    block : bool
        All random terms on one grouping factor: per-level blocks (``S``, ``ZX``, ``Zy``).
    S : ndarray (g, K, K), ZX : (g, K, p), Zy : (g, K)
        Per level ``Z_i'Z_i``, ``Z_i'X_i``, ``Z_i'y_i`` (block form; ``K`` = coefficients per level).
    ZtZ : sparse (q, q) (a dense array up to ``SMALL_DENSE_Q`` random effects), ZtX : ndarray (q, p), Zty : (q,)
        General form (several grouping factors); in block form built on demand.
    """

    n: int
    p: int
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    block: bool
    S: np.ndarray | None = None
    ZX: np.ndarray | None = None
    Zy: np.ndarray | None = None
    ZtZ: object = None
    ZtX: np.ndarray | None = None
    Zty: np.ndarray | None = None
    codes: np.ndarray | None = None

    @property
    def WtW(self) -> np.ndarray:
        """``[X y]'[X y]``."""
        p = self.p
        W = np.empty((p + 1, p + 1))
        W[:p, :p] = self.XtX
        W[:p, p] = W[p, :p] = self.Xty
        W[p, p] = self.yty
        return W

    def general(self, terms: list[ReTerm]) -> "CrossProducts":
        """The general (q x q, lme4 column order) form, from the blocks when needed."""
        if self.ZtZ is not None:
            return self
        g, K, _ = self.S.shape
        # block order: level-major, then the terms' coefficients; lme4's: term, level, coefficient
        perm = np.empty(g * K, dtype=np.int64)
        o = 0
        for t in terms:
            for j in range(t.k):
                perm[t.offset + np.arange(g) * t.k + j] = np.arange(g) * K + o + j
            o += t.k
        full = sp.block_diag(list(self.S), format="csr")[perm][:, perm]
        return replace(self, ZtZ=full.tocsc(), ZtX=self.ZX.reshape(g * K, -1)[perm], Zty=self.Zy.reshape(-1)[perm])



#: systems of at most this many random effects are held and factored dense (numpy's dense products
#: beat scipy's sparse ones there): Z'Z (with at most 2000 rows per effect), the criterion's whole
#: system (:class:`~vcomp.mixed.criterion.GeneralKernel`) and the inference pieces
SMALL_DENSE_Q = 200


def crossproducts(X: np.ndarray, y: np.ndarray, terms: list[ReTerm], block: bool | None = None,
                  ones: int | None = None) -> CrossProducts:
    """Form the cross-products of the internal ``[Z X y]`` once (cost O(n (q_level + p)^2)).

    Parameters
    ----------
    X, y : ndarray
        Internal (standardised) fixed matrix and response.
    terms : list of ReTerm
    block : bool, optional
        Force the block (one grouping factor) or the general form.
    ones : int, optional
        A column of X known to be all ones (the intercept of :func:`standardize`): its per-level
        sums are the level counts.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, p = X.shape
    XtX = X.T @ X
    Xty = X.T @ y
    yty = float(y @ y)
    if block is None:
        block = single_factor(terms)
    if block:
        codes = terms[0].codes
        g = terms[0].nlev
        zc, zs = _term_columns(terms)                     # internal Z = Z_orig D^-1: scale the sums
        wc = [None if j == ones else X[:, j] for j in range(p)] + [y]
        memo: dict = {}
        S = _column_sums(codes, g, zc, zc, sym=True, memo=memo) / (zs[:, None] * zs[None, :])[None]
        ZW = _column_sums(codes, g, zc, wc, memo=memo) / zs[None, :, None]
        return CrossProducts(n, p, XtX, Xty, yty, True, S=S, ZX=ZW[:, :, :p], Zy=ZW[:, :, p], codes=codes)
    q = sum(t.q for t in terms)
    if q <= SMALL_DENSE_Q and n * q <= SMALL_DENSE_Q * 2000:   # small: dense products (scipy's overhead dominates)
        Zd = z_dense(terms, n)
        return CrossProducts(n, p, XtX, Xty, yty, False, ZtZ=Zd.T @ Zd, ZtX=Zd.T @ X, Zty=Zd.T @ y)
    Zc = sp.csc_matrix(z_matrix(terms, n))
    ZtZ = (Zc.T @ Zc).tocsc()
    ZtX = np.asarray(Zc.T @ X)
    Zty = np.asarray(Zc.T @ y).ravel()
    return CrossProducts(n, p, XtX, Xty, yty, False, ZtZ=ZtZ, ZtX=ZtX, Zty=Zty)


def transposed_z(Z: sp.spmatrix) -> sp.csr_matrix:
    """``Z'`` as CSR (the products ``Z'y`` of refits)."""
    return sp.csr_matrix(Z.T)


def with_response(cp: CrossProducts, X: np.ndarray, y: np.ndarray, terms: list[ReTerm],
                  Zt: sp.spmatrix | None = None) -> CrossProducts:
    """The same cross-products for a new internal response: only X'y, Z'y and y'y are recomputed.

    ``Zt`` (optional): ``Z'`` kept by the caller across refits (sparse CSR, :func:`transposed_z`).
    """
    y = np.asarray(y, dtype=float)
    new = copy.copy(cp)                 # the y-free fields are shared (read-only by convention)
    new.Xty, new.yty = X.T @ y, float(y @ y)
    if cp.block:
        zc, zs = _term_columns(terms)
        new.Zy = _column_sums(cp.codes, cp.S.shape[0], zc, [y])[:, :, 0] / zs[None, :]
        return new
    if Zt is None:
        Zt = transposed_z(z_matrix(terms, len(y)))
    new.Zty = np.asarray(Zt @ y).ravel()
    return new
