"""Residual covariance structures of ``vcomp.lmm(..., residual=...)``: one class per structure.

The residual covariance matrix is block diagonal: one block per subject (``ar1(time | subject)``
and friends), per observation (``diag(1 | group)``) or per trial (``ar1(row):ar1(col) | trial``).
Blocks whose matrices are equal (same observed positions, same group) form a :class:`Pattern`;
every computation runs over patterns, never over an ``n x n`` matrix.

Interface of a structure (what the fitting engine, :mod:`vcomp.mixed.residual_fit`, uses; nothing
else looks inside a structure)
-------------------------------------------------------------------------------------------------
``names``
    Names of the reported parameters (``residual_params``), in order; ``reported(gamma)`` their values.
``infer_names``
    Names of ``gamma``, the natural parameters the inference differentiates (covariances for
    ``us``; variances and correlations otherwise).
``n_xi``, ``xi_lower``, ``xi_start(layout, resid, corr=True)``
    The optimizer's parameters ``xi``: the matrix relative to the profiled scale ``sigma^2``
    (one variance is fixed at 1), with bounds and a start from least-squares residuals
    (``corr=False``: the correlations start at 0, a second start when random terms are present).
``rel_cov(pattern, xi)``
    The pattern's ``k x k`` relative covariance (``V_block = sigma^2 rel_cov``).
``natural(xi, s2)``
    ``gamma`` from ``xi`` and the profiled scale.
``cov_derivs(pattern, gamma, second=True)``
    ``(R, {a: dR/dgamma_a}, {(a, b): d2R/dgamma_a dgamma_b})`` with only the non-zero entries
    (``a <= b``): the block and its first and (if ``second``) second derivatives.
``normalize(group, pos)``
    The pattern key of a block (structures that only depend on lags shift the positions).
``band``
    Bandwidth of every block's precision matrix in position order (AR(1): 1; None: full), so the
    cross-products store only that band.
``natural_jacobian(xi)`` (optional)
    ``d gamma / d xi`` at scale 1; without it the criterion's gradient differentiates ``natural``.
``singular(gamma)``
    Whether a correlation is at +-1 or a variance at 0 (the fit's ``singular`` flag).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._coding import as_frame, check_columns, factor_levels, interaction
from .._errors import DataError, DroppedRowsWarning, warn
from ..formula import ResidualSpec

__all__ = ["Pattern", "Layout", "ResidualStructure", "ScaledCorrelation", "Unstructured", "WithNugget",
           "build_structure", "residual_frame", "pacf_to_acf", "acf_to_pacf"]


# --------------------------------------------------------------------------- layout
@dataclass
class Pattern:
    """Residual blocks sharing one covariance matrix.

    Attributes
    ----------
    group : int
        Level of the structure's group (``us(t | g / s)``, ``diag(1 | g)``); 0 otherwise.
    pos : ndarray of int
        Positions of the block's rows: ``(k,)`` time positions, or ``(k, 2)`` (row, column) for a grid.
    rows : ndarray of int, shape (count, k)
        Row indices into the data, one line per block, rows in the order of ``pos``.
    """

    group: int
    pos: np.ndarray
    rows: np.ndarray

    @property
    def k(self) -> int:
        return int(self.rows.shape[1])

    @property
    def count(self) -> int:
        return int(self.rows.shape[0])


@dataclass
class Layout:
    """All blocks of the residual matrix, grouped by pattern (see :class:`Pattern`)."""

    n: int
    patterns: list
    nblocks: int


def _group_blocks(block: np.ndarray, pos: np.ndarray, group: np.ndarray, normalize) -> list:
    """Patterns from per-row block ids, positions (n,) or (n, 2) and block groups."""
    pos2 = pos if pos.ndim == 2 else pos[:, None]
    order = np.lexsort(tuple(pos2[:, j] for j in range(pos2.shape[1] - 1, -1, -1)) + (block,))
    b = block[order]
    cut = np.flatnonzero(np.diff(b)) + 1
    starts = np.concatenate([[0], cut])
    stops = np.concatenate([cut, [len(b)]])
    sizes = stops - starts
    found: dict = {}
    # blocks of equal size are keyed in one vectorised pass per size
    for k in np.unique(sizes):
        sel = np.flatnonzero(sizes == k)
        idx = starts[sel][:, None] + np.arange(k)[None, :]
        rows = order[idx]                                  # (nb, k)
        g = group[rows[:, 0]]
        P = pos2[rows]                                     # (nb, k, d)
        keys = np.concatenate([g[:, None], P.reshape(len(sel), -1)], axis=1)
        uk, inv = np.unique(keys, axis=0, return_inverse=True)
        inv = np.asarray(inv).ravel()
        for u in range(len(uk)):
            r = rows[inv == u]
            gg, pp = normalize(int(uk[u, 0]), pos[r[0]])
            key = (gg, pp.tobytes(), pp.shape)
            if key in found:
                found[key] = Pattern(gg, found[key].pos, np.vstack([found[key].rows, r]))
            else:
                found[key] = Pattern(gg, pp, r)
    return list(found.values())


# --------------------------------------------------------------------------- correlation families
def pacf_to_acf(phi: np.ndarray) -> np.ndarray:
    """Autocorrelations rho_1..rho_L from partial autocorrelations (Durbin-Levinson).

    Any ``phi`` in (-1, 1)^L gives a positive definite Toeplitz correlation matrix.
    """
    phi = np.asarray(phi, dtype=float)
    rho = np.zeros(len(phi))
    a = np.zeros(0)
    for k in range(len(phi)):
        if k == 0:
            rho[0] = phi[0]
            a = phi[:1].copy()
            continue
        v = 1.0 - a @ rho[:k]
        rho[k] = phi[k] * v + a @ rho[k - 1::-1][:k]
        a = np.concatenate([a - phi[k] * a[::-1], [phi[k]]])
    return rho


def acf_to_pacf(rho: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pacf_to_acf` (partial autocorrelations, clipped to (-0.98, 0.98))."""
    rho = np.asarray(rho, dtype=float)
    phi = np.zeros(len(rho))
    a = np.zeros(0)
    for k in range(len(rho)):
        if k == 0:
            phi[0] = np.clip(rho[0], -0.98, 0.98)
            a = phi[:1].copy()
            r = pacf_to_acf(phi[:1])
            continue
        r = pacf_to_acf(phi[:k])
        v = 1.0 - a @ r[:k]
        phi[k] = np.clip((rho[k] - a @ r[k - 1::-1][:k]) / v if v > 1e-12 else 0.0, -0.98, 0.98)
        a = np.concatenate([a - phi[k] * a[::-1], [phi[k]]])
    return phi


def _lagpow(rho: float, lag: np.ndarray, order: int) -> np.ndarray:
    """``d^order/drho^order rho^lag`` for integer lags >= 0 (no 0**negative)."""
    if order == 0:
        return rho ** lag
    if order == 1:
        return lag * rho ** np.maximum(lag - 1, 0)
    return lag * (lag - 1) * rho ** np.maximum(lag - 2, 0)


class _AR1:
    """rho^|i - j| on positions (a Markov chain: tridiagonal precision)."""

    band = 1

    def __init__(self) -> None:
        self.names = ["rho"]

    def C(self, pat, r):
        lag = np.abs(pat.pos[:, None] - pat.pos[None, :])
        return _lagpow(r[0], lag, 0), {0: _lagpow(r[0], lag, 1)}, {(0, 0): _lagpow(r[0], lag, 2)}

    def to_xi(self, r):
        return np.arctanh(np.clip(r, -0.98, 0.98))

    def from_xi(self, x):
        return np.tanh(x)

    def start(self, emp):
        return np.array([np.clip(emp.lag_mean(1), -0.9, 0.9)])


class _CS:
    """rho + (1 - rho)[i = j]; rho > -1/(k_max - 1)."""

    def __init__(self, kmax: int) -> None:
        self.names = ["rho"]
        self.lo = -1.0 / (kmax - 1) if kmax > 1 else -1.0

    def C(self, pat, r):
        k = len(pat.pos)
        eye = np.eye(k)
        return r[0] + (1.0 - r[0]) * eye, {0: 1.0 - eye}, {}

    def from_xi(self, x):
        return self.lo + (1.0 - self.lo) * (np.tanh(x) + 1.0) / 2.0

    def to_xi(self, r):
        u = 2.0 * (np.asarray(r) - self.lo) / (1.0 - self.lo) - 1.0
        return np.arctanh(np.clip(u, -0.98, 0.98))

    def start(self, emp):
        return np.array([np.clip(emp.offdiag_mean(), self.lo / 2, 0.9)])


class _Toeplitz:
    """rho_|i - j| (rho_0 = 1), optimised through partial autocorrelations."""

    def __init__(self, T: int) -> None:
        self.L = T - 1
        self.names = ["rho:lag%d" % k for k in range(1, T)]

    def C(self, pat, r):
        lag = np.abs(pat.pos[:, None] - pat.pos[None, :])
        full = np.concatenate([[1.0], r])
        d1 = {j: (lag == j + 1).astype(float) for j in range(self.L) if np.any(lag == j + 1)}
        return full[lag], d1, {}

    def from_xi(self, x):
        return pacf_to_acf(np.tanh(x))

    def to_xi(self, r):
        return np.arctanh(acf_to_pacf(r))

    def start(self, emp):
        return np.array([np.clip(emp.lag_mean(k), -0.9, 0.9) for k in range(1, self.L + 1)])


class _AR1xAR1:
    """rho_r^|dr| rho_c^|dc| on a grid (separable spatial AR(1))."""

    def __init__(self, row: str, col: str) -> None:
        self.names = ["rho:%s" % row, "rho:%s" % col]

    def C(self, pat, r):
        lr = np.abs(pat.pos[:, None, 0] - pat.pos[None, :, 0])
        lc = np.abs(pat.pos[:, None, 1] - pat.pos[None, :, 1])
        a = [_lagpow(r[0], lr, o) for o in range(3)]
        b = [_lagpow(r[1], lc, o) for o in range(3)]
        return a[0] * b[0], {0: a[1] * b[0], 1: a[0] * b[1]}, \
            {(0, 0): a[2] * b[0], (0, 1): a[1] * b[1], (1, 1): a[0] * b[2]}

    def from_xi(self, x):
        return np.tanh(x)

    def to_xi(self, r):
        return np.arctanh(np.clip(r, -0.98, 0.98))

    def start(self, emp):
        return np.array([np.clip(emp.grid_lag(0), -0.9, 0.9), np.clip(emp.grid_lag(1), -0.9, 0.9)])


class _Identity:
    """Uncorrelated (``diag``)."""

    names: list = []

    def C(self, pat, r):
        return np.eye(pat.k), {}, {}

    def from_xi(self, x):
        return np.zeros(0)

    def to_xi(self, r):
        return np.zeros(0)

    def start(self, emp):
        return np.zeros(0)


# --------------------------------------------------------------------------- empirical start values
class _Empirical:
    """Moments of least-squares residuals by position, for start values."""

    def __init__(self, layout: Layout, resid: np.ndarray, T: int, ngroup: int) -> None:
        self.layout, self.r, self.T, self.ng = layout, resid, T, ngroup

    def cov(self, g: int | None = None) -> np.ndarray:
        """Pairwise T x T covariance of the residuals (group g, or all)."""
        T = self.T
        S = np.zeros((T, T))
        N = np.zeros((T, T))
        for pat in self.layout.patterns:
            if g is not None and pat.group != g:
                continue
            if pat.pos.ndim != 1:
                continue
            R = self.r[pat.rows]
            ix = np.ix_(pat.pos, pat.pos)
            S[ix] += R.T @ R
            N[ix] += pat.count
        v = np.where(N > 0, S / np.maximum(N, 1), 0.0)
        d = np.diag(v).copy()
        d[d <= 0] = max(np.mean(d[d > 0]) if np.any(d > 0) else 1.0, 1e-8)
        v[np.diag_indices(T)] = d
        return v

    def corr(self) -> np.ndarray:
        c = self.cov()
        s = np.sqrt(np.diag(c))
        return c / s[:, None] / s[None, :]

    def lag_mean(self, lag: int) -> float:
        c = self.corr()
        vals = np.diagonal(c, offset=lag)
        vals = vals[np.isfinite(vals) & (vals != 0)]
        return float(np.mean(vals)) if len(vals) else 0.0

    def offdiag_mean(self) -> float:
        c = self.corr()
        off = c[~np.eye(self.T, dtype=bool)]
        off = off[off != 0]
        return float(np.mean(off)) if len(off) else 0.0

    def grid_lag(self, axis: int) -> float:
        num = den = 0.0
        for pat in self.layout.patterns:
            pos = pat.pos
            index = {tuple(p): i for i, p in enumerate(pos)}
            step = np.array([1, 0]) if axis == 0 else np.array([0, 1])
            pairs = [(i, index[tuple(p + step)]) for i, p in enumerate(pos) if tuple(p + step) in index]
            if not pairs:
                continue
            a, b = np.array(pairs).T
            R = self.r[pat.rows]
            num += float(np.sum(R[:, a] * R[:, b]))
            den += float(np.sum(R[:, a] ** 2 + R[:, b] ** 2)) / 2.0
        return num / den if den > 0 else 0.0

    def group_var(self) -> np.ndarray:
        out = np.ones(self.ng)
        for pat in self.layout.patterns:
            out[pat.group] = max(float(np.mean(self.r[pat.rows] ** 2)), 1e-8)
        return out


# --------------------------------------------------------------------------- structures
class ResidualStructure:
    """Base class; see the module docstring for the interface."""

    kind = ""
    names: list = []
    infer_names: list = []
    n_xi = 0
    linear = False
    #: bandwidth of every block's precision matrix in position order (AR(1): 1), None if full
    band = None

    @property
    def xi_lower(self) -> np.ndarray:
        return np.full(self.n_xi, -np.inf)

    def normalize(self, group: int, pos: np.ndarray):
        return group, np.asarray(pos)

    def reported(self, gamma: np.ndarray) -> np.ndarray:
        return np.asarray(gamma, dtype=float)

    def singular(self, gamma: np.ndarray) -> bool:
        """True when a correlation is (numerically) at +-1 or a variance at 0."""
        return False


class ScaledCorrelation(ResidualStructure):
    """``R_ij = s_i s_j C_ij(rho)``: a correlation family times homogeneous or heterogeneous SDs.

    ``ar1``, ``cs``, ``toep`` and ``ar1(row):ar1(col)`` have one variance ``sigma2``; ``ar1h`` and
    ``csh`` one per time level (``sigma2:<t>``); ``diag(1 | g)`` one per group level with
    uncorrelated errors. ``gamma`` = (variances, correlation parameters).
    """

    def __init__(self, kind: str, corr, var_labels: list | None, var_by: str, key: str = "pos") -> None:
        self.kind = kind
        self.corr = corr
        self.var_by = var_by                          # "none", "pos" or "group"
        self.var_labels = list(var_labels) if var_labels else [None]
        nv = len(self.var_labels)
        vn = ["sigma2"] if var_by == "none" else ["sigma2:%s" % v for v in self.var_labels]
        self.names = vn + list(corr.names)
        self.infer_names = list(self.names)
        self.nv = nv
        self.nr = len(corr.names)
        self.n_xi = (nv - 1) + self.nr
        self.key = key                                # "pos", "shift" (lags only) or "size"
        self.band = getattr(corr, "band", None)

    def normalize(self, group, pos):
        pos = np.asarray(pos)
        g = group if self.var_by == "group" else 0
        if self.key == "shift":
            return g, pos - pos.min(axis=0)
        if self.key == "size":
            return g, np.arange(len(pos))
        return g, pos

    def _vidx(self, pat) -> np.ndarray:
        if self.var_by == "pos":
            return np.asarray(pat.pos, dtype=np.int64)
        if self.var_by == "group":
            return np.full(pat.k, pat.group, dtype=np.int64)
        return np.zeros(pat.k, dtype=np.int64)

    def rel_cov(self, pat, xi):
        v = np.concatenate([[1.0], np.exp(xi[:self.nv - 1])])
        C = self.corr.C(pat, self.corr.from_xi(xi[self.nv - 1:]))[0]
        s = np.sqrt(v[self._vidx(pat)])
        return s[:, None] * C * s[None, :]

    def natural(self, xi, s2):
        v = s2 * np.concatenate([[1.0], np.exp(xi[:self.nv - 1])])
        return np.concatenate([v, self.corr.from_xi(xi[self.nv - 1:])])

    def xi_start(self, layout, resid, corr=True):
        emp = _Empirical(layout, resid, self._T, self.nv if self.var_by == "group" else 1)
        if self.var_by == "pos":
            v = np.diag(emp.cov())
        elif self.var_by == "group":
            v = emp.group_var()
        else:
            v = np.ones(1)
        v = np.maximum(v, 1e-6 * max(np.max(v), 1e-12))
        r0 = self.corr.start(emp) if corr else np.zeros(self.nr)
        return np.concatenate([np.log(v[1:] / v[0]), self.corr.to_xi(r0)])

    def cov_derivs(self, pat, gamma, second=True):
        nv = self.nv
        v, r = gamma[:nv], gamma[nv:]
        C, dC, d2C = self.corr.C(pat, r)
        vi = self._vidx(pat)
        s = np.sqrt(v[vi])
        R = s[:, None] * C * s[None, :]
        d1, d2 = {}, {}
        E = {}
        for lv in map(int, np.unique(vi)):
            e = np.where(vi == lv, 0.5 / s, 0.0)
            E[lv] = e
            d1[lv] = e[:, None] * C * s[None, :] + s[:, None] * C * e[None, :]
        levels = sorted(E)
        if not second:
            for j, Cj in dC.items():
                d1[nv + j] = s[:, None] * Cj * s[None, :]
            return R, d1, d2
        for i, a in enumerate(levels):
            for b in levels[i:]:
                m = E[a][:, None] * C * E[b][None, :] + E[b][:, None] * C * E[a][None, :]
                if a == b:
                    f = np.where(vi == a, -0.25 / s ** 3, 0.0)
                    m = m + f[:, None] * C * s[None, :] + s[:, None] * C * f[None, :]
                if np.any(m):
                    d2[a, b] = m
        for j, Cj in dC.items():
            d1[nv + j] = s[:, None] * Cj * s[None, :]
            for a in levels:
                d2[a, nv + j] = E[a][:, None] * Cj * s[None, :] + s[:, None] * Cj * E[a][None, :]
        for (i, j), Cij in d2C.items():
            if np.any(Cij):
                d2[nv + i, nv + j] = s[:, None] * Cij * s[None, :]
        return R, d1, d2

    def singular(self, gamma):
        r = np.asarray(gamma[self.nv:])
        return bool(np.any(np.abs(r) > 1 - 1e-6)) or bool(np.any(gamma[:self.nv] <= 0))


class Unstructured(ResidualStructure):
    """``us(t | s)``, ``us(t | g / s)``: a free T x T covariance matrix (per group level).

    ``gamma`` = per group the covariances ``c_aa`` (a = 0..T-1), then ``c_ab`` (a < b); reported as
    ``sigma2:[<g>:]<t>`` and ``rho:[<g>:]<t1>:<t2>``. The optimizer uses the relative Cholesky
    factor (log diagonal), the first group's first variance fixed at 1.
    """

    kind = "us"
    linear = True

    def __init__(self, T: int, tlabels: list, glabels: list | None) -> None:
        self.T = T
        self.tl = [str(t) for t in tlabels]
        self.gl = [str(g) for g in glabels] if glabels else None
        self.ng = len(glabels) if glabels else 1
        self.pairs = [(a, a) for a in range(T)] + [(a, b) for a in range(T) for b in range(a + 1, T)]
        self.npg = len(self.pairs)
        names, inames = [], []
        for g in range(self.ng):
            pre = "%s:" % self.gl[g] if self.gl else ""
            names += ["sigma2:%s%s" % (pre, t) for t in self.tl]
            names += ["rho:%s%s:%s" % (pre, self.tl[a], self.tl[b]) for a, b in self.pairs[T:]]
            inames += ["cov:%s%s:%s" % (pre, self.tl[a], self.tl[b]) for a, b in self.pairs]
        self.names, self.infer_names = names, inames
        self.ntri = T * (T + 1) // 2
        self.n_xi = self.ng * self.ntri - 1
        self._tril = np.tril_indices(T)

    def _L(self, xi, g):
        full = np.concatenate([[0.0], xi])            # group 0's log L[0, 0] = 0
        v = full[g * self.ntri:(g + 1) * self.ntri]
        L = np.zeros((self.T, self.T))
        L[self._tril] = v
        d = np.diag_indices(self.T)
        L[d] = np.exp(L[d])
        return L

    def normalize(self, group, pos):
        return group, np.asarray(pos)

    def rel_cov(self, pat, xi):
        L = self._L(xi, pat.group)
        S = L @ L.T
        return S[np.ix_(pat.pos, pat.pos)]

    def natural(self, xi, s2):
        pa, pb = np.array(self.pairs).T
        out = []
        for g in range(self.ng):
            L = self._L(xi, g)
            out.append(s2 * (L @ L.T)[pa, pb])
        return np.concatenate(out)

    def natural_jacobian(self, xi):
        """d gamma / d xi at scale 1 (analytic: d(LL')/dL_ij = E_ij L' + L E_ji)."""
        pa, pb = np.array(self.pairs).T
        J = np.zeros((self.ng * self.npg, self.n_xi))
        r, c = self._tril
        col = -1                                          # xi index of group 0's L[0, 0] (fixed)
        for g in range(self.ng):
            L = self._L(xi, g)
            for i, j in zip(r, c):
                if col >= 0:
                    D = np.zeros((self.T, self.T))
                    D[i, :] += L[:, j]                    # E_ij L'
                    D[:, i] += L[:, j]                    # L E_ji
                    if i == j:
                        D *= L[i, i]                      # log-diagonal
                    J[g * self.npg:(g + 1) * self.npg, col] = D[pa, pb]
                col += 1
        return J

    def reported(self, gamma):
        out = []
        T = self.T
        for g in range(self.ng):
            c = gamma[g * self.npg:(g + 1) * self.npg]
            v = c[:T]
            out += list(v)
            out += [c[i] / np.sqrt(v[a] * v[b]) for i, (a, b) in enumerate(self.pairs) if a != b]
        return np.array(out)

    def xi_start(self, layout, resid, corr=True):
        emp = _Empirical(layout, resid, self.T, self.ng)
        out = []
        ref = None
        for g in range(self.ng):
            c = emp.cov(g if self.gl else None)
            if not corr:
                c = np.diag(np.diag(c))
            w, U = np.linalg.eigh((c + c.T) / 2)
            w = np.maximum(w, 1e-3 * max(np.max(w), 1e-12))
            c = (U * w) @ U.T
            if ref is None:
                ref = c[0, 0]
            L = np.linalg.cholesky(c / ref)
            L[np.diag_indices(self.T)] = np.log(np.diag(L))
            out += list(L[self._tril])
        return np.array(out[1:])

    def cov_derivs(self, pat, gamma, second=True):
        g = pat.group
        c = gamma[g * self.npg:(g + 1) * self.npg]
        S = np.zeros((self.T, self.T))
        for i, (a, b) in enumerate(self.pairs):
            S[a, b] = S[b, a] = c[i]
        R = S[np.ix_(pat.pos, pat.pos)]
        loc = {int(p): j for j, p in enumerate(pat.pos)}
        d1 = {}
        for i, (a, b) in enumerate(self.pairs):
            if a in loc and b in loc:
                m = np.zeros((pat.k, pat.k))
                m[loc[a], loc[b]] = m[loc[b], loc[a]] = 1.0
                d1[g * self.npg + i] = m
        return R, d1, {}

    def singular(self, gamma):
        for g in range(self.ng):
            c = gamma[g * self.npg:(g + 1) * self.npg]
            S = np.zeros((self.T, self.T))
            for i, (a, b) in enumerate(self.pairs):
                S[a, b] = S[b, a] = c[i]
            if np.min(np.linalg.eigvalsh(S)) <= 1e-8 * max(np.max(np.diag(S)), 1e-300):
                return True
        return False


class WithNugget(ResidualStructure):
    """A structure plus ``sigma2_nugget * I`` (``(1 | plot)`` with one level per observation).

    The nugget is the last optimizer parameter, ``theta = sigma_nugget / sigma`` (lower bound 0,
    like lme4's theta), and the last element of ``gamma``. It is reported as a random-term row.
    """

    def __init__(self, base: ResidualStructure, name: str) -> None:
        self.base = base
        self.nugget_name = name
        self.kind = base.kind
        self.names = list(base.names)
        self.infer_names = list(base.infer_names) + ["%s:(Intercept)" % name]
        self.n_xi = base.n_xi + 1
        self.linear = base.linear

    @property
    def xi_lower(self):
        return np.concatenate([self.base.xi_lower, [0.0]])

    def normalize(self, group, pos):
        return self.base.normalize(group, pos)

    def rel_cov(self, pat, xi):
        return self.base.rel_cov(pat, xi[:-1]) + xi[-1] ** 2 * np.eye(pat.k)

    def natural(self, xi, s2):
        return np.concatenate([self.base.natural(xi[:-1], s2), [s2 * xi[-1] ** 2]])

    def reported(self, gamma):
        return self.base.reported(gamma[:-1])

    def xi_start(self, layout, resid, corr=True):
        return np.concatenate([self.base.xi_start(layout, resid, corr), [0.5]])

    def cov_derivs(self, pat, gamma, second=True):
        R, d1, d2 = self.base.cov_derivs(pat, gamma[:-1], second)
        d1 = dict(d1)
        d1[len(gamma) - 1] = np.eye(pat.k)
        return R + gamma[-1] * np.eye(pat.k), d1, d2

    def singular(self, gamma):
        return self.base.singular(gamma[:-1]) or gamma[-1] <= 1e-8 * max(abs(float(np.max(gamma[:-1]))), 1e-300)


# --------------------------------------------------------------------------- from the spec and the data
def _codes(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, list]:
    """Factor codes and labels of a column, or of an interaction ``a:b`` of columns (``vcomp._coding``)."""
    codes, labels = [], []
    for f in name.split(":"):
        c, lev = factor_levels(frame[f], f)
        codes.append(c)
        labels.append(list(lev.labels))
    if len(codes) == 1:
        return codes[0], labels[0]
    return interaction(codes, labels)


def _check_unique(keys: list, frame: pd.DataFrame, cols: list, spec: ResidualSpec, what: str) -> None:
    key = np.zeros(len(frame), dtype=np.int64)
    for k in keys:                                  # one mixed-radix key: a 1-d sort finds repeats
        k = np.asarray(k, dtype=np.int64)
        key = key * (int(k.max()) + 1 if len(k) else 1) + k
    order = np.argsort(key, kind="stable")
    rep = np.flatnonzero(np.diff(key[order]) == 0)
    if rep.size:
        i = int(order[rep[0]])
        at = ", ".join("%s=%s" % (c, frame[c].iloc[i]) for c in cols)
        raise DataError("residual=%r: more than one observation at %s; %s. Aggregate the repeated rows or "
                        "add the column that tells them apart to the subject." % (spec.text, at, what))


def residual_frame(spec: ResidualSpec, data) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The data without rows missing a ``residual=`` column (warned), index reset, and those columns.

    Raises
    ------
    DataError
        A column of the structure is not in the data.
    """
    frame = as_frame(data)
    check_columns(frame, spec.columns, "residual=%r: column" % spec.text)
    sub = frame.loc[:, spec.columns]
    miss = sub.isna().any(axis=1).to_numpy()
    if miss.any():
        per = ", ".join("%s: %d" % (c, int(sub[c].isna().sum())) for c in spec.columns if sub[c].isna().any())
        warn("%d row(s) with missing values in the residual structure's columns dropped (%s); %d rows remain."
             % (int(miss.sum()), per, int((~miss).sum())), DroppedRowsWarning)
        frame = frame.loc[~miss]
    if len(frame) == 0:
        raise DataError("residual=%r: no rows left with %s all present" % (spec.text, ", ".join(spec.columns)))
    frame = frame.reset_index(drop=True)
    return frame, frame.loc[:, spec.columns]


def build_structure(spec: ResidualSpec, frame: pd.DataFrame, nugget: str | None = None
                    ) -> tuple[ResidualStructure, Layout]:
    """The structure object and the block layout of ``spec`` on the model frame.

    Parameters
    ----------
    spec : ResidualSpec
    frame : DataFrame
        The cleaned model frame (rows = observations of the fit).
    nugget : str, optional
        Name of a ``(1 | plot)`` term with one level per observation, added as ``sigma2_plot * I``.

    Returns
    -------
    (ResidualStructure, Layout)
    """
    n = len(frame)
    kind = spec.kind
    used = [c for c in (spec.time, spec.row, spec.col) if c]
    for c in used:
        if spec.subject and c in spec.subject.split(":") or spec.group and c in spec.group.split(":"):
            raise DataError("residual=%r: %r is both a position and a grouping column; the positions (time, "
                            "row, col) must be different columns from the subject / group" % (spec.text, c))
        if frame[c].nunique() < 2:
            raise DataError("residual=%r: column %r has a single value (%r); a correlation along it needs at "
                            "least two positions" % (spec.text, c, frame[c].iloc[0]))
    if kind == "diag":
        g, glev = _codes(frame, spec.group)
        st = ScaledCorrelation("diag", _Identity(), glev, "group")
        st._T = 1
        block = np.arange(n)
        pos = np.zeros(n, dtype=np.int64)
        grp = g
    elif kind == "ar1ar1":
        r, rl = _codes(frame, spec.row)
        c, cl = _codes(frame, spec.col)
        if spec.trial:
            block, _ = _codes(frame, spec.trial)
            cols = [spec.trial, spec.row, spec.col]
        else:
            block = np.zeros(n, dtype=np.int64)
            cols = [spec.row, spec.col]
        _check_unique([block, r, c], frame, cols, spec, "a grid has one plot per row and column")
        st = ScaledCorrelation("ar1ar1", _AR1xAR1(spec.row, spec.col), None, "none", key="shift")
        st._T = 1
        pos = np.column_stack([r, c])
        grp = np.zeros(n, dtype=np.int64)
    else:
        t, tl = _codes(frame, spec.time)
        s, _ = _codes(frame, spec.subject)
        if spec.group:
            grp, gl = _codes(frame, spec.group)
            block, _ = interaction([grp, s], [[str(i) for i in range(grp.max() + 1)],
                                              [str(i) for i in range(s.max() + 1)]])
            cols = [spec.group, spec.subject, spec.time]
        else:
            grp, gl = np.zeros(n, dtype=np.int64), None
            block = s
            cols = [spec.subject, spec.time]
        _check_unique([block, t], frame, cols, spec, "at most one observation per subject and time")
        T = len(tl)
        if kind == "us":
            st = Unstructured(T, tl, gl)
        elif kind == "ar1":
            st = ScaledCorrelation("ar1", _AR1(), None, "none", key="shift")
        elif kind == "toep":
            if T < 2:
                raise DataError("residual=%r: %r has one level; toep needs at least two times" % (spec.text,
                                                                                                  spec.time))
            st = ScaledCorrelation("toep", _Toeplitz(T), None, "none", key="shift")
        elif kind == "ar1h":
            st = ScaledCorrelation("ar1h", _AR1(), tl, "pos")
        else:  # cs, csh
            sizes = np.bincount(block)
            st = ScaledCorrelation(kind, _CS(int(sizes.max())), tl if kind == "csh" else None,
                                   "pos" if kind == "csh" else "none", key="pos" if kind == "csh" else "size")
        st._T = T
        pos = t
    pats = _group_blocks(np.asarray(block, dtype=np.int64), np.asarray(pos, dtype=np.int64),
                         np.asarray(grp, dtype=np.int64), st.normalize)
    layout = Layout(n, pats, int(len(np.unique(block))))
    if kind != "diag" and max(p.k for p in pats) < 2:
        raise DataError("residual=%r: every %s has a single observation, so the correlations within a %s cannot "
                        "be estimated; check the subject column or use diag(1 | group)"
                        % (spec.text, spec.subject or "trial", spec.subject or "trial"))
    if nugget:
        st = WithNugget(st, nugget)
    return st, layout
