"""Model stages before the optimizer: model frame, fixed matrix, random-effects terms, Z and Lambda.

Each stage is a small pure function; :func:`vcomp.mixed.lmm` chains them as lme4 does
(parse -> model frame -> X -> random-effects terms -> cross-products -> criterion -> optimizer).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._data import as_frame, check_columns, drop_missing, factor_codes, interaction_codes, numeric_response
from .._errors import DataError, FormulaError
from ..formula import FixedMatrix, ParsedFormula, RandomTerm, fixed_matrix, fixed_matrix_new, formula_variables

__all__ = ["ReTerm", "model_frame", "build_fixed", "build_re_terms", "make_Z", "make_Lambda",
           "theta_lower", "term_lambda"]


@dataclass
class ReTerm:
    """One random-effects term after the model frame is built.

    Attributes
    ----------
    group : str
        Grouping factor name (``"g"``, ``"a:b"``).
    name : str
        The name lme4 shows in ``VarCorr`` (``"g"``, or ``"g.1"`` for a second term on ``g``).
    codes : ndarray of int, shape (n,)
        Level index of each row.
    levels : list of str
        Level labels (sorted; ``"l1:l2"`` for an interaction).
    Xi : ndarray, shape (n, k)
        The term's raw model matrix (columns multiply each level's coefficients).
    coef_names : list of str
        lme4 names of the coefficients (``"(Intercept)"``, ``"x"``).
    k, nlev : int
        Coefficients per level and number of levels.
    theta_slice : slice
        This term's part of theta (column-major lower triangle of its k x k factor).
    offset : int
        First column of this term in Z (lme4 order: term by term, level-major).
    """

    group: str
    name: str
    expr: str
    correlated: bool
    codes: np.ndarray
    levels: list
    Xi: np.ndarray
    coef_names: list
    design: FixedMatrix = field(repr=False, default=None)
    theta_slice: slice = field(default_factory=lambda: slice(0, 0))
    offset: int = 0

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
    def ranef_names(self) -> list:
        return ["Intercept" if c == "(Intercept)" else c for c in self.coef_names]


def model_frame(parsed: ParsedFormula, data, extra=()) -> tuple[pd.DataFrame, np.ndarray, int]:
    """The cleaned copy of the data: used columns only, rows with NaN dropped (warned).

    ``extra``: further columns to keep (those of a ``residual=`` structure).
    Returns the frame (index reset), the response as float and the number of dropped rows.
    """
    frame = as_frame(data)
    cols = formula_variables(parsed, frame.columns)
    cols += [c for c in extra if c not in cols]
    check_columns(frame, cols)
    numeric_response(frame, parsed.response)  # type check before dropping
    frame, ndrop = drop_missing(frame.loc[:, cols], cols, "from the model frame")
    frame = frame.reset_index(drop=True).copy()
    y = numeric_response(frame, parsed.response)
    return frame, y, ndrop


def build_fixed(parsed: ParsedFormula, frame: pd.DataFrame) -> tuple[FixedMatrix, list]:
    """Fixed-effects matrix; rank-deficient columns are dropped (as lme4 does) and returned."""
    fm = fixed_matrix(parsed.fixed_rhs, frame)
    X = fm.X
    p = X.shape[1]
    if p == 0:
        return fm, []
    # sequential Gram-Schmidt on X'X (keeps the earlier column, as R's qr does)
    xtx = X.T @ X
    keep, dropped = [], []
    scale = np.sqrt(np.maximum(np.diag(xtx), 1e-300))
    C = xtx / scale[:, None] / scale[None, :]
    for j in range(p):
        idx = keep + [j]
        sub = C[np.ix_(idx, idx)]
        try:
            L = np.linalg.cholesky(sub)
            ok = L[-1, -1] ** 2 > 1e-7 and np.diag(xtx)[j] > 0
        except np.linalg.LinAlgError:
            ok = False
        (keep if ok else dropped).append(j)
    if dropped:
        import warnings
        warnings.warn("fixed-effect model matrix is rank deficient so dropping %d column(s): %s"
                      % (len(dropped), ", ".join(fm.column_names[j] for j in dropped)), stacklevel=4)
        fm = fm.subset(keep)
    return fm, [j for j in dropped]


def _group_codes(frame: pd.DataFrame, group: str) -> tuple[np.ndarray, list]:
    from .._data import _levels

    facs = group.split(":")
    if len(facs) == 1:
        col = frame[facs[0]]
        lv = _levels(col)
        codes = pd.Categorical(col.to_numpy(dtype=object) if not isinstance(col.dtype, pd.CategoricalDtype)
                               else col, categories=lv).codes.astype(np.int64)
        if (codes < 0).any():  # pragma: no cover - defensive (mixed types)
            codes, lv = factor_codes(col, facs[0])
        return codes, [str(v) for v in lv]
    return interaction_codes(frame, facs)


def build_re_terms(random: list[RandomTerm], frame: pd.DataFrame) -> list[ReTerm]:
    """Random-effects terms in lme4's order (decreasing number of levels, stable)."""
    n = len(frame)
    terms = []
    for rt in random:
        codes, levels = _group_codes(frame, rt.group)
        dm = fixed_matrix(rt.expr, frame)
        if dm.X.shape[1] == 0:
            raise FormulaError("random term (%s | %s) has no coefficients" % (rt.expr, rt.group))
        coef = ["(Intercept)" if c == "Intercept" else c for c in dm.column_names]
        terms.append(ReTerm(rt.group, rt.group, rt.expr, rt.correlated, codes, levels,
                            np.ascontiguousarray(dm.X), coef, dm))
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
            raise DataError("grouping factor %r has %d level; a random effect needs at least 2 "
                            "sampled levels. Drop the term (%s | %s)." % (t.group, t.nlev, t.expr, t.group))
        if t.nlev >= n:
            raise DataError("grouping factor %r has %d levels for %d observations: the number of levels of "
                            "each grouping factor must be < number of observations (the random effect and "
                            "the residual cannot be told apart). Drop the term (%s | %s)."
                            % (t.group, t.nlev, n, t.expr, t.group))
        if t.q >= n:
            raise DataError("number of observations (=%d) <= number of random effects (=%d) for term (%s | %s); "
                            "the random-effects parameters and the residual variance are probably unidentifiable."
                            % (n, t.q, t.expr, t.group))
    return terms


def make_Z(terms: list[ReTerm], n: int) -> sp.csr_matrix:
    """Sparse n x q random-effects model matrix in lme4's column order (CSR, built directly)."""
    q = sum(t.q for t in terms)
    if not terms:
        return sp.csr_matrix((n, 0))
    cols = np.column_stack([t.offset + t.codes * t.k + j for t in terms for j in range(t.k)])
    vals = np.column_stack([t.Xi[:, j] for t in terms for j in range(t.k)])
    m = cols.shape[1]
    indptr = np.arange(0, n * m + 1, m, dtype=np.int64)
    Z = sp.csr_matrix((vals.reshape(-1), cols.reshape(-1), indptr), shape=(n, q))
    Z.has_sorted_indices = False
    Z.sort_indices()
    return Z


def term_lambda(theta_t: np.ndarray, k: int) -> np.ndarray:
    """k x k lower-triangular factor from its column-major lower-triangle vector."""
    L = np.zeros((k, k))
    r, c = np.triu_indices(k)
    L[c, r] = theta_t
    return L


def theta_lower(terms: list[ReTerm]) -> np.ndarray:
    """Lower bounds of theta: 0 on diagonal elements, -inf elsewhere (lme4's ``lower``)."""
    out = []
    for t in terms:
        r, c = np.triu_indices(t.k)
        out.extend(np.where(r == c, 0.0, -np.inf))
    return np.array(out)


def theta_start(terms: list[ReTerm]) -> np.ndarray:
    """lme4's starting value: identity factors."""
    out = []
    for t in terms:
        r, c = np.triu_indices(t.k)
        out.extend(np.where(r == c, 1.0, 0.0))
    return np.array(out)


def make_Lambda(terms: list[ReTerm], theta: np.ndarray) -> sp.csc_matrix:
    """Sparse q x q relative covariance factor Lambda(theta) (block diagonal, lme4's layout)."""
    blocks = []
    for t in terms:
        Lt = term_lambda(np.asarray(theta)[t.theta_slice], t.k)
        blocks.append(sp.kron(sp.identity(t.nlev, format="csc"), sp.csc_matrix(Lt), format="csc"))
    if not blocks:
        return sp.csc_matrix((0, 0))
    return sp.block_diag(blocks, format="csc")


def new_term_matrix(t: ReTerm, newdata: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For prediction: codes (-1 for unseen levels) and the raw model matrix on new data."""
    facs = t.group.split(":")
    check_columns(newdata, facs, "grouping factor")
    if len(facs) == 1:
        lab = newdata[facs[0]].map(lambda v: str(v)).to_numpy(dtype=object)
    else:
        lab = newdata[facs].astype(str).agg(":".join, axis=1).to_numpy(dtype=object)
    index = {v: i for i, v in enumerate(t.levels)}
    # integer grouping factors: levels were str() of numbers
    codes = np.fromiter((index.get(v, -1) for v in lab), dtype=np.int64, count=len(lab))
    Xi = fixed_matrix_new(t.design, newdata)
    return codes, Xi
