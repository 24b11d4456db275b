"""The model frame of a Dask DataFrame: global levels in one pass, then any partition coded against them.

In memory, :func:`vcomp._coding.model_frame` resolves the variables, drops incomplete rows and
codes factors with the levels of the whole column.  Here the same function runs on each
partition (so every rule and message is the in-memory one), and the partition's own levels
are mapped to the global ones by label.  The global levels come from one pass that keeps, per
partition, the first row of every level of every factor and of every grouping interaction
(a *prototype* frame, at most levels x partitions rows); :func:`model_frame` on the prototype
then yields exactly the specs (kind, levels, contrast) of the whole data.  Stateful
transforms (``center(x)``, ``scale(x)``, ``standardize(x)``) get their state from sums over
the complete rows of all partitions.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from .._coding import ModelFrame, _warn_unused, model_frame
from .._errors import DataError, DroppedRowsWarning, VcompError, warn
from ..formula import FactorValue, evaluate_expression
from ..terms import ModelFormula, python_source
from . import reduce_partitions

__all__ = ["FramePlan", "GlobalFrame", "global_frame", "code_partition", "PartitionCodes", "dask_meta"]

_STATEFUL = ("center", "scale", "standardize")


@dataclass(frozen=True)
class FramePlan:
    """How rows are read: the parsed model and the variables' roles (what ``model_frame`` gets)."""

    formula: ModelFormula
    factors: frozenset = frozenset()
    covariates: frozenset = frozenset()
    context: str = ""
    unknown: type = DataError

    def frame(self, data: pd.DataFrame, contrasts=None) -> ModelFrame:
        return model_frame(self.formula, data, factors=self.factors, covariates=self.covariates,
                           context=self.context, unknown=self.unknown, contrasts=contrasts, warn_dropped=False)

    def groups(self) -> list:
        """Grouping terms of several variables (``(1|a:b)``): their combinations need global levels too."""
        return [r.group for r in self.formula.random if len(r.group.variables) > 1]


# --------------------------------------------------------------------------- one partition
def _without_unused(part: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns without the categories absent from this partition (no per-partition warnings)."""
    cats = [c for c in part.columns if isinstance(part[c].dtype, pd.CategoricalDtype)]
    if not cats:
        return part
    part = part.copy(deep=False)
    for c in cats:
        part[c] = part[c].cat.remove_unused_categories()
    return part


def partition_frame(part: pd.DataFrame, plan: FramePlan) -> ModelFrame | None:
    """:func:`model_frame` of one partition (its own levels); None when no row of it is complete."""
    if not len(part):
        return None
    part = _without_unused(part)
    try:
        return plan.frame(part)
    except DataError:
        if not part.notna().all(axis=1).any():  # every row has a missing value: nothing to analyse here
            return None
        raise


def _first_rows(mf: ModelFrame, plan: FramePlan) -> np.ndarray:
    """Positions (in ``mf.frame``) of the first row of every level of every factor and grouping interaction."""
    keep = [np.zeros(1, dtype=np.int64)]
    for v, s in mf.specs.items():
        if s.kind == "factor":
            keep.append(_firsts(mf.values[v]))
    for g in plan.groups():
        keep.append(_firsts(mf.group(g)[0]))
    return np.unique(np.concatenate(keep))


def _firsts(codes: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each code (hashing, O(n))."""
    return np.flatnonzero(~pd.Series(codes).duplicated().to_numpy())


@dataclass
class _Levels:
    """What the levels pass keeps of a set of partitions."""

    proto: pd.DataFrame
    n: int
    n_rows: int
    dropped_by: dict
    state: dict = field(default_factory=dict)   # stateful key -> [count, mean, M2]


def _stateful_calls(code: str) -> list[tuple[str, str]]:
    """``(key, argument source)`` of each ``center``/``scale``/``standardize`` call (``_stateful``'s keys)."""
    out = []
    for node in ast.walk(ast.parse(python_source(code), mode="eval")):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _STATEFUL:
            inner = ast.unparse(node.args[0]) if node.args else ""
            if any(isinstance(m, ast.Call) and isinstance(m.func, ast.Name) and m.func.id in _STATEFUL
                   for m in ast.walk(node.args[0])):
                raise VcompError("expression %r nests stateful transforms; with Dask data compute the inner one "
                                 "as a column first" % code)
            out.append((ast.dump(node), inner))
    return out


def _moments(x: np.ndarray) -> list:
    x = x[np.isfinite(x)]
    n = int(x.size)
    m = float(x.mean()) if n else 0.0
    return [n, m, float(np.sum((x - m) ** 2)) if n else 0.0]


def _chan(a: list, b: list) -> list:
    """Exact combination of (count, mean, centred sum of squares) of two sets."""
    n = a[0] + b[0]
    if not n:
        return [0, 0.0, 0.0]
    d = b[1] - a[1]
    return [n, a[1] + d * b[0] / n, a[2] + b[2] + d * d * a[0] * b[0] / n]


def _levels_map(part: pd.DataFrame, plan: FramePlan, stateful: dict) -> _Levels | None:
    n_rows = len(part)
    used = list(part.columns)
    miss = part.isna()
    dropped = {c: int(v) for c, v in miss.sum().items() if v}
    state = {}
    if stateful:
        complete = part.loc[~miss.any(axis=1).to_numpy()]
        for code, calls in stateful.items():
            for key, inner in calls:
                val = np.asarray(evaluate_expression(inner, lambda c: complete[c], {}), dtype=float)
                state[key] = _moments(np.broadcast_to(val, (len(complete),)).copy())
    mf = partition_frame(part, plan)
    if mf is None:
        return _Levels(part.iloc[:0][used], 0, n_rows, dropped, state)
    for k, v in mf.dropped_by.items():
        if k not in dropped:  # expression values that are NaN
            dropped[k] = v
    proto = mf.frame.iloc[_first_rows(mf, plan)]
    return _Levels(proto, mf.n, n_rows, dropped, state)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Row-bind prototypes; categorical columns keep a categorical dtype (union of categories)."""
    out = {}
    for c in frames[0].columns:
        cols = [f[c] for f in frames]
        if all(isinstance(s.dtype, pd.CategoricalDtype) for s in cols):
            try:
                out[c] = pd.Series(union_categoricals(cols, ignore_order=False))
            except TypeError:
                raise DataError("ordered categorical column %r has different categories in different partitions; "
                                "give it one dtype (ddf[%r].astype(pd.CategoricalDtype(categories, ordered=True)))"
                                % (c, c)) from None
        else:
            out[c] = pd.concat([s.reset_index(drop=True) for s in cols], ignore_index=True)
    return pd.DataFrame(out)


def _levels_combine(a: _Levels | None, b: _Levels | None, plan: FramePlan) -> _Levels | None:
    if a is None or b is None:
        return a if b is None else b
    proto = _concat([a.proto, b.proto])
    if len(a.proto) and len(b.proto):
        mf = plan.frame(proto)
        proto = mf.frame.iloc[_first_rows(mf, plan)]
    dropped = dict(a.dropped_by)
    for k, v in b.dropped_by.items():
        dropped[k] = dropped.get(k, 0) + v
    state = {k: _chan(a.state[k], b.state[k]) for k in a.state}
    return _Levels(proto.reset_index(drop=True), a.n + b.n, a.n_rows + b.n_rows, dropped, state)


# --------------------------------------------------------------------------- the whole data
@dataclass
class GlobalFrame:
    """The variables of the whole Dask data: specs with global levels and the row counts.

    Attributes
    ----------
    plan : FramePlan
    mf : ModelFrame
        :func:`model_frame` of the prototype rows (first row of every level): ``specs`` are those
        of the whole data; its rows are *not* the data.
    columns : list of str
        The data columns used (a pass reads only these).
    n : int
        Complete rows (the observations analysed).
    n_dropped : int
    dropped_by : dict
    """

    plan: FramePlan
    mf: ModelFrame
    columns: list
    n: int
    n_dropped: int
    dropped_by: dict

    @property
    def specs(self) -> dict:
        return self.mf.specs

    def group_levels(self, group) -> list:
        """Global labels of a grouping term (one factor or an interaction)."""
        return list(self.mf.group(group)[1])


def _used_columns(plan: FramePlan, meta: pd.DataFrame) -> list[str]:
    """The data columns the model reads (missing ones raise the in-memory error)."""
    from ..formula import expression_columns

    names = plan.formula.variables()
    if any(v not in meta.columns and "(" not in v for v in names):
        plan.frame(meta)  # raises the in-memory message naming the missing column
    cols = []
    for v in names:
        cols += [v] if v in meta.columns else expression_columns(v, lambda c: c in meta.columns)
    return list(dict.fromkeys(cols))


def dask_meta(ddf) -> pd.DataFrame:
    """The empty pandas frame describing a Dask DataFrame's columns (a Series or odd columns: the in-memory error)."""
    meta = ddf._meta if hasattr(ddf, "_meta") else ddf.head(0)
    if not isinstance(meta, pd.DataFrame) or isinstance(meta.columns, pd.MultiIndex) \
            or len(set(map(str, meta.columns))) != len(meta.columns):
        from .._coding import as_frame
        as_frame(meta, "the Dask data")  # the in-memory message
    return meta


def global_frame(ddf, plan: FramePlan, contrasts=None) -> tuple[GlobalFrame, object]:
    """One pass over ``ddf``: levels, counts of complete and dropped rows, states of stateful transforms.

    Returns the :class:`GlobalFrame` and the Dask frame to read (columns renamed to text if needed).

    Raises
    ------
    DataError, FormulaError
        As :func:`vcomp._coding.model_frame` does in memory (missing column, no complete rows, ...).
    """
    meta = dask_meta(ddf)
    if not all(isinstance(c, str) for c in meta.columns):
        ddf = ddf.rename(columns={c: str(c) for c in meta.columns})
        meta = dask_meta(ddf)
    columns = _used_columns(plan, meta)
    stateful = {}
    for v in plan.formula.variables():
        if v not in meta.columns and "(" in v:
            calls = _stateful_calls(v)
            if calls:
                stateful[v] = calls
    lev = reduce_partitions(ddf, columns, _levels_map, _LevelsCombine(plan), plan, stateful)
    if lev is None or lev.n == 0:
        raise DataError("no complete rows left: every row has a missing value in %s" % ", ".join(map(repr, columns)))
    mf = plan.frame(lev.proto.reset_index(drop=True), contrasts=contrasts)
    for c in columns:  # categories of the whole column that no analysed row uses
        if isinstance(meta[c].dtype, pd.CategoricalDtype) and c in mf.specs and mf.specs[c].kind == "factor" \
                and ddf[c].cat.known:
            _warn_unused(meta[c], mf.specs[c].levels, c)
    for v, calls in stateful.items():
        st = mf.specs[v].state
        st.clear()
        for key, _ in calls:
            k, m, m2 = lev.state[key]
            s = float(np.sqrt(m2 / (k - 1))) if k > 1 else 1.0
            st[key] = (m if k else 0.0, s if s > 0 else 1.0)
    n_drop = lev.n_rows - lev.n
    if n_drop:
        warn("%d row(s) with missing values dropped%s (%s); %d rows remain."
             % (n_drop, (" " + plan.context) if plan.context else "",
                ", ".join("%s: %d" % kv for kv in lev.dropped_by.items()), lev.n), DroppedRowsWarning)
    return GlobalFrame(plan, mf, columns, lev.n, n_drop, lev.dropped_by), ddf


class _LevelsCombine:
    """``_levels_combine`` bound to a plan (a picklable callable)."""

    def __init__(self, plan: FramePlan) -> None:
        self.plan = plan

    def __call__(self, a, b):
        return _levels_combine(a, b, self.plan)


# --------------------------------------------------------------------------- coding against global levels
@dataclass
class PartitionCodes:
    """One partition coded with the global levels: what ``ModelFrame.values`` / ``.y`` hold in memory."""

    n: int
    values: dict
    y: np.ndarray
    index: pd.Index
    frame: pd.DataFrame

    def group(self, gf: GlobalFrame, group) -> np.ndarray:
        """Global codes of a grouping term."""
        vs = list(group.variables)
        if len(vs) == 1:
            return self.values[vs[0]]
        from .._coding import interaction

        codes, labels = interaction([self.values[v] for v in vs], [gf.specs[v].labels for v in vs])
        return pd.Index(gf.group_levels(group)).get_indexer(labels)[codes]


def code_partition(part: pd.DataFrame, gf: GlobalFrame) -> PartitionCodes | None:
    """The rows of one partition that the in-memory analysis keeps, coded with the global levels."""
    mf = partition_frame(part, gf.plan)
    if mf is None:
        return None
    values = {}
    for v, g in gf.specs.items():
        loc = mf.specs[v]
        if g.kind == "factor":
            remap = np.append(pd.Index(g.labels).get_indexer(loc.labels), -1)
            values[v] = remap[mf.values[v]]
        elif g.is_expression and g.state:
            val = evaluate_expression(g.source, lambda c: mf.frame[c], g.state)
            if isinstance(val, FactorValue):  # pragma: no cover - factors are handled above
                raise VcompError("expression %r" % v)
            values[v] = np.broadcast_to(np.asarray(val, dtype=float), (mf.n,)).copy()
        else:
            values[v] = mf.values[v]
    return PartitionCodes(mf.n, values, mf.y, mf.row_index, mf.frame)
