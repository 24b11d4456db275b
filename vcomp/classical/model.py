"""The all-fixed linear model of a design, stored as cross-products.

Every term of the design (random ones too) enters the model matrix ``X`` as
a fixed effect with sum-to-zero coding (R's ``contr.sum``; SAS PROC GLM).
Following R's ``model.matrix`` rule, a factor ``f`` of a term ``T`` is coded
by contrasts when ``T`` without ``f`` is the intercept or an earlier term,
and by indicator (dummy) columns otherwise (e.g. ``cask`` within ``batch``).

Without covariates the rows of ``X`` depend only on the cell (the
combination of all factor levels), so the model is held as one row per
*cell* with cell counts as weights: ``X'X``, ``X'y`` and ``X'Z_j`` come from
a few hundred cells even for tens of thousands of observations.  No
``n x n`` (and no ``n x p``) matrix is formed in that case.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._coding import FixedCoding, model_frame
from .._errors import DataError, DesignError
from ..hypotheses import pinv_psd
from ..terms import Term, split_term, term_key

__all__ = ["CellModel", "build_model", "cell_coding", "prepare", "incomplete_terms", "describe_cells",
           "nested_cell_model"]


@dataclass
class Prepared:
    """Validated data: response and per-variable codes (factors) or values (covariates)."""

    y: np.ndarray
    codes: dict = field(default_factory=dict)    # factor -> int codes (rows)
    levels: dict = field(default_factory=dict)   # factor -> list of level labels
    covars: dict = field(default_factory=dict)   # covariate -> float values
    n_dropped: int = 0
    specs: dict = field(default_factory=dict)    # variable -> VarSpec (the coding layer's)
    w: np.ndarray | None = None                  # reduced data: observations each row stands for (y: their mean)
    ss_within: float = 0.0                       # reduced data: response SS no row can reach (see vcomp._dask)


def prepare(data, response: str, design) -> Prepared:
    """Validate ``data`` for ``design`` and code its variables with the coding layer (never modifies the data).

    Every variable of the design is a factor whatever its dtype, except the design's covariates.

    Raises
    ------
    DataError
        Missing column (named with the term using it), non-numeric or infinite response, a
        factor with a single level.
    """
    if not isinstance(response, (str, int)):
        raise DataError("response must be a column name (str), got %r" % (response,))
    response = str(response)
    if response in design.factors:
        raise DesignError("the response %r is also used as a factor of the design." % response)
    from .._coding import as_frame, check_columns

    frame = as_frame(data)
    check_columns(frame, [response], "response column")
    for t in design.terms:
        miss = [f for f in split_term(t) if f not in frame.columns]
        if miss:
            check_columns(frame, miss, "term %r names column" % t)
    mf = model_frame(design.model_formula(response), frame, factors=set(design.factors) - set(design.covariates),
                     covariates=design.covariates, context="for the ANOVA", unknown=DataError)
    out = Prepared(y=mf.y, n_dropped=mf.n_dropped, specs=mf.specs)
    for v, spec in mf.specs.items():
        if spec.kind == "covariate":
            out.covars[v] = mf.values[v]
        else:
            if len(spec.labels) < 2:
                raise DataError("factor %r has %d level(s) (%s) in the rows analysed; it needs at least 2. Drop it "
                                "from the design or check that the data are complete."
                                % (v, len(spec.labels), ", ".join(spec.labels[:5])))
            out.codes[v] = mf.values[v]
            out.levels[v] = spec.labels
    return out


@dataclass
class CellModel:
    """All-fixed model held as one weighted row per cell.

    Attributes
    ----------
    terms : list of str
        Terms in model order.
    assign : ndarray
        Term index of each column (-1 = intercept).
    colnames : list of str
    X : ndarray, shape (cells, p)
        Model matrix rows of the cells, *standardised*: every column but the intercept centred and
        scaled (weighted by the cell counts), ``X = X_coded T``.  Every cross-product, inverse and
        hypothesis below lives in these coordinates, so nothing depends on the units or the origin of
        a covariate; a hypothesis ``L`` of the coded coefficients is ``L T`` here.
    T : ndarray, shape (p, p)
        The standardising map (upper triangular; the intercept first).
    w : ndarray
        Number of observations per cell.
    cell : ndarray
        Cell of each observation.
    cell_codes : dict
        factor -> code of each cell.
    xtx, xty : ndarray
        Cross-products (``y`` centred at its mean).
    G : ndarray
        Moore-Penrose inverse of ``xtx``; ``rank`` its rank.
    b : ndarray
        Least-squares coefficients (minimum norm).
    yc : ndarray
        Centred response; ``ybar`` its mean; ``ss_resid`` the residual sum of squares.
    ysum : ndarray
        Sum of the centred response in each cell row (``xty = X' ysum``).
    """

    terms: list
    assign: np.ndarray
    colnames: list
    X: np.ndarray
    w: np.ndarray
    cell: np.ndarray
    cell_codes: dict
    levels: dict
    n: int
    xtx: np.ndarray
    xty: np.ndarray
    G: np.ndarray
    rank: int
    b: np.ndarray
    ybar: float
    ss_resid: float
    T: np.ndarray = None
    ysum: np.ndarray | None = None

    @property
    def p(self) -> int:
        return self.X.shape[1]

    def incidence_cross(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """``X'Z`` for the incidence matrix ``Z`` of ``term``'s level combinations, and ``Z'Z`` diagonal."""
        facs = split_term(term)
        mixed = np.zeros(self.X.shape[0], dtype=np.int64)
        for f in facs:
            mixed = mixed * len(self.levels[f]) + self.cell_codes[f]
            _, mixed = np.unique(mixed, return_inverse=True)  # keep codes small
        m = int(mixed.max()) + 1 if mixed.size else 0
        # X'Z = sum of the weighted cell rows of each level (sorted segments, no incidence matrix)
        order = np.argsort(mixed, kind="stable")
        starts = np.searchsorted(mixed[order], np.arange(m))
        xz = np.add.reduceat((self.X * self.w[:, None])[order], starts, axis=0).T
        zz = np.bincount(mixed, weights=self.w, minlength=m)
        return xz, zz


def cell_coding(prep: Prepared, terms: list[str]) -> FixedCoding:
    """The sum-to-zero coding of the all-fixed model of ``terms`` (its columns for any coded rows)."""
    return FixedCoding([Term(tuple(split_term(t))) for t in terms], True, prep.specs, "sum")


def build_model(prep: Prepared, terms: list[str]) -> CellModel:
    """Build the sum-to-zero coded model of ``terms`` (model order) for prepared data."""
    y = prep.y
    n = len(y)
    factors = list(prep.codes)
    if prep.covars or not factors:
        cell = np.arange(n)
        first = cell
    else:
        mixed = np.zeros(n, dtype=np.int64)
        for f in factors:
            mixed = mixed * len(prep.levels[f]) + prep.codes[f]
            _, mixed = np.unique(mixed, return_inverse=True)
            mixed = mixed.reshape(-1)
        uniq, first, cell = np.unique(mixed, return_index=True, return_inverse=True)
        cell = cell.reshape(-1)
    ncell = int(cell.max()) + 1
    w = np.bincount(cell, weights=prep.w, minlength=ncell).astype(float)
    cell_codes = {f: prep.codes[f][first] for f in factors}
    values = dict(cell_codes)
    values.update({v: prep.covars[v][first] for v in prep.covars})
    coding = cell_coding(prep, terms)
    X = coding.build(values, ncell)
    return _fit_cells(prep, X, coding.assign, coding.colnames, w, cell, cell_codes, terms)


def _fit_cells(prep: Prepared, X: np.ndarray, assign: np.ndarray, names: list, w: np.ndarray, cell: np.ndarray,
            cell_codes: dict, terms: list[str]) -> CellModel:
    """Cross-products, least-squares fit and residual SS of the cell rows ``X``."""
    y = prep.y
    rw = prep.w  # rows standing for several observations (reduced out-of-core data), else None
    n = len(y) if rw is None else int(round(float(np.sum(rw))))
    ncell = X.shape[0]
    ybar = float(y.mean()) if rw is None else float(np.sum(rw * y) / np.sum(rw))
    yc = y - ybar
    X, T = _standardize_cells(X, w, assign)
    xtx = X.T @ (X * w[:, None])
    ysum = np.bincount(cell, weights=yc if rw is None else rw * yc, minlength=ncell)
    xty = X.T @ ysum
    G, rank = pinv_psd(xtx)
    b = G @ xty
    fit = X @ b
    r2 = (yc - fit[cell]) ** 2
    ss_resid = float(np.sum(r2)) if rw is None else float(np.sum(rw * r2)) + prep.ss_within
    return CellModel(terms=list(terms), assign=assign, colnames=names, X=X, w=w, cell=cell,
                     cell_codes=cell_codes, levels=prep.levels, n=n, xtx=xtx, xty=xty, G=G,
                     rank=rank, b=b, ybar=ybar, ss_resid=ss_resid, T=T, ysum=ysum)


def _standardize_cells(X: np.ndarray, w: np.ndarray, assign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale every non-intercept column by the cell-count weighted mean and SD: ``X T``."""
    p = X.shape[1]
    T = np.eye(p)
    icpt = np.flatnonzero(np.asarray(assign) < 0)
    if not icpt.size or p <= 1:
        return X, T
    i0 = int(icpt[0])
    others = np.array([j for j in range(p) if j != i0])
    n = float(w.sum())
    m = (w @ X[:, others]) / n
    Xc = X[:, others] - m
    d = np.sqrt((w @ (Xc * Xc)) / n)
    d = np.where(d > 0, d, 1.0)
    Xs = X.copy()
    Xs[:, others] = Xc / d
    T[i0, others] = -m / d
    T[others, others] = 1.0 / d
    return Xs, T


# ---------------------------------------------------------------- nested-cell coding (type III)

def _combo(model: CellModel, facs: list[str]) -> np.ndarray:
    """Code (0..m-1, sorted) of the combination of ``facs`` in every cell row of ``model``."""
    codes = np.zeros(model.X.shape[0], dtype=np.int64)
    for f in facs:
        codes = codes * len(model.levels[f]) + model.cell_codes[f]
        _, codes = np.unique(codes, return_inverse=True)
        codes = codes.reshape(-1)
    return codes


def _factor_terms(model: CellModel, terms: list[str]) -> list[str]:
    return [t for t in terms if all(f in model.cell_codes for f in split_term(t))]


def _marginals(term: str, fterms: list[str]) -> list[str]:
    """Factor terms of the model whose factor sets are strict, non-empty subsets of ``term``'s."""
    key = term_key(term)
    return [m for m in fterms if term_key(m) < key and term_key(m)]


def incomplete_terms(model: CellModel, terms: list[str]) -> dict[str, pd.DataFrame]:
    """Factor terms with empty cells of crossed factors, with every missing combination.

    A factor term ``T`` with marginal terms ``M_1, ..., M_k`` in the model
    (terms whose factor sets are strict subsets of ``T``'s) has *crossed
    factors* ``K``, the union of the ``M_i``'s factors; the others are nested
    in ``T``.  ``T`` is *complete* when every combination of ``K``'s levels
    that its marginal terms allow (the natural join of the ``M_i``'s present
    cells) occurs among ``T``'s cells, whatever the number of nested levels
    in each.  E.g. ``batch:sample`` (marginal ``batch``) is always complete;
    ``block:A`` of a split-plot with a whole plot missing (marginals ``block``
    and ``A``) and ``A:B`` with an empty cell are not; ``A:B:C`` with
    marginal ``A:B`` (3-stage nesting) needs only ``A:B``'s present cells.

    Returns
    -------
    dict
        Incomplete term -> DataFrame of its empty cells: one row per missing
        combination, one column per crossed factor (level labels).
    """
    fterms = _factor_terms(model, terms)
    out: dict[str, pd.DataFrame] = {}
    for t in fterms:
        margs = _marginals(t, fterms)
        if not margs:
            continue
        kset = {f for m in margs for f in split_term(m)}
        K = [f for f in split_term(t) if f in kset]
        present = pd.DataFrame({f: model.cell_codes[f] for f in K}).drop_duplicates()
        join = None
        for m in sorted(margs, key=lambda m: -len(term_key(m))):
            fm = split_term(m)
            cells = pd.DataFrame({f: model.cell_codes[f] for f in fm}).drop_duplicates()
            if join is None:
                join = cells
            else:
                on = [f for f in fm if f in join.columns]
                join = join.merge(cells, on=on, how="inner") if on else join.merge(cells, how="cross")
        if len(join) > len(present):
            miss = join[K].merge(present, on=K, how="left", indicator=True)
            miss = miss[miss["_merge"] == "left_only"].drop(columns="_merge").sort_values(K)
            out[t] = pd.DataFrame({f: [model.levels[f][int(c)] for c in miss[f]] for f in K})
    return out


def describe_cells(cells: pd.DataFrame, limit: int = 3) -> str:
    """``"block 3, variety Victory; block 5, variety Marvellous"`` for the first ``limit`` rows of ``cells``."""
    shown = "; ".join(", ".join("%s %s" % (f, r[f]) for f in cells.columns) for _, r in cells.head(limit).iterrows())
    return shown + ("; ..." if len(cells) > limit else "")


def _helmert(g: int) -> np.ndarray:
    """Orthonormal Helmert contrasts of ``g`` levels, shape ``(g, g - 1)``."""
    j = np.arange(1, g)
    H = (np.arange(g)[:, None] < j[None, :]).astype(float)
    H[j, j - 1] = -j
    return H / np.sqrt(j * (j + 1))[None, :]


def _within_contrasts(groups: np.ndarray) -> np.ndarray:
    """Orthonormal contrasts within each group: rows = members (group codes ``0..g-1``), one column per member
    after the first of its group (so the columns are orthogonal to every group indicator)."""
    m = len(groups)
    order = np.argsort(groups, kind="stable")
    counts = np.bincount(groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    C = np.zeros((m, m - int(np.count_nonzero(counts))))
    col = np.concatenate([[0], np.cumsum(np.maximum(counts - 1, 0))[:-1]])  # first column of each group
    for g in np.unique(counts):
        if g < 2:
            continue
        gr = np.flatnonzero(counts == g)
        rows = order[starts[gr][:, None] + np.arange(g)[None, :]]            # (groups, g) members
        cols = col[gr][:, None] + np.arange(g - 1)[None, :]                 # (groups, g - 1)
        H = _helmert(int(g))
        C[rows[:, :, None], cols[:, None, :]] = H[None, :, :]
    return C


def _complement(S: np.ndarray) -> np.ndarray:
    """Orthonormal basis (columns) of the orthogonal complement of the column space of ``S``."""
    u, s, _ = np.linalg.svd(S, full_matrices=True)
    r = int(np.sum(s > 1e-10 * (s.max() if s.size else 1.0)))
    return u[:, r:]


def nested_cell_model(prep: Prepared, model: CellModel) -> CellModel:
    """The model re-coded for type III in cell space (used when the sum-coded ``X`` is rank deficient).

    Each factor term ``T`` is coded by an orthonormal basis of the orthogonal
    complement, in ``T``'s unweighted cell space (its present level
    combinations), of the indicators of its marginal terms in the model and
    the intercept.  With all cells of a crossed term present this spans the
    same space as the Kronecker sum contrasts; for a nested term it gives
    within-outer-level contrasts and a full-rank ``X``.  Terms with a
    covariate keep their columns from ``model``.
    """
    terms = model.terms
    fterms = _factor_terms(model, terms)
    ncell = model.X.shape[0]
    coded = model.X @ np.linalg.inv(model.T)  # the coded (unstandardised) columns
    blocks = [np.ones((ncell, 1))]
    assign = [-1]
    names = ["Intercept"]
    for k, t in enumerate(terms):
        if t not in fterms:
            cols = model.assign == k
            blocks.append(coded[:, cols])
            assign += [k] * int(cols.sum())
            names += [c for c, keep in zip(model.colnames, cols) if keep]
            continue
        tcode = _combo(model, split_term(t))
        m = int(tcode.max()) + 1
        first = np.unique(tcode, return_index=True)[1]  # first cell row of each T-cell
        margs = _marginals(t, fterms)
        K = {f for mg in margs for f in split_term(mg)}
        finest = [mg for mg in margs if term_key(mg) == frozenset(K)]
        if not margs:
            C = _within_contrasts(np.zeros(m, dtype=np.int64))
        elif finest:
            # the marginal indicators span the finest marginal's: contrasts within its cells
            C = _within_contrasts(_combo(model, split_term(finest[0]))[first])
        else:
            S = [np.ones((m, 1))]
            for mg in margs:
                mc = _combo(model, split_term(mg))[first]
                S.append(np.eye(int(mc.max()) + 1)[mc])
            C = _complement(np.hstack(S))
        blocks.append(C[tcode])
        assign += [k] * C.shape[1]
        names += ["%s[N.%d]" % (t, j + 1) for j in range(C.shape[1])]
    return _fit_cells(prep, np.hstack(blocks), np.asarray(assign), names, model.w, model.cell, model.cell_codes, terms)
