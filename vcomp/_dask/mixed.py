"""``lmm`` on a Dask DataFrame: the stages of :func:`vcomp.mixed.model.fit` from reduced sums.

Two passes over the data: the levels (:func:`vcomp._dask.frame.global_frame`), then one pass
whose partitions each return the sums of ``W = [X y]`` about their own means, the random
effects' products ``Z'Z``, ``Z'W`` (per level when every term has one grouping factor) and
the moments of the fixed part's cells.  From the exactly combined sums come, as in memory,
the aliased columns, the :class:`~vcomp.mixed.crossprod.Standardization`, the terms' column
scales and the internal :class:`~vcomp.mixed.crossprod.CrossProducts`; the fit, tests, BLUPs
and shrinkage then run unchanged.  :class:`DaskRows` gives the per-row outputs (fitted
values, residuals) as lazy Dask series and further per-level sums (the own fits of
``shrinkage``) from one more pass.

The internals used (for the core to keep or rewire): ``FixedCoding(..).build``,
``build_re_terms(..., allow_saturated=True)``, ``check_re_terms``, ``ReTerm`` fields
(``codes``, ``Xi``, ``scale``, ``coding``, ``offset``, ``k``), ``z_matrix``, ``level_sums``,
``single_factor``, ``drop_aliased``, ``standardization`` and ``CrossProducts``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._coding import FixedCoding, ModelFrame
from .._errors import FormulaError
from ..mixed.crossprod import CrossProducts, drop_aliased, level_sums, single_factor, standardization
from ..mixed.reterm import ReTerm, build_re_terms, check_re_terms, z_matrix
from ..mixed.shrinkage import own_fit_level_sums, own_fit_matrix
from ..terms import ModelFormula
from . import reduce_partitions, require_dask
from .frame import FramePlan, GlobalFrame, code_partition, global_frame, partition_frame
from .stats import Sums, cell_stats, combine_sums, weighted_rows

__all__ = ["reduced_inputs", "DaskRows", "predict_lazily", "cell_table"]


@dataclass
class _CrossPlan:
    """What each partition of the cross-products pass needs (picklable)."""

    gf: GlobalFrame
    fixed: FixedCoding          # every column, before aliased ones are dropped
    terms: list                 # ReTerm (levels, codings, offsets; no rows)
    block: bool
    cell_factors: list
    cell_covariates: list


def _partition_terms(terms: list[ReTerm], pc, gf: GlobalFrame) -> list[ReTerm]:
    """The terms on one partition's rows (global codes, original-unit columns)."""
    return [replace(t, codes=pc.group(gf, t.spec.group), Xi=np.ascontiguousarray(t.coding.build(pc.values, pc.n)))
            for t in terms]


def _cross_map(part: pd.DataFrame, cp: _CrossPlan) -> Sums | None:
    pc = code_partition(part, cp.gf)
    if pc is None:
        return None
    X = cp.fixed.build(pc.values, pc.n)
    m = X.shape[1] + 1
    Wc1 = np.empty((pc.n, m + 1))
    Wc1[:, :m - 1], Wc1[:, m - 1], Wc1[:, m] = X, pc.y, 1.0
    out = Sums.of(Wc1[:, :m], center=True)
    terms = _partition_terms(cp.terms, pc, cp.gf)
    if cp.block:
        Zr = np.hstack([t.Xi for t in terms])
        kz = Zr.shape[1]
        B = level_sums(terms[0].codes, terms[0].nlev, Zr, np.column_stack([Zr, Wc1]))
        out.ZZ, out.ZW, out.Z1 = B[:, :, :kz], B[:, :, kz:kz + m], B[:, :, kz + m]
    elif terms:
        Z = z_matrix(terms, pc.n, internal=False).tocsc()
        out.ZZ = (Z.T @ Z).tocsc()
        ZW = np.asarray(Z.T @ Wc1)
        out.ZW, out.Z1 = ZW[:, :m], ZW[:, m]
    keys = np.column_stack([pc.values[f] for f in cp.cell_factors]) if cp.cell_factors \
        else np.zeros((pc.n, 0), dtype=np.int64)
    v = np.column_stack([pc.values[c] for c in cp.cell_covariates]) if cp.cell_covariates else np.zeros((pc.n, 0))
    out.cells = cell_stats(keys, v)
    return out


def _term_rms(terms: list[ReTerm], sums: Sums, block: bool) -> list[np.ndarray]:
    """Root-mean-square of each term's columns (their internal scaling), from the diagonal of ``Z'Z``."""
    n = sums.n
    out = []
    if block:
        diag = np.einsum("gkk->k", sums.ZZ)
        o = 0
        for t in terms:
            out.append(np.sqrt(diag[o:o + t.k] / n))
            o += t.k
        return out
    diag = sums.ZZ.diagonal() if terms else np.zeros(0)
    for t in terms:
        out.append(np.sqrt(diag[t.offset:t.offset + t.q].reshape(t.nlev, t.k).sum(axis=0) / n))
    return out


def _rows_exact(fixed: FixedCoding) -> bool:
    """Weighted cell rows reproduce the fixed columns' moments when no term multiplies two covariates."""
    cov = set(fixed.continuous())
    return all(sum(v in cov for v in t.variables) <= 1 for t in fixed.terms)


def reduced_inputs(model: ModelFormula, ddf, factors, covariates, contrasts):
    """The inputs of :class:`~vcomp.mixed.model.MixedModel` from two passes over a Dask DataFrame.

    Returns
    -------
    tuple
        ``(mf, fixed, X, terms, std, cp, source)``: a :class:`ModelFrame` of weighted cell rows
        (``weights``: observations per row; ``values``: their codes), the fixed coding without
        aliased columns, the fixed-effect matrix of those rows, the random-effects terms (no
        rows), the standardisation, the internal cross-products and the :class:`DaskRows`.
    """
    require_dask()
    plan = FramePlan(model, frozenset(factors), frozenset(covariates), "from the model frame", FormulaError)
    gf, ddf = global_frame(ddf, plan, contrasts)
    fixed_all = FixedCoding(list(model.fixed), model.intercept, gf.specs, "treatment")
    terms = build_re_terms(list(model.random), gf.mf, gf.mf.n, allow_saturated=True)
    block = single_factor(terms)
    cellf = [v for v in fixed_all.variables() if gf.specs[v].kind == "factor"]
    cellc = fixed_all.continuous()
    sums = reduce_partitions(ddf, gf.columns, _cross_map, combine_sums,
                             _CrossPlan(gf, fixed_all, terms, block, cellf, cellc))
    n, pa = sums.n, fixed_all.p
    mu = sums.mean
    # aliased columns: X centred at its means, the intercept column kept at 1 (as fixed_columns)
    if pa:
        ta = mu.copy() if model.intercept else np.zeros(pa + 1)
        if model.intercept:
            ta[0] = 0.0
        fixed, keep, _ = drop_aliased(fixed_all, sums.shifted(ta).M[:pa, :pa])
    else:
        fixed, keep = fixed_all, []
    keep = np.asarray(keep, dtype=np.int64)
    p = len(keep)
    ones = np.flatnonzero(sums.ones[keep])
    icpt = int(ones[0]) if ones.size else None
    target = mu.copy() if icpt is not None else np.zeros(pa + 1)
    if icpt is not None:
        target[keep[icpt]] = 0.0
    sh = sums.shifted(target)
    cols = np.append(keep, pa)
    M = sh.M[np.ix_(cols, cols)]
    rms = np.sqrt(np.clip(np.diag(M), 0.0, None) / n)
    std, d = standardization(target[keep], rms[:p], icpt, target[pa], rms[p])
    s = std.scale
    XtX = M[:p, :p] / np.outer(d, d)
    Xty = M[:p, p] / (d * s)
    yty = float(M[p, p] / s ** 2)
    scales = [np.where(r > 0, r, 1.0) for r in _term_rms(terms, sums, block)]
    terms = [replace(t, codes=np.zeros(0, dtype=np.int64), Xi=np.zeros((0, t.k)), scale=sc)
             for t, sc in zip(terms, scales)]
    check_re_terms(terms, n)
    if block:
        Dz = np.concatenate(scales)
        cp = CrossProducts(n, p, XtX, Xty, yty, True, S=sh.ZZ / np.outer(Dz, Dz),
                           ZX=sh.ZW[:, :, keep] / (Dz[:, None] * d[None, :]), Zy=sh.ZW[:, :, pa] / (Dz * s))
    else:
        Dz = np.concatenate([np.tile(t.scale, t.nlev) for t in terms]) if terms else np.zeros(0)
        Di = sp.diags(1.0 / Dz) if terms else sp.csc_matrix((0, 0))
        ZZ = sh.ZZ if terms else sp.csc_matrix((0, 0))
        ZW = sh.ZW if terms else np.zeros((0, pa + 1))
        cp = CrossProducts(n, p, XtX, Xty, yty, False, ZtZ=(Di @ ZZ @ Di).tocsc(),
                           ZtX=ZW[:, keep] / (Dz[:, None] * d[None, :]), Zty=ZW[:, pa] / (Dz * s))
    # the fixed part's cells as weighted rows (type III contrasts, coding maps)
    wr = weighted_rows(sums.cells, len(cellc))
    values = {f: sums.cells.keys[wr["cell"], i] for i, f in enumerate(cellf)}
    values.update({c: wr["x"][:, j] for j, c in enumerate(cellc)})
    X = fixed.build(values, len(wr["w"])) if _rows_exact(fixed) else None
    mf = ModelFrame(gf.mf.frame.iloc[:0], model.response, None, gf.specs, values, gf.n_dropped, gf.dropped_by,
                    None, wr["w"])
    return mf, fixed, X, terms, std, cp, DaskRows(ddf, gf)


# --------------------------------------------------------------------------- per-row outputs, more sums
@dataclass
class _RowPlan:
    gf: GlobalFrame
    fixed: FixedCoding
    terms: list
    beta: np.ndarray
    b: list            # BLUPs per term, original units (levels x k)
    what: str          # "fitted", "population", "residuals"


def _rows_map(part: pd.DataFrame, rp: _RowPlan) -> pd.Series:
    pc = code_partition(part, rp.gf)
    if pc is None:
        return pd.Series(np.zeros(0), index=part.index[:0], name=rp.what, dtype=float)
    out = rp.fixed.build(pc.values, pc.n) @ rp.beta
    if rp.what != "population":
        for t, b in zip(_partition_terms(rp.terms, pc, rp.gf), rp.b):
            out = out + np.sum(t.Xi * b[t.codes], axis=1)
    if rp.what == "residuals":
        out = pc.y - out
    return pd.Series(out, index=pc.index, name=rp.what)


def _clean_map(part: pd.DataFrame, gf: GlobalFrame) -> pd.DataFrame:
    mf = partition_frame(part, gf.plan)
    if mf is None:
        return part.iloc[:0]
    return mf.frame.set_axis(mf.row_index, axis=0)


def _own_map(part: pd.DataFrame, gf: GlobalFrame, fixed: FixedCoding, terms: list, term: int, picks: list):
    """Per-level sums of the own-fit columns of one partition (see ``shrinkage.own_fit_columns``)."""
    pc = code_partition(part, gf)
    if pc is None:
        return None
    terms = _partition_terms(terms, pc, gf)
    A = own_fit_matrix(picks, fixed.build(pc.values, pc.n), [t.Xi for t in terms])
    t = terms[term]
    return own_fit_level_sums(t.codes, t.nlev, A, np.asarray(pc.y, dtype=float))


def _add_all(a, b):
    if a is None or b is None:
        return a if b is None else b
    return tuple(x + y for x, y in zip(a, b))


class DaskRows:
    """The rows of a model fitted to a Dask DataFrame: lazy per-row outputs and further per-level sums.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        The data (read again, lazily, for each output).
    gf : GlobalFrame
        Its variables with the global levels.
    """

    def __init__(self, ddf, gf: GlobalFrame) -> None:
        self._ddf = ddf
        self.gf = gf
        self.npartitions = int(ddf.npartitions)
        self._own: dict = {}

    def _series(self, model, what: str):
        rp = _RowPlan(self.gf, model._fixed, list(model._re_terms), model.fixef.to_numpy(),
                      list(model._b_terms), what)
        meta = pd.Series(np.zeros(0), name=what, dtype=float)
        return self._ddf[self.gf.columns].map_partitions(_rows_map, rp, meta=meta)

    def fitted(self, model):
        """Conditional fitted values X beta + Z b (lazy, indexed by the data's row labels)."""
        return self._series(model, "fitted")

    def residuals(self, model):
        return self._series(model, "residuals")

    def predict(self, model, re: bool = True):
        return self._series(model, "fitted" if re else "population")

    def data(self, model):
        """The analysed rows (the used columns of the complete rows), lazily."""
        meta = self.gf.mf.frame.iloc[:0]
        return self._ddf[self.gf.columns].map_partitions(_clean_map, self.gf, meta=meta)

    def own_fit_sums(self, model, term: ReTerm, picks: list):
        """Rows, ``A'A`` and ``A'y`` per level of ``term``'s factor (one pass; cached)."""
        key = (term.name, tuple(picks))
        if key not in self._own:
            terms = list(model._re_terms)
            out = reduce_partitions(self._ddf, self.gf.columns, _own_map, _add_all, self.gf, model._fixed, terms,
                                    [t.name for t in terms].index(term.name), list(picks))
            self._own[key] = out
        return self._own[key]


def _count_map(part: pd.DataFrame, gf: GlobalFrame, factors: list) -> pd.Series | None:
    mf = partition_frame(part, gf.plan)
    if mf is None:
        return None
    return mf.frame.groupby(factors, observed=True).size()


def _count_combine(a, b):
    if a is None or b is None:
        return a if b is None else b
    return a.add(b, fill_value=0)


def cell_table(model, factors: list) -> tuple[pd.DataFrame, str]:
    """The observed combinations of ``factors`` in the rows a Dask-fitted model analysed, with their counts.

    Returns the table and the name of its count column (one more pass over the data).
    """
    src = model._source
    counts = reduce_partitions(src._ddf, src.gf.columns, _count_map, _count_combine, src.gf, list(factors))
    name = "__rows__"
    while name in factors:
        name += "_"
    return counts.astype(np.int64).rename(name).reset_index(), name


def _predict_map(part: pd.DataFrame, model, re: bool) -> pd.Series:
    return pd.Series(model.predict(part, re), index=part.index, name="predicted", dtype=float)


def predict_lazily(model, newdata, re: bool = True):
    """``model.predict`` on each partition of a Dask DataFrame (a lazy Dask Series)."""
    require_dask()
    meta = pd.Series(np.zeros(0), name="predicted", dtype=float)
    return newdata.map_partitions(_predict_map, model, re, meta=meta)
