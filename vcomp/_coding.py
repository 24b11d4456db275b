"""The one data-coding layer: validated frames, variables, factor levels and model-matrix columns.

Every analysis (classical ANOVA, mixed models, means, simulation) codes its data here:

1. :func:`as_frame` checks the caller's table (duplicated or MultiIndex columns, non-string
   labels) and returns a shallow copy with string column names; the caller's data are
   never modified.
2. :func:`model_frame` resolves the variables of a :class:`~vcomp.terms.ModelFormula`
   (columns or expressions), drops rows with missing values (counted and reported),
   refuses infinite values, and codes each variable as a factor or a covariate.
3. :class:`FixedCoding` turns terms into model-matrix columns by R's ``model.matrix`` rule
   (a factor is coded by contrasts when the term without it precedes it, by indicators
   otherwise), for any contrast coding, on data rows, cells or reference grids.

The factor/covariate rule: a Design's named variables are factors whatever their dtype
(SAS CLASS); in a formula a numeric column is a covariate (as in R) unless wrapped in
``C()`` or listed in ``factors=``; grouping factors of ``(...|g)`` are always factors.
Levels are the sorted unique values (numbers numerically, text lexicographically) or
the category order of an ordered categorical; labels are their text (``1.0`` -> ``"1"``).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ._errors import DataError, FormulaError, VcompWarning, warn
from .formula import FactorValue, contrast_kind, contrast_matrix, evaluate_expression, expression_columns
from .terms import ModelFormula, Term, split_term

__all__ = ["as_frame", "check_columns", "numeric_values", "FactorLevels", "factor_levels", "encode_factor",
           "interaction", "VarSpec", "ModelFrame", "model_frame", "FixedCoding", "UnusedLevelsWarning",
           "level_label", "DroppedRowsWarning"]

from ._errors import DroppedRowsWarning  # noqa: E402  (re-exported for the coding layer's users)


class UnusedLevelsWarning(VcompWarning):
    """A categorical column has categories that do not occur in the rows analysed; they were dropped."""


# --------------------------------------------------------------------------- frames
def as_frame(data, what: str = "data") -> pd.DataFrame:
    """A shallow copy of ``data`` with string column names, after checking its columns.

    Raises
    ------
    DataError
        Not a table; MultiIndex columns; duplicated column names (also after ``str()``).
    """
    if isinstance(data, pd.Series):
        raise DataError("%s is a pandas Series; pass a DataFrame (e.g. series.to_frame())" % what)
    if not isinstance(data, pd.DataFrame):
        if _is_dask(data):
            raise DataError("%s is a Dask DataFrame; this function needs a pandas DataFrame (call .compute() "
                            "or use an entry point that accepts Dask data)" % what)
        if not isinstance(data, Mapping) and not (isinstance(data, np.ndarray) and data.dtype.names):
            raise DataError("%s must be a pandas DataFrame (or a dict of columns), got %s"
                            % (what, type(data).__name__))
        try:
            data = pd.DataFrame(data)
        except Exception as exc:
            raise DataError("%s must be a pandas DataFrame (or a dict of columns), got %s: %s"
                            % (what, type(data).__name__, exc)) from None
    cols = data.columns
    if isinstance(cols, pd.MultiIndex):
        raise DataError("%s has MultiIndex (hierarchical) column labels; flatten them first, e.g. "
                        "df.columns = ['_'.join(map(str, c)) for c in df.columns]" % what)
    raw = cols.tolist()          # one conversion: iterating an Arrow-backed Index costs ~2 us a label
    labels = [c if type(c) is str else str(c) for c in raw]
    seen: dict = {}
    dup = []
    for c, s in zip(raw, labels):
        if s in seen and s not in dup:
            dup.append(s)
        seen.setdefault(s, c)
    if dup:
        raise DataError("duplicated column name%s %s in the %s: rename one of each (e.g. df.columns = [...])"
                        % ("s" if len(dup) > 1 else "", ", ".join(repr(d) for d in dup), what))
    out = data.copy(deep=False)
    if not all(type(c) is str for c in raw):
        out.columns = labels
    return out


def _is_dask(obj) -> bool:
    return type(obj).__module__.split(".")[0] in ("dask", "dask_expr")


def check_columns(frame: pd.DataFrame, names: Iterable[str], what: str = "column",
                  error: type = DataError) -> None:
    """Raise naming every column of ``names`` absent from ``frame`` (with close matches)."""
    cols = list(frame.columns)
    missing = [n for n in dict.fromkeys(names) if n not in frame.columns]
    if missing:
        hints = []
        for m in missing:
            close = difflib.get_close_matches(str(m), [str(c) for c in cols], n=2, cutoff=0.6)
            if close:
                hints.append("%r (did you mean %s?)" % (m, " or ".join(repr(c) for c in close)))
            else:
                hints.append(repr(m))
        raise error("%s %s not found in the data; available columns: %s. Check the spelling (quote odd names "
                    "as Q(\"name\") or `name` in a formula)."
                    % (what, ", ".join(hints), ", ".join(map(str, cols[:30])) + (", ..." if len(cols) > 30 else "")))


def _dtype_problem(col: pd.Series) -> str | None:
    dt = col.dtype
    if isinstance(dt, np.dtype):          # numpy dtypes: by kind (the pandas predicates cost ~2 us each)
        return "complex" if dt.kind == "c" else "date/time" if dt.kind in "mM" else None
    if pd.api.types.is_complex_dtype(dt):
        return "complex"
    if pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt) \
            or isinstance(dt, pd.PeriodDtype):
        return "date/time"
    return None


def _is_numeric(col: pd.Series) -> bool:
    dt = col.dtype
    if isinstance(dt, np.dtype):
        return dt.kind in "iuf"
    return (pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt)
            and not pd.api.types.is_complex_dtype(dt) and not isinstance(dt, pd.CategoricalDtype))


def numeric_values(col: pd.Series, name: str, role: str = "response") -> np.ndarray:
    """A numeric column as float64 (NaN for missing), or a :class:`DataError` saying what to do."""
    prob = _dtype_problem(col)
    if prob == "complex":
        raise DataError("%s %r is complex-valued; analyse its real or imaginary part (np.real / np.imag) "
                        "or its modulus explicitly" % (role, name))
    if prob:
        raise DataError("%s %r holds %s values; convert it to a number (e.g. days since the start) first"
                        % (role, name, prob))
    if not _is_numeric(col):
        if pd.api.types.is_bool_dtype(col.dtype):
            raise DataError("%s %r is boolean; convert it with data[%r].astype(float) if a 0/1 %s is meant"
                            % (role, name, name, role))
        raise DataError("%s %r is not numeric (dtype %s); convert it with pd.to_numeric(data[%r]) or choose a "
                        "numeric column" % (role, name, col.dtype, name))
    if isinstance(col.dtype, np.dtype):
        return col.to_numpy().astype(float)      # a copy: never the caller's buffer
    return col.to_numpy(dtype=float, na_value=np.nan)


# --------------------------------------------------------------------------- factors
def level_label(v) -> str:
    """The text of a level: ``1.0`` -> ``"1"``, ``2.5`` -> ``"2.5"``, ``True`` -> ``"True"``."""
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if f.is_integer() and abs(f) < 1e15:
            return str(int(f))
        return repr(f)
    if isinstance(v, pd.Timestamp):
        return v.isoformat() if (v.hour or v.minute or v.second or v.microsecond) else v.strftime("%Y-%m-%d")
    return str(v)


def _sort_key(v):
    if isinstance(v, (bool, np.bool_)):
        return (0, float(v), "")
    if isinstance(v, (int, float, np.integer, np.floating)):
        return (0, float(v), "")
    if isinstance(v, pd.Timestamp):
        return (1, float(v.value), "")
    return (2, 0.0, str(v))


@dataclass(frozen=True)
class FactorLevels:
    """Levels of a factor: labels (text, unique) and the original values, in level order."""

    labels: tuple
    values: tuple
    ordered: bool = False

    def __len__(self) -> int:
        return len(self.labels)


#: columns up to this length are factorised as Python objects (per-call overhead dominates)
_SMALL_ROWS = 20000


def _uniques(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (-1 missing) and unique values of a column, in order of appearance."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = np.asarray(col.array.codes, dtype=np.int64)
        return codes, np.asarray(col.dtype.categories, dtype=object)
    if isinstance(col.dtype, pd.StringDtype) and len(col) <= _SMALL_ROWS:
        # pandas' Arrow-backed factorize costs ~0.15 ms a call; small columns are faster as objects
        codes, uniq = pd.factorize(col.to_numpy(dtype=object, na_value=None), use_na_sentinel=True)
    elif col.dtype.kind in "biufO" or pd.api.types.is_string_dtype(col.dtype):
        codes, uniq = pd.factorize(col, use_na_sentinel=True)
    else:
        codes, uniq = pd.factorize(col.to_numpy(dtype=object, na_value=None), use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniq, dtype=object)


def _numeric_values(col: pd.Series) -> bool:
    """The column's values (or categories) are numbers (not booleans): they sort numerically."""
    dt = col.dtype.categories.dtype if isinstance(col.dtype, pd.CategoricalDtype) else col.dtype
    return dt.kind in "iuf"


def _integer_values(col: pd.Series, uniq: np.ndarray):
    """The unique values as int64 when the column holds integers (their labels are ``str(int(v))``), else None."""
    dt = col.dtype.categories.dtype if isinstance(col.dtype, pd.CategoricalDtype) else col.dtype
    if dt.kind in "iu" and len(uniq):
        return uniq.astype(np.int64)
    return None


def factor_levels(col: pd.Series, name: str, codes_uniques=None) -> tuple[np.ndarray, FactorLevels]:
    """Code a column as a factor: integer codes (``-1`` for missing) and its :class:`FactorLevels`.

    Raises
    ------
    DataError
        Complex values, or values of different types that print alike (``1`` and ``"1"``).
    """
    if _dtype_problem(col) == "complex":
        raise DataError("factor %r is complex-valued; it cannot define levels" % name)
    codes, uniq = codes_uniques if codes_uniques is not None else _uniques(col)
    present = np.zeros(len(uniq), dtype=bool)
    if codes.size:
        present = np.bincount(codes[codes >= 0], minlength=len(uniq)) > 0
    ordered = bool(isinstance(col.dtype, pd.CategoricalDtype) and col.dtype.ordered)
    idx = np.flatnonzero(present)
    ints = _integer_values(col, uniq)
    text = ints is None and all(type(u) is str for u in uniq[idx])  # text only: label and sort key = the text
    if not ordered:
        if ints is not None or _numeric_values(col):  # numbers sort numerically (_sort_key), vectorised
            idx = idx[np.argsort(uniq[idx].astype(float), kind="stable")]
        elif text:
            idx = idx[np.argsort(uniq[idx], kind="stable")]  # object array: Python's str order
        else:
            try:
                idx = np.array(sorted(idx, key=lambda i: _sort_key(uniq[i])), dtype=np.int64)
            except TypeError:  # pragma: no cover - _sort_key is total
                idx = np.array(sorted(idx, key=lambda i: str(uniq[i])), dtype=np.int64)
    if ints is not None:
        labels = list(map(str, ints[idx]))
    elif text:
        labels = uniq[idx].tolist()
    else:
        labels = [level_label(uniq[i]) for i in idx]
    if len(set(labels)) != len(labels):
        seen: dict = {}
        for i, lab in zip(idx, labels):
            if lab in seen:
                raise DataError("column %r mixes values that print alike (%r and %r, both shown as %r), e.g. "
                                "numbers and text from a spreadsheet; make them one type, e.g. "
                                "data[%r].astype(str)" % (name, uniq[seen[lab]], uniq[i], lab, name))
            seen[lab] = i
    remap = np.full(len(uniq) + 1, -1, dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    new = remap[codes]  # codes == -1 index the last entry (-1)
    return new, FactorLevels(tuple(labels), tuple(uniq[i] for i in idx), ordered)


def encode_factor(col, name: str, levels: FactorLevels) -> np.ndarray:
    """Codes of new data against known levels (matched by label); ``-1`` for missing or unseen values."""
    s = col if isinstance(col, pd.Series) else pd.Series(np.asarray(col, dtype=object))
    codes, uniq = _uniques(s)
    lookup = {lab: i for i, lab in enumerate(levels.labels)}
    m = np.array([lookup.get(level_label(u), -1) for u in uniq] + [-1], dtype=np.int64)
    return m[codes]


def interaction(codes: Sequence[np.ndarray], labels: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[str]]:
    """Codes and labels (``"l1:l2"``) of the observed combinations of several factors.

    Combinations are ordered lexicographically by the factors' own level orders
    (first factor slowest), as R's ``interaction(..., lex.order = TRUE, drop = TRUE)``.
    """
    if not codes:
        raise ValueError("interaction needs at least one factor")
    n = len(codes[0])
    mixed = np.zeros(n, dtype=np.int64)
    for c, lv in zip(codes, labels):
        mixed = mixed * len(lv) + c
    uniq, inv = np.unique(mixed, return_inverse=True)
    out = []
    for u in uniq:
        parts = []
        for lv in reversed(labels):
            parts.append(str(lv[u % len(lv)]))
            u //= len(lv)
        out.append(":".join(reversed(parts)))
    return inv.reshape(-1).astype(np.int64), out


# --------------------------------------------------------------------------- variables
@dataclass
class VarSpec:
    """How one model variable is read from data: its source, kind, levels and contrast.

    Attributes
    ----------
    name : str
        The variable's name in terms (a column name, or an expression's canonical text).
    kind : {"factor", "covariate"}
    source : str
        The column name, or the expression.
    is_expression : bool
    columns : tuple of str
        The data columns it uses.
    levels : FactorLevels or None
        For factors.
    contrast : str or tuple or None
        The contrast coding of a factor (``"sum"``, ``("treatment", "b")``); None: the analysis' default.
    state : dict
        Memory of stateful transforms (``center(x)``).
    """

    name: str
    kind: str
    source: str
    is_expression: bool = False
    columns: tuple = ()
    levels: FactorLevels | None = None
    contrast: object = None
    state: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(self.levels.labels) if self.levels is not None else []

    def encode(self, frame: pd.DataFrame, strict: bool = True) -> np.ndarray:
        """Codes (factors) or float values (covariates) of this variable on new data.

        With ``strict``, an unseen level or a missing value raises :class:`DataError`.
        """
        check_columns(frame, self.columns, "column")
        if self.is_expression:
            val = evaluate_expression(self.source, lambda c: frame[c], self.state)
            if isinstance(val, FactorValue):
                col = val.values if isinstance(val.values, pd.Series) else pd.Series(np.asarray(val.values))
                out = encode_factor(col, self.name, self.levels)
            else:
                out = np.asarray(val, dtype=float)
                if self.kind == "factor":
                    out = encode_factor(pd.Series(out), self.name, self.levels)
        elif self.kind == "factor":
            out = encode_factor(frame[self.source], self.name, self.levels)
        else:
            out = numeric_values(frame[self.source], self.source, "covariate")
        if strict:
            if self.kind == "factor" and (out < 0).any():
                bad = frame.loc[out < 0, list(self.columns)].drop_duplicates().head(3).to_dict("records")
                raise DataError("variable %r has value(s) not seen when fitting or missing: %s; known levels: %s"
                                % (self.name, bad, ", ".join(self.labels[:10])))
            if self.kind == "covariate" and not np.all(np.isfinite(out)):
                raise DataError("covariate %r has missing or infinite values in the new data" % self.name)
        return out


@dataclass
class ModelFrame:
    """The analysed rows: cleaned copy of the used columns, the response and every variable coded.

    Attributes
    ----------
    source : DataFrame or callable
        The used raw columns of the kept rows (index reset), or a zero-argument callable that
        builds them; read them as :attr:`frame`.
    response : str or None
    y : ndarray or None
    specs : dict
        Variable name -> :class:`VarSpec`.
    values : dict
        Variable name -> codes (int64, factors) or floats (covariates), one per kept row.
    n_dropped : int
        Rows dropped for missing values.
    dropped_by : dict
        Column (or expression) -> rows with a missing value there.
    row_index : Index
        The caller's index labels of the kept rows.
    weights : ndarray or None
        Rows that stand for several observations (reduced out-of-core data): how many each
        row counts for; None: one observation per row.
    n_rows : int, optional
        The number of kept rows (default: ``len(frame)``).
    """

    source: object
    response: str | None
    y: np.ndarray | None
    specs: dict
    values: dict
    n_dropped: int = 0
    dropped_by: dict = field(default_factory=dict)
    row_index: object = None
    weights: np.ndarray | None = None
    n_rows: int | None = None

    @property
    def frame(self) -> pd.DataFrame:
        """The used raw columns of the kept rows (index reset); built on first use."""
        if not isinstance(self.source, pd.DataFrame):
            self.source = self.source()
        return self.source

    @property
    def n(self) -> int:
        return self.n_rows if self.n_rows is not None else len(self.frame)

    def codes(self, name: str) -> np.ndarray:
        return self.values[name]

    def group(self, term: Term) -> tuple[np.ndarray, list[str]]:
        """Codes and labels of a grouping term (one factor or an interaction of factors)."""
        vs = list(term.variables)
        for v in vs:
            if self.specs[v].kind != "factor":  # pragma: no cover - model_frame makes groups factors
                raise DataError("grouping variable %r is not a factor" % v)
        if len(vs) == 1:
            return self.values[vs[0]], self.specs[vs[0]].labels
        return interaction([self.values[v] for v in vs], [self.specs[v].labels for v in vs])


def _is_expression(name: str, frame: pd.DataFrame) -> bool:
    return name not in frame.columns and "(" in name and name.endswith(")")


def model_frame(formula: ModelFormula, data, *, factors: Iterable[str] = (), covariates: Iterable[str] = (),
                groups: Iterable[str] = (), context: str = "", unknown: type = FormulaError,
                contrasts: Mapping[str, object] | None = None, warn_dropped: bool = True) -> ModelFrame:
    """Resolve, validate and code the variables of ``formula`` on ``data``.

    Parameters
    ----------
    formula : ModelFormula
    data : DataFrame
        Never modified.
    factors, covariates : iterable of str
        Variables forced to be factors / covariates (a Design's roles, ``lmm(factors=...)``).
    groups : iterable of str
        Grouping variables (always factors); by default those of the formula's random terms.
    context : str
        For the dropped-rows message ("for the ANOVA").
    unknown : exception class
        Raised for an unknown column.
    contrasts : mapping, optional
        Variable -> contrast coding (``"sum"``, ...), overriding the default.

    Returns
    -------
    ModelFrame
    """
    frame = as_frame(data)
    factors, covariates = set(map(str, factors)), set(map(str, covariates))
    groups = set(map(str, groups)) | {v for r in formula.random for v in r.group.variables}
    both = sorted(factors & covariates)
    if both:
        raise DataError("variable(s) %s are listed both as factors and as covariates" % ", ".join(map(repr, both)))
    names = formula.variables()
    # which columns each variable uses
    specs: dict[str, VarSpec] = {}
    for v in names:
        if v in frame.columns:
            specs[v] = VarSpec(v, "", v, False, (v,))
        elif "(" in v:
            cols = expression_columns(v, lambda c: c in frame.columns)
            specs[v] = VarSpec(v, "", v, True, tuple(cols))
        else:
            check_columns(frame, [v], "response column" if v == formula.response else "column", unknown)
    for g in groups:
        if g in specs and specs[g].is_expression:
            raise FormulaError("grouping factor %r must be a column, not an expression" % g)
    used = list(dict.fromkeys(c for s in specs.values() for c in s.columns))
    sub = {c: frame[c] for c in used}
    if not _COPY_ON_WRITE:  # the caller's later in-place edits must not reach the model's rows
        sub = {c: col.copy() for c, col in sub.items()}
    # missing values: drop rows (counted per column)
    miss = np.zeros(len(frame), dtype=bool)
    dropped_by: dict = {}
    for c in used:
        m = _missing(sub[c])
        if m is not None and m.any():
            dropped_by[c] = int(m.sum())
            miss |= m
    pos1 = np.flatnonzero(~miss)
    # evaluate expressions on the complete rows; NaN results are dropped too (as R's model.frame)
    evaluated: dict = {}
    part = sub if len(pos1) == len(frame) else {c: col.iloc[pos1] for c, col in sub.items()}
    for v, s in specs.items():
        if not s.is_expression:
            continue
        try:
            val = evaluate_expression(v, lambda c: part[c], s.state)
        except FormulaError:
            raise
        except (TypeError, ValueError) as exc:
            raise FormulaError("cannot evaluate %r on the data: %s" % (v, exc)) from None
        if not isinstance(val, FactorValue):
            val = np.broadcast_to(np.asarray(val, dtype=float), (len(pos1),)).copy()
            nan = np.isnan(val)
            if nan.any():
                dropped_by[v] = int(nan.sum())
                miss[pos1[nan]] = True
        evaluated[v] = val
    keep = ~miss
    n_drop = int(miss.sum())
    if n_drop and warn_dropped:
        warn("%d row(s) with missing values dropped%s (%s); %d rows remain."
             % (n_drop, (" " + context) if context else "",
                ", ".join("%s: %d" % kv for kv in dropped_by.items()), int(keep.sum())), DroppedRowsWarning)
    if not keep.any():
        raise DataError("no complete rows left: every row has a missing value in %s" % ", ".join(map(repr, used)))
    kept_pos = np.flatnonzero(keep)
    sel = keep[pos1]  # kept rows among those the expressions saw
    if n_drop:
        clean_cols = {c: col.iloc[kept_pos].reset_index(drop=True) for c, col in sub.items()}
        row_index = frame.index[kept_pos]
    else:
        clean_cols, row_index = sub, frame.index
    if _COPY_ON_WRITE:
        clean = _KeptRows(frame, used, kept_pos if n_drop else None)
    else:
        clean = pd.DataFrame({c: col.reset_index(drop=True) for c, col in clean_cols.items()})
    values: dict = {}
    y = None
    contrasts = dict(contrasts or {})
    for v, s in specs.items():
        if v in evaluated:
            val = evaluated[v]
            if isinstance(val, FactorValue):
                raw = val.values
                raw = raw.iloc[np.flatnonzero(sel)] if isinstance(raw, pd.Series) else np.asarray(raw)[sel]
                col = raw.reset_index(drop=True) if isinstance(raw, pd.Series) else pd.Series(raw)
                codes, lev = factor_levels(col, v)
                s.kind, s.levels = "factor", _with_levels(lev, val.levels, v)
                if val.levels is not None:
                    codes = encode_factor(col, v, s.levels)
                s.contrast = val.contrast
                values[v] = codes
                continue
            vals = val[sel]
            if v == formula.response:
                _check_finite(vals, v, "response", row_index)
                y = vals
            elif v in factors or v in groups:
                codes, lev = factor_levels(pd.Series(vals), v)
                s.kind, s.levels, values[v] = "factor", lev, codes
            else:
                _check_finite(vals, v, "covariate", row_index)
                s.kind, values[v] = "covariate", vals
            continue
        col = clean_cols[s.source]
        if v == formula.response:
            yv = numeric_values(col, v, "response")
            _check_finite(yv, v, "response", row_index)
            y = yv
            continue
        prob = _dtype_problem(col)
        as_factor = v in factors or v in groups or (v not in covariates and not _is_numeric(col))
        if v in covariates and not (_is_numeric(col) or pd.api.types.is_bool_dtype(col.dtype)):
            raise DataError("covariate %r is not numeric (dtype %s); make it numeric or use it as a factor"
                            % (v, col.dtype))
        if as_factor:
            if prob == "date/time" and v not in factors and v not in groups:
                raise DataError("column %r holds dates or times; make it a factor with C(%s) (or list it in "
                                "factors=) or convert it to a number" % (v, v))
            codes, lev = factor_levels(col, v)
            _warn_unused(col, lev, v)
            s.kind, s.levels, values[v] = "factor", lev, codes
        else:
            vals = col.to_numpy(dtype=float, na_value=np.nan)
            _check_finite(vals, v, "covariate", row_index)
            s.kind, values[v] = "covariate", vals
    for v, c in contrasts.items():
        if v not in specs or specs[v].kind != "factor":
            cand = [k for k, s in specs.items() if s.kind == "factor" and k != formula.response]
            raise FormulaError("contrasts= names %r, which is not a factor of the model; factors: %s"
                               % (v, ", ".join(map(repr, cand)) or "none"))
        specs[v].contrast = c
    if formula.response is not None:
        specs.pop(formula.response, None)
        values.pop(formula.response, None)
    return ModelFrame(clean, formula.response, y, specs, values, n_drop, dropped_by, row_index, n_rows=len(kept_pos))


def _copy_on_write() -> bool:
    """pandas copies a column on write (pandas >= 3, or the option set): references to the caller's
    columns then never see the caller's later edits."""
    if int(pd.__version__.split(".")[0]) >= 3:
        return True
    try:
        return pd.get_option("mode.copy_on_write") is True
    except Exception:  # pragma: no cover - pandas < 2 has no such option
        return False


#: whether :func:`model_frame` may keep references to the caller's columns (else it copies them)
_COPY_ON_WRITE = _copy_on_write()


def _missing(col: pd.Series) -> np.ndarray | None:
    """Missing-value mask of a column (None: a numpy integer or boolean column, which cannot hold one)."""
    dt = col.dtype
    if isinstance(dt, np.dtype):
        if dt.kind in "iub":
            return None
        if dt.kind == "f":
            return np.isnan(col.to_numpy())
    return np.asarray(col.array.isna(), dtype=bool)   # the array's own mask (Series.isna costs 15 us more)


class _KeptRows:
    """The used raw columns of the kept rows (index reset), built when first asked for (:attr:`ModelFrame.frame`)."""

    def __init__(self, frame: pd.DataFrame, used: list, kept_pos: np.ndarray | None) -> None:
        self.frame, self.used, self.kept_pos = frame, used, kept_pos

    def __call__(self) -> pd.DataFrame:
        sub = self.frame[self.used]
        if self.kept_pos is not None:
            sub = sub.iloc[self.kept_pos]
        return sub.reset_index(drop=True)


def _with_levels(lev: FactorLevels, given, name: str) -> FactorLevels:
    if given is None:
        return lev
    labels = tuple(level_label(v) for v in given)
    extra = set(lev.labels) - set(labels)
    if extra:
        raise DataError("C(%s, levels=...) does not list the level(s) %s found in the data"
                        % (name, ", ".join(sorted(map(repr, extra)))))
    return FactorLevels(labels, tuple(given), True)


def _warn_unused(col: pd.Series, lev: FactorLevels, name: str) -> None:
    if isinstance(col.dtype, pd.CategoricalDtype):
        labels = set(lev.labels)
        unused = [str(c) for c in col.dtype.categories.tolist() if level_label(c) not in labels]
        if unused:
            warn("factor %r has %d unused level(s) (%s) in the rows analysed; they were dropped."
                 % (name, len(unused), ", ".join(unused[:5]) + (", ..." if len(unused) > 5 else "")),
                 UnusedLevelsWarning)


def _check_finite(vals: np.ndarray, name: str, role: str, index) -> None:
    bad = ~np.isfinite(vals)
    if bad.any():
        first = index[int(np.argmax(bad))] if index is not None else int(np.argmax(bad))
        raise DataError("%s %r has %d infinite value(s) (first at row %r); remove or correct them (missing "
                        "values may be NaN: those rows are dropped)" % (role, name, int(bad.sum()), first))


# --------------------------------------------------------------------------- columns
@dataclass(frozen=True)
class _TermPlan:
    term: Term
    parts: tuple   # per variable: ("factor", basis matrix, suffixes) or ("covariate",)
    names: tuple


class FixedCoding:
    """Model-matrix columns of a list of terms, by R's ``model.matrix`` rule.

    A factor ``f`` of term ``T`` is coded by contrasts when ``T`` without ``f`` is empty or a
    preceding term, by indicators otherwise; without an intercept the first factor of the
    first term holding a factor is coded by indicators.  Covariates multiply.  Columns
    of an interaction vary fastest in its first variable.  Names follow patsy
    (``"variety[T.Marvellous]"``, ``"x"``, ``"a[S.a1]:b[S.b1]"``, ``"Intercept"``).

    Parameters
    ----------
    terms : sequence of Term
        In model order.
    intercept : bool
    specs : mapping
        Variable name -> :class:`VarSpec` (kind, levels, contrast).
    default_contrast : str
        Coding of factors whose spec has no contrast (``"treatment"``, ``"sum"``, ...).
    """

    def __init__(self, terms: Sequence[Term], intercept: bool, specs: Mapping[str, VarSpec],
                 default_contrast: str = "treatment") -> None:
        self.terms = [t if isinstance(t, Term) else Term(tuple(split_term(t))) for t in terms]
        self.intercept = bool(intercept)
        self.specs = dict(specs)
        self.default_contrast = default_contrast
        flags = self._flags()
        plans, names, assign = [], ["Intercept"] if intercept else [], [-1] if intercept else []
        for k, (t, fl) in enumerate(zip(self.terms, flags)):
            parts = []
            tnames = [""]
            for v, f in zip(t.variables, fl):
                s = self.specs[v]
                if s.kind == "factor":
                    kind, ref = self._contrast(s)
                    M, suf = contrast_matrix(kind if f else "indicator", s.labels, ref)
                    parts.append(("factor", M, tuple(suf)))
                    vn = [v + x for x in suf]
                else:
                    parts.append(("covariate",))
                    vn = [v]
                tnames = [(a + ":" + b) if a else b for b in vn for a in tnames]
            plans.append(_TermPlan(t, tuple(parts), tuple(tnames)))
            names += tnames
            assign += [k] * len(tnames)
        self._plans = plans
        self._all_names = names
        self._all_assign = np.asarray(assign, dtype=np.int64)
        self.keep = np.arange(len(names))

    def _contrast(self, s: VarSpec) -> tuple[str, str | None]:
        c = s.contrast if s.contrast is not None else self.default_contrast
        if isinstance(c, tuple):
            return contrast_kind(c[0]), c[1]
        return contrast_kind(c), None

    def _flags(self) -> list[list[bool]]:
        seen = [frozenset()]
        out = []
        for t in self.terms:
            fl = []
            for v in t.variables:
                rest = t.key - {v}
                fl.append(self.specs[v].kind == "factor" and (not rest or rest in seen))
            seen.append(t.key)
            out.append(fl)
        if not self.intercept:
            for t, fl in zip(self.terms, out):
                fac = [i for i, v in enumerate(t.variables) if self.specs[v].kind == "factor"]
                if fac:
                    fl[fac[0]] = False
                    break
        return out

    # -- views
    @property
    def colnames(self) -> list[str]:
        c = self.__dict__.get("_colnames")
        if c is None or c[0] is not self.keep:   # keyed on the kept-columns array (restrict() replaces it)
            c = self._colnames = (self.keep, [self._all_names[j] for j in self.keep])
        return list(c[1])

    @property
    def assign(self) -> np.ndarray:
        """Term index of each kept column (``-1`` for the intercept)."""
        return self._all_assign[self.keep]

    @property
    def term_names(self) -> list[str]:
        return [t.name for t in self.terms]

    @property
    def p(self) -> int:
        return len(self.keep)

    @property
    def dropped(self) -> list[str]:
        """Columns dropped as aliased (see :meth:`subset`)."""
        kept = set(self.keep.tolist())
        return [nm for j, nm in enumerate(self._all_names) if j not in kept]

    def subset(self, keep: Sequence[int]) -> "FixedCoding":
        """The same coding restricted to kept columns ``keep`` (indices into :attr:`colnames`)."""
        new = object.__new__(FixedCoding)
        new.__dict__.update(self.__dict__)
        new.keep = self.keep[np.asarray(list(keep), dtype=np.int64)]
        return new

    def with_contrasts(self, default: str, contrasts: Mapping[str, object] | None = None) -> "FixedCoding":
        """The same terms under another coding (all columns; for type III and means)."""
        specs = dict(self.specs)
        for v, c in (contrasts or {}).items():
            s = specs[v]
            specs[v] = VarSpec(s.name, s.kind, s.source, s.is_expression, s.columns, s.levels, c, s.state)
        if contrasts is None:
            specs = {k: VarSpec(s.name, s.kind, s.source, s.is_expression, s.columns, s.levels, None, s.state)
                     for k, s in specs.items()}
        return FixedCoding(self.terms, self.intercept, specs, default)

    # -- building
    def build(self, values: Mapping[str, np.ndarray], n: int | None = None) -> np.ndarray:
        """The model matrix (kept columns) for coded values: ``values[v]`` codes or floats, one per row."""
        if n is None:
            n = values["__n__"] if "__n__" in values else (len(next(iter(values.values()))) if values else 0)
        blocks = [np.ones((n, 1))] if self.intercept else []
        for plan in self._plans:
            cols = None
            for v, part in zip(plan.term.variables, plan.parts):
                if part[0] == "factor":
                    codes = np.asarray(values[v], dtype=np.int64)
                    block = part[1][codes]
                    if (codes < 0).any():
                        block[codes < 0] = 0.0
                else:
                    block = np.asarray(values[v], dtype=float)[:, None]
                cols = block if cols is None else (block[:, :, None] * cols[:, None, :]).reshape(n, -1)
            blocks.append(np.ones((n, 1)) if cols is None else cols)
        # column-major: every later step (centring, per-level sums) works column by column
        X = np.empty((n, sum(b.shape[1] for b in blocks)), order="F")
        j = 0
        for b in blocks:
            X[:, j:j + b.shape[1]] = b
            j += b.shape[1]
        return np.asfortranarray(X[:, self.keep]) if len(self.keep) != X.shape[1] else X

    def build_frame(self, frame: pd.DataFrame, strict: bool = True) -> np.ndarray:
        """The model matrix on new data (variables evaluated with the fitted levels and transforms)."""
        frame = as_frame(frame, "new data")
        vals = {v: s.encode(frame, strict) for v, s in self.specs.items() if any(v in t.variables for t in self.terms)}
        return self.build(vals, len(frame))

    def variables(self) -> list[str]:
        return list(dict.fromkeys(v for t in self.terms for v in t.variables))

    def continuous(self) -> list[str]:
        """The covariates among the terms' variables."""
        return [v for v in self.variables() if self.specs[v].kind == "covariate"]

    def spanning_values(self, values: Mapping[str, np.ndarray]) -> dict:
        """Coded values of a few rows that determine any linear map between codings of these terms.

        Each observed combination of the factors (from ``values``), times each covariate pattern of
        the terms (the covariates of one term at 1, the others at 0).  Every column is a product of
        a factor part and covariates of degree one, so two codings that agree on these rows agree
        on all rows with the same factor combinations.
        """
        fac = [v for v in self.variables() if self.specs[v].kind == "factor"]
        cov = self.continuous()
        if fac:
            combos = np.unique(np.column_stack([np.asarray(values[v], dtype=np.int64) for v in fac]), axis=0)
        else:
            combos = np.zeros((1, 0), dtype=np.int64)
        pats = list(dict.fromkeys([frozenset()] + [frozenset(v for v in t.variables if v in cov) for t in self.terms]))
        m = len(combos) * len(pats)
        out = {v: np.repeat(combos[:, i], len(pats)) for i, v in enumerate(fac)}
        for v in cov:
            out[v] = np.tile(np.array([1.0 if v in pt else 0.0 for pt in pats]), len(combos))
        out["__n__"] = m
        return out
