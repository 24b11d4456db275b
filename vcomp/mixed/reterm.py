"""Random-effects terms: each term owns its grouping codes, Z block and covariance parameters.

A term ``(expr | g)`` with ``k`` coefficients per level has the lower-triangular relative
covariance factor Λ (``k x k``) of lme4: ``Var(b_level) = σ² Λ Λ'``, parameterised by
``theta`` (the column-major lower triangle; diagonal >= 0).  Following MixedModels.jl's
``ReMat``, the term object is the one owner of everything about those parameters:
the θ <-> Λ map, bounds, start values, dΛ/dθ, the pbkrtest variance parameters, the
names and its rows of ``varcorr``.  Every consumer (criterion, BLUPs, shrinkage,
Satterthwaite, Kenward-Roger) asks the term.

Internally the columns of the term's model matrix are scaled to unit root-mean-square
(``Z_int = Z D^-1``), so the optimizer sees the same problem whatever the units of a
random-slope covariate; the internal factor is ``Λ_int = D Λ`` (still lower triangular).
:meth:`ReTerm.public_theta` maps back.  The criterion is identical in both.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .._coding import FixedCoding, ModelFrame
from .._errors import DataError, FormulaError
from ..terms import RandomSpec

__all__ = ["ReTerm", "build_re_terms", "check_re_terms", "z_matrix", "z_dense", "lambda_matrix", "lambda_dense",
           "lambda_index", "theta_layout", "tril_from_theta"]


_TRIL: dict = {}


def _tril_rc(k: int) -> tuple:
    """Row and column of each θ entry (column-major lower triangle), cached per k."""
    rc = _TRIL.get(k)
    if rc is None:
        r, c = np.tril_indices(k)
        order = np.lexsort((r, c))  # column-major
        rc = (r[order], c[order])
        for a in rc:
            a.flags.writeable = False  # shared by every caller
        _TRIL[k] = rc
    return rc


def tril_from_theta(theta_t: np.ndarray, k: int) -> np.ndarray:
    """``k x k`` lower-triangular matrix from its column-major lower-triangle vector (lme4's θ)."""
    if k == 1:
        return np.array([[float(theta_t[0])]])
    L = np.zeros((k, k))
    L[_tril_rc(k)] = np.asarray(theta_t, dtype=float)
    return L


def _theta_from_tril(L: np.ndarray) -> np.ndarray:
    return L[_tril_rc(L.shape[0])]


@dataclass
class ReTerm:
    """One random-effects term after coding.

    Attributes
    ----------
    spec : RandomSpec
    group : str
        Grouping factor name (``"g"``, ``"a:b"``).
    name : str
        lme4's ``VarCorr`` name (``"g"``, ``"g.1"`` for a second term on ``g``).
    codes : ndarray of int, shape (n,)
    levels : list of str
    Xi : ndarray, shape (n, k)
        The term's model matrix, original units (columns multiply each level's coefficients).
    coef_names : list of str
        lme4 names (``"(Intercept)"``, ``"x"``).
    coding : FixedCoding
        Builds ``Xi`` on new data.
    scale : ndarray, shape (k,)
        Internal column scaling ``D`` (root-mean-square of each column).
    theta_slice : slice
        This term's part of θ.
    offset : int
        First column of this term in Z (lme4 order: term by term, level-major).
    """

    spec: RandomSpec
    group: str
    name: str
    codes: np.ndarray
    levels: list
    Xi: np.ndarray
    coef_names: list
    coding: FixedCoding = field(repr=False, default=None)
    scale: np.ndarray = None
    theta_slice: slice = field(default_factory=lambda: slice(0, 0))
    offset: int = 0

    def __post_init__(self) -> None:
        if self.scale is None:
            n = len(self.Xi)
            rms = np.sqrt(np.einsum("ij,ij->j", self.Xi, self.Xi) / n) if n else np.ones(self.Xi.shape[1])
            self.scale = np.where(rms > 0, rms, 1.0)

    # -- layout
    @property
    def k(self) -> int:
        return self.Xi.shape[1]

    @property
    def nlev(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        return self.k * self.nlev

    @property
    def ntheta(self) -> int:
        return self.k * (self.k + 1) // 2

    @property
    def correlated(self) -> bool:
        return self.spec.correlated

    @property
    def ranef_names(self) -> list:
        return ["Intercept" if c == "(Intercept)" else c for c in self.coef_names]

    @property
    def Xi_int(self) -> np.ndarray:
        """Internal (unit-RMS) columns."""
        return self.Xi / self.scale

    # -- parameters (θ is the internal one unless said otherwise)
    def lower(self) -> np.ndarray:
        """Bounds of θ: 0 on diagonal elements, -inf elsewhere (lme4's ``lower``)."""
        r, c = self._rc()
        return np.where(r == c, 0.0, -np.inf)

    def start(self) -> np.ndarray:
        """Start value: identity factor."""
        r, c = self._rc()
        return np.where(r == c, 1.0, 0.0)

    def _rc(self):
        return _tril_rc(self.k)

    def is_diagonal_param(self) -> np.ndarray:
        r, c = self._rc()
        return r == c

    def lam(self, theta_t: np.ndarray) -> np.ndarray:
        """Internal ``k x k`` factor Λ_int from this term's θ."""
        return tril_from_theta(theta_t, self.k)

    def dlam(self) -> list[np.ndarray]:
        """dΛ/dθ_j for each of this term's θ entries (constant: Λ is linear in θ)."""
        r, c = self._rc()
        out = []
        for i, j in zip(r, c):
            E = np.zeros((self.k, self.k))
            E[i, j] = 1.0
            out.append(E)
        return out

    def public_lambda(self, theta_t: np.ndarray) -> np.ndarray:
        """lme4's Λ (original units of the term's covariates): ``D^-1 Λ_int``."""
        return self.lam(theta_t) / self.scale[:, None]

    def public_theta(self, theta_t: np.ndarray) -> np.ndarray:
        """lme4's θ of this term."""
        return _theta_from_tril(self.public_lambda(theta_t))

    def internal_theta(self, public_t: np.ndarray) -> np.ndarray:
        """Internal θ from lme4's θ (for user start values)."""
        return _theta_from_tril(tril_from_theta(public_t, self.k) * self.scale[:, None])

    def cov(self, theta_t: np.ndarray, sigma: float) -> np.ndarray:
        """Covariance of one level's coefficients, original units: σ² Λ Λ'."""
        L = self.public_lambda(theta_t)
        return sigma ** 2 * (L @ L.T)

    def varpars(self) -> list[tuple[int, int]]:
        """pbkrtest's variance parameters of this term: covariance entries (i, j), i >= j, column-major."""
        r, c = self._rc()
        return list(zip(r.tolist(), c.tolist()))

    def varcorr_rows(self, theta_t: np.ndarray, sigma: float) -> list[tuple]:
        """Rows of lme4's ``as.data.frame(VarCorr(m))``: variances, then covariances (with correlations)."""
        C = self.cov(theta_t, sigma)
        sd = np.sqrt(np.clip(np.diag(C), 0, None))
        rows = [(self.name, self.coef_names[j], None, C[j, j], sd[j]) for j in range(self.k)]
        for j in range(self.k):
            for m in range(j + 1, self.k):
                cor = C[j, m] / (sd[j] * sd[m]) if sd[j] > 0 and sd[m] > 0 else np.nan
                rows.append((self.name, self.coef_names[j], self.coef_names[m], C[j, m], cor))
        return rows

    # -- data
    def new_codes(self, frame) -> tuple[np.ndarray, np.ndarray]:
        """Codes (-1 for unseen levels) and the term's model matrix on new data (for prediction)."""
        from .._coding import as_frame, level_label

        frame = as_frame(frame, "new data")
        vs = list(self.spec.group.variables)
        if len(vs) == 1:
            lab = frame[vs[0]].map(level_label).to_numpy(dtype=object) if vs[0] in frame.columns else None
        else:
            lab = frame[vs].apply(lambda r: ":".join(level_label(v) for v in r), axis=1).to_numpy(dtype=object) \
                if all(v in frame.columns for v in vs) else None
        if lab is None:
            raise DataError("new data lack the grouping column(s) %s" % ", ".join(map(repr, vs)))
        index = {v: i for i, v in enumerate(self.levels)}
        codes = np.fromiter((index.get(v, -1) for v in lab), dtype=np.int64, count=len(lab))
        return codes, self.coding.build_frame(frame)


def theta_layout(terms: list[ReTerm]) -> tuple[np.ndarray, np.ndarray]:
    """Lower bounds and start values of the whole internal θ."""
    if not terms:
        return np.zeros(0), np.zeros(0)
    return (np.concatenate([t.lower() for t in terms]), np.concatenate([t.start() for t in terms]))


def build_re_terms(specs: list[RandomSpec], mf: ModelFrame, n: int, allow_saturated: bool = False) -> list[ReTerm]:
    """Random-effects terms in lme4's order (decreasing number of levels, stable), with θ slices and Z offsets.

    Raises
    ------
    DataError
        A grouping factor with fewer than 2 levels, or as many levels (random effects) as observations.
    """
    terms = []
    for rs in specs:
        codes, levels = mf.group(rs.group)
        coding = FixedCoding(list(rs.terms), rs.intercept, mf.specs, "treatment")
        Xi = coding.build(mf.values, n) if (rs.terms or rs.intercept) else np.zeros((n, 0))
        if Xi.shape[1] == 0:
            raise FormulaError("random term (%s | %s) has no coefficients" % (rs.expr, rs.group.name))
        coef = ["(Intercept)" if c == "Intercept" else c for c in coding.colnames]
        terms.append(ReTerm(rs, rs.group.name, rs.group.name, codes, list(levels), np.asfortranarray(Xi),
                            coef, coding))
    order = sorted(range(len(terms)), key=lambda i: -terms[i].nlev)
    terms = [terms[i] for i in order]
    seen: dict = {}
    t0, off = 0, 0
    for t in terms:
        c = seen.get(t.group, 0)
        t.name = t.group if c == 0 else "%s.%d" % (t.group, c)
        seen[t.group] = c + 1
        t.theta_slice = slice(t0, t0 + t.ntheta)
        t.offset = off
        t0 += t.ntheta
        off += t.q
        if t.nlev < 2:
            raise DataError("grouping factor %r has %d level; a random effect needs at least 2 sampled levels. "
                            "Drop the term (%s | %s)." % (t.group, t.nlev, t.spec.expr, t.group))
    if not allow_saturated:
        check_re_terms(terms, n)
    return terms


def check_re_terms(terms: list[ReTerm], n: int) -> None:
    """Raise when a term has as many levels, or random effects, as there are observations (``n``)."""
    for t in terms:
        if t.nlev >= n:
            raise DataError("grouping factor %r has %d levels for %d observations: the number of levels of each "
                            "grouping factor must be < number of observations (the random effect and the residual "
                            "cannot be told apart). Drop the term (%s | %s)."
                            % (t.group, t.nlev, n, t.spec.expr, t.group))
        if t.q >= n:
            raise DataError("number of observations (=%d) <= number of random effects (=%d) for term (%s | %s); "
                            "the random-effects parameters and the residual variance are probably unidentifiable."
                            % (n, t.q, t.spec.expr, t.group))


def _z_entries(terms: list[ReTerm], internal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Column and value of every nonzero of Z, one row of the data per row (n x sum of k)."""
    cols = np.column_stack([t.offset + t.codes * t.k + j for t in terms for j in range(t.k)])
    vals = np.column_stack([(t.Xi_int if internal else t.Xi)[:, j] for t in terms for j in range(t.k)])
    return cols, vals


def z_dense(terms: list[ReTerm], n: int, internal: bool = True) -> np.ndarray:
    """:func:`z_matrix` as a dense array (small systems: no sparse construction)."""
    Z = np.zeros((n, sum(t.q for t in terms)))
    if terms:
        cols, vals = _z_entries(terms, internal)
        Z[np.arange(n)[:, None], cols] = vals      # the columns of one row are distinct
    return Z


def z_matrix(terms: list[ReTerm], n: int, internal: bool = True) -> sp.csr_matrix:
    """Sparse ``n x q`` random-effects model matrix in lme4's column order (CSR)."""
    q = sum(t.q for t in terms)
    if not terms:
        return sp.csr_matrix((n, 0))
    cols, vals = _z_entries(terms, internal)
    m = cols.shape[1]
    indptr = np.arange(0, n * m + 1, m, dtype=np.int64)
    Z = sp.csr_matrix((vals.reshape(-1), cols.reshape(-1), indptr), shape=(n, q))
    Z.has_sorted_indices = False
    Z.sort_indices()
    return Z


def lambda_index(terms: list[ReTerm]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Where each θ entry goes in the block-diagonal ``q x q`` Λ (lme4's ``Lind``): rows, columns
    and θ index of every lower-triangle entry, and q (terms laid out in the order given)."""
    rows, cols, idx = [], [], []
    start = 0
    for t in terms:
        base = start + np.arange(t.nlev)[:, None] * t.k
        for m, (i, j) in enumerate(t.varpars()):
            rows.append(base[:, 0] + i)
            cols.append(base[:, 0] + j)
            idx.append(np.full(t.nlev, t.theta_slice.start + m))
        start += t.q
    if not rows:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), start
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(idx), start


def lambda_matrix(terms: list[ReTerm], theta: np.ndarray) -> sp.csc_matrix:
    """Sparse ``q x q`` internal relative covariance factor (block diagonal, lme4's layout)."""
    if not terms:
        return sp.csc_matrix((0, 0))
    rows, cols, idx, q = lambda_index(terms)
    M = sp.csc_matrix((np.asarray(theta, dtype=float)[idx], (rows, cols)), shape=(q, q))
    M.eliminate_zeros()
    return M


def lambda_dense(terms: list[ReTerm], theta: np.ndarray, index=None) -> np.ndarray:
    """:func:`lambda_matrix` as a dense array (small q); ``index``: a stored :func:`lambda_index`."""
    rows, cols, idx, q = lambda_index(terms) if index is None else index
    L = np.zeros((q, q))
    L[rows, cols] = np.asarray(theta, dtype=float)[idx]
    return L
