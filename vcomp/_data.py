"""Data validation and factor coding shared by the classical and mixed paths.

Nothing here mutates the caller's DataFrame: every function works on copies.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ._errors import DataError, DroppedRowsWarning, warn

__all__ = [
    "as_frame",
    "check_columns",
    "drop_missing",
    "factor_codes",
    "interaction_codes",
    "numeric_response",
    "split_term",
    "join_term",
    "term_key",
]


def split_term(term: str) -> list[str]:
    """Factor names of a term written ``"a:b"``."""
    return [p.strip() for p in str(term).split(":") if p.strip()]


def join_term(factors: Iterable[str]) -> str:
    """Inverse of :func:`split_term`."""
    return ":".join(factors)


def term_key(term: str) -> frozenset:
    """Order-free identity of a term (``"a:b"`` == ``"b:a"``)."""
    return frozenset(split_term(term))


def as_frame(data) -> pd.DataFrame:
    """Return ``data`` as a DataFrame (a shallow copy; the caller's frame is never modified)."""
    if isinstance(data, pd.DataFrame):
        return data.copy(deep=False)
    try:
        return pd.DataFrame(data)
    except Exception as exc:  # pragma: no cover - defensive
        raise DataError("data must be a pandas DataFrame (or convertible to one): %s" % exc) from exc


def check_columns(data: pd.DataFrame, columns: Iterable[str], what: str = "column") -> None:
    """Raise :class:`DataError` naming every column of ``columns`` absent from ``data``."""
    missing = [c for c in dict.fromkeys(columns) if c not in data.columns]
    if missing:
        avail = ", ".join(map(str, list(data.columns)[:20]))
        raise DataError(
            "%s %s not found in the data; available columns: %s. "
            "Check the spelling or add the column."
            % (what, ", ".join(repr(m) for m in missing), avail)
        )


def numeric_response(data: pd.DataFrame, response: str) -> np.ndarray:
    """The response as float64, with a clear error if it is not numeric or not finite."""
    check_columns(data, [response], "response column")
    col = data[response]
    if isinstance(col.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    ):
        raise DataError(
            "response %r is not numeric (dtype %s); convert it with "
            "pd.to_numeric(data[%r]) or choose a numeric column." % (response, col.dtype, response)
        )
    y = col.to_numpy(dtype=float, na_value=np.nan)
    bad = np.isinf(y)
    if bad.any():
        raise DataError(
            "response %r has %d infinite value(s) (first at row %r); remove or correct them."
            % (response, int(bad.sum()), data.index[np.argmax(bad)])
        )
    return y


def drop_missing(data: pd.DataFrame, columns: Sequence[str], context: str = "") -> tuple[pd.DataFrame, int]:
    """Drop rows with a missing value in any of ``columns``; warn with the count.

    Returns the reduced copy and the number of dropped rows.
    """
    columns = list(dict.fromkeys(columns))
    check_columns(data, columns)
    sub = data.loc[:, columns]
    miss = sub.isna().any(axis=1).to_numpy()
    n = int(miss.sum())
    if n:
        per = {c: int(sub[c].isna().sum()) for c in columns if sub[c].isna().any()}
        warn("%d row(s) with missing values dropped%s (%s); %d rows remain."
             % (n, (" " + context) if context else "",
                ", ".join("%s: %d" % kv for kv in per.items()), len(sub) - n),
             DroppedRowsWarning)
        data = data.loc[~miss]
    if len(data) == 0:
        raise DataError("no complete rows left in columns %s." % ", ".join(map(repr, columns)))
    return data, n


def _levels(col: pd.Series) -> list:
    """Sorted unique values, or the categories of an ordered categorical."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.dropna().unique())
        cats = list(col.cat.categories)
        if col.cat.ordered:
            return [c for c in cats if c in present]
        try:
            return sorted(present)
        except TypeError:
            return sorted(present, key=str)
    vals = pd.unique(col.dropna())
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def factor_codes(col: pd.Series, name: str | None = None, min_levels: int = 1) -> tuple[np.ndarray, list]:
    """Integer codes (0..k-1) and levels of a factor column.

    Levels are the sorted unique values (numbers sort numerically, strings
    lexicographically), or the category order of an ordered categorical.
    Raises :class:`DataError` if the factor has fewer than ``min_levels`` levels.
    """
    levels = _levels(col)
    if len(levels) < min_levels:
        raise DataError(
            "factor %r has %d level(s) (%s); it needs at least %d. Drop it from the design "
            "or check that the data are complete."
            % (name or col.name, len(levels), ", ".join(map(str, levels[:5])), min_levels)
        )
    codes = pd.Categorical(col.to_numpy(), categories=levels).codes.astype(np.int64)
    if len(codes) and codes.min() < 0:
        raise DataError("factor %r has missing values; drop or fill them first." % (name or col.name))
    return codes, levels


def interaction_codes(data: pd.DataFrame, factors: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Codes of the combinations of ``factors`` present in the data (R's ``interaction(drop=TRUE)``).

    Levels are labelled ``"l1:l2"`` and ordered lexicographically by the
    factors' own level orders (first factor slowest).
    """
    check_columns(data, factors, "factor")
    if len(factors) == 0:
        return np.zeros(len(data), dtype=np.int64), ["(all)"]
    codes_list, levels_list = [], []
    for f in factors:
        c, lv = factor_codes(data[f], f)
        codes_list.append(c)
        levels_list.append(lv)
    mixed = np.zeros(len(data), dtype=np.int64)
    for c, lv in zip(codes_list, levels_list):
        mixed = mixed * len(lv) + c
    uniq, inv = np.unique(mixed, return_inverse=True)
    labels = []
    for u in uniq:
        parts = []
        for lv in reversed(levels_list):
            parts.append(str(lv[u % len(lv)]))
            u //= len(lv)
        labels.append(":".join(reversed(parts)))
    return inv.astype(np.int64), labels
