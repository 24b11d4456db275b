"""The formula backend: safe evaluation of expression variables and contrast matrices.

This is the only module of vcomp that imports patsy (for its contrast matrices, which equal
R's ``contr.*``), so the backend can change in one place.  The grammar lives in
:mod:`vcomp.terms`; the coding of data into columns in :mod:`vcomp._coding`.

Expressions (``log(x)``, ``I(x^2)``, ``center(x)``, ``np.sqrt(x)``, ``C(trt, Sum)``) are
*evaluated by walking their syntax tree*, never by ``eval``: only arithmetic, numbers,
column names and a whitelist of numpy functions are allowed, every number is a float
(so ``I(10**10**10)`` overflows to infinity at once instead of running forever), and
the nesting depth is bounded by Python's parser.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
# patsy's contrasts (the only patsy use, behind this module) are imported with vcomp: ~10 ms next to
# scipy's and pandas' ~0.6 s, and no longer inside the first analysis
from patsy.contrasts import Helmert, Poly, Sum, Treatment

from ._errors import FormulaError
from .terms import python_source

__all__ = ["FactorValue", "evaluate_expression", "contrast_matrix", "CONTRASTS", "contrast_kind",
           "expression_columns", "ResidualSpec", "parse_residual", "RESIDUAL_KINDS"]

_MATH = {
    "log": np.log, "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "exp": np.exp,
    "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "square": np.square,
    "floor": np.floor, "ceil": np.ceil, "round": np.round, "sign": np.sign, "exp2": np.exp2,
    "cbrt": np.cbrt, "reciprocal": np.reciprocal, "power": np.power,
}
_STATEFUL = {"center", "scale", "standardize"}
_CONST = {"pi": np.pi, "e": np.e}

#: contrast codings, R name -> kind
CONTRASTS = ("treatment", "sum", "helmert", "poly", "sas")
_ALIASES = {"treatment": "treatment", "contr.treatment": "treatment", "t": "treatment",
            "sum": "sum", "contr.sum": "sum", "deviation": "sum", "effect": "sum",
            "helmert": "helmert", "contr.helmert": "helmert",
            "poly": "poly", "contr.poly": "poly", "polynomial": "poly",
            "sas": "sas", "contr.sas": "sas"}


def contrast_kind(name, what: str = "contrast") -> str:
    """Normalise a contrast name (``"sum"``, ``"contr.sum"``, ``"Sum"``) or raise naming the accepted ones."""
    key = str(name).strip().lower() if isinstance(name, str) else None
    if key not in _ALIASES:
        raise FormulaError("unknown %s %r; accepted: %s" % (what, name, ", ".join(CONTRASTS)))
    return _ALIASES[key]


def contrast_matrix(kind: str, labels: list, reference: str | None = None) -> tuple[np.ndarray, list]:
    """Contrast matrix (levels x (levels - 1)) and column suffixes, as R's ``contr.*`` and patsy's names.

    Parameters
    ----------
    kind : {"treatment", "sum", "helmert", "poly", "sas", "indicator"}
        ``"indicator"``: one column per level (no contrast), suffixes ``[level]``.
    labels : list of str
        Level labels in order.
    reference : str, optional
        Reference level of treatment coding (default the first; ``"sas"`` uses the last).
    """
    M, suffixes = _contrast_matrix(kind, tuple(str(v) for v in labels), reference)
    return M.copy(), list(suffixes)


@functools.lru_cache(maxsize=512)
def _contrast_matrix(kind: str, labels: tuple, reference: str | None) -> tuple[np.ndarray, tuple]:
    """:func:`contrast_matrix`, memoized (a model's factors recur in every fit of a loop)."""
    labels = list(labels)
    k = len(labels)
    if kind == "indicator":
        return np.eye(k), tuple("[%s]" % v for v in labels)
    if kind in ("treatment", "sas"):
        ref = reference if reference is not None else (labels[-1] if kind == "sas" else labels[0])
        cm = Treatment(reference=labels.index(ref)).code_without_intercept(labels)
    elif kind == "sum":
        cm = Sum().code_without_intercept(labels)
    elif kind == "helmert":
        cm = Helmert().code_without_intercept(labels)
    elif kind == "poly":
        cm = Poly().code_without_intercept(list(range(k)))
    else:  # pragma: no cover - contrast_kind guards it
        raise FormulaError("unknown contrast %r" % kind)
    return np.asarray(cm.matrix, dtype=float), tuple(cm.column_suffixes)


@dataclass(frozen=True)
class FactorValue:
    """The value of ``C(expr, contrast, levels=...)``: values to be read as a factor."""

    values: object
    contrast: object = None
    levels: tuple | None = None


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _parse(code: str) -> ast.Expression:
    try:
        return ast.parse(python_source(code), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise FormulaError("cannot read the expression %r (too deeply nested, or not an expression)" % code) from None


def expression_columns(code: str, has_column: Callable[[str], bool]) -> list[str]:
    """The data columns an expression variable uses (validates the expression).

    Raises
    ------
    FormulaError
        For an unknown name (with the available ones) or a construct that is not allowed.
    """
    cols: list[str] = []
    _walk(_parse(code).body, code, has_column, cols, top=True)
    return list(dict.fromkeys(cols))


def _walk(node, code, has_column, cols, top=False) -> None:
    """Validation pass (iterative over siblings, recursive in depth; depth is bounded by the parser)."""
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
            raise FormulaError("expression %r: only numbers are allowed as constants (got %r)" % (code, node.value))
        return
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted(node)
        if name is None:
            raise FormulaError("expression %r: attribute access is not allowed" % code)
        if has_column(name):
            cols.append(name)
            return
        if name in _CONST or name in ("np.pi", "np.e", "numpy.pi", "numpy.e"):
            return
        raise FormulaError("expression %r uses %r, which is not a column of the data (quote odd column names "
                           "as Q(\"name\"))" % (code, name))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        _walk(node.operand, code, has_column, cols)
        return
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow,
                                                           ast.FloorDiv, ast.Mod)):
        _walk(node.left, code, has_column, cols)
        _walk(node.right, code, has_column, cols)
        return
    if isinstance(node, ast.Call):
        fname = _dotted(node.func)
        if fname == "Q":
            if len(node.args) != 1 or node.keywords or not isinstance(node.args[0], ast.Constant) \
                    or not isinstance(node.args[0].value, str):
                raise FormulaError("expression %r: Q() takes one quoted column name" % code)
            name = node.args[0].value
            if not has_column(name):
                raise FormulaError("expression %r: Q(%r) names no column of the data" % (code, name))
            cols.append(name)
            return
        if fname == "C":
            if not top:
                raise FormulaError("expression %r: C() makes a factor; it cannot be part of arithmetic" % code)
            if not node.args or len(node.args) > 2:
                raise FormulaError("expression %r: write C(column) or C(column, Sum)" % code)
            for kw in node.keywords:
                if kw.arg != "levels":
                    raise FormulaError("expression %r: C() accepts only levels=[...]" % code)
            _walk(node.args[0], code, has_column, cols)
            if len(node.args) == 2:
                _contrast_of(node.args[1], code)
            return
        if fname in ("I",) or fname in _MATH or fname in _STATEFUL or (
                fname and fname.split(".", 1)[0] in ("np", "numpy") and fname.split(".", 1)[-1] in _MATH):
            if node.keywords or len(node.args) != (2 if fname.endswith("power") else 1):
                raise FormulaError("expression %r: %s() takes %s argument(s) and no keywords"
                                   % (code, fname, 2 if fname.endswith("power") else 1))
            for a in node.args:
                _walk(a, code, has_column, cols)
            return
        raise FormulaError("expression %r: function %r is not allowed (allowed: I, C, Q, center, scale, standardize, "
                           "%s, and np.<same>)" % (code, fname, ", ".join(sorted(_MATH))))
    raise FormulaError("expression %r: %s is not allowed in a formula" % (code, type(node).__name__))


def _contrast_of(node, code):
    """Contrast named by the second argument of C(): Sum, "sum", contr.sum, Treatment("b")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return contrast_kind(node.value)
    if isinstance(node, ast.Call):
        name = _dotted(node.func)
        kind = contrast_kind(name or "?")
        ref = None
        args = list(node.args) + [k.value for k in node.keywords if k.arg == "reference"]
        if args:
            if kind != "treatment" or not isinstance(args[0], ast.Constant):
                raise FormulaError("expression %r: only Treatment(reference=...) takes an argument" % code)
            ref = str(args[0].value)
        return (kind, ref) if ref is not None else kind
    name = _dotted(node)
    if name is None:
        raise FormulaError("expression %r: the second argument of C() names a contrast (Sum, Treatment, ...)" % code)
    return contrast_kind(name)


def evaluate_expression(code: str, column: Callable[[str], np.ndarray], state: dict | None = None):
    """Evaluate an expression variable on data.

    Parameters
    ----------
    code : str
        Canonical expression text (see :func:`vcomp.terms.canonical_call`).
    column : callable
        ``column(name)`` returns a column of the data (a numpy array or pandas Series).
    state : dict, optional
        Memory of stateful transforms (``center``, ``scale``, ``standardize``): filled when empty
        (fitting data), reused otherwise (new data).

    Returns
    -------
    ndarray of float, or FactorValue
    """
    state = {} if state is None else state
    body = _parse(code).body
    if isinstance(body, ast.Call) and _dotted(body.func) == "C":
        contrast = _contrast_of(body.args[1], code) if len(body.args) == 2 else None
        levels = None
        for kw in body.keywords:
            try:
                levels = tuple(ast.literal_eval(kw.value))
            except (ValueError, SyntaxError, TypeError):
                raise FormulaError("expression %r: levels= must be a list of constants" % code) from None
        inner = body.args[0]
        if isinstance(inner, (ast.Name, ast.Attribute)) and _dotted(inner) is not None:
            vals = column(_dotted(inner))
        elif isinstance(inner, ast.Call) and _dotted(inner.func) == "Q":
            vals = column(inner.args[0].value)
        else:
            vals = _eval(inner, code, column, state)
        return FactorValue(vals, contrast, levels)
    with np.errstate(all="ignore"):
        out = _eval(body, code, column, state)
    out = np.asarray(out, dtype=float) if np.ndim(out) else np.asarray(out, dtype=float)
    return out


def _num(x):
    a = np.asarray(x)
    if a.dtype.kind == "c":
        raise FormulaError("complex values in an expression")
    if a.dtype.kind not in "fiub":
        raise FormulaError("non-numeric values in arithmetic (dtype %s)" % a.dtype)
    return a.astype(float)


def _eval(node, code, column, state):
    if isinstance(node, ast.Constant):
        return np.float64(node.value)
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted(node)
        if name in _CONST:
            return np.float64(_CONST[name])
        if name in ("np.pi", "numpy.pi"):
            return np.float64(np.pi)
        if name in ("np.e", "numpy.e"):
            return np.float64(np.e)
        return _num(column(name))
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, code, column, state)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a = _eval(node.left, code, column, state)
        b = _eval(node.right, code, column, state)
        op = node.op
        if isinstance(op, ast.Add):
            return a + b
        if isinstance(op, ast.Sub):
            return a - b
        if isinstance(op, ast.Mult):
            return a * b
        if isinstance(op, ast.Div):
            return a / b
        if isinstance(op, ast.Pow):
            return np.power(a, b)
        if isinstance(op, ast.FloorDiv):
            return np.floor_divide(a, b)
        return np.mod(a, b)
    if isinstance(node, ast.Call):
        fname = _dotted(node.func)
        if fname == "Q":
            return _num(column(node.args[0].value))
        args = [_eval(a, code, column, state) for a in node.args]
        if fname == "I":
            return args[0]
        if fname in _STATEFUL:
            return _stateful(fname, args[0], ast.dump(node), state)
        f = _MATH[fname.split(".", 1)[-1]]
        return f(*args)
    raise FormulaError("expression %r cannot be evaluated" % code)  # pragma: no cover - validated first


def _stateful(fname: str, x: np.ndarray, key: str, state: dict) -> np.ndarray:
    """``center``: x - mean; ``scale``/``standardize``: (x - mean) / sd (ddof 1, as R's scale())."""
    x = np.asarray(x, dtype=float)
    if key not in state:
        ok = np.isfinite(x)
        m = float(np.mean(x[ok])) if ok.any() else 0.0
        s = float(np.std(x[ok], ddof=1)) if ok.sum() > 1 else 1.0
        state[key] = (m, s if s > 0 else 1.0)
    m, s = state[key]
    return x - m if fname == "center" else (x - m) / s


# --------------------------------------------------------------------------- residual= structures
#: residual structures of ``lmm(..., residual=...)`` that take ``(time | subject)``
RESIDUAL_TIME_KINDS = ("ar1", "cs", "us", "toep", "ar1h", "csh")
RESIDUAL_KINDS = RESIDUAL_TIME_KINDS + ("diag", "ar1ar1")


@dataclass(frozen=True)
class ResidualSpec:
    """A parsed ``residual=`` string of :func:`vcomp.lmm`.

    Attributes
    ----------
    kind : str
        One of :data:`RESIDUAL_KINDS` (``"ar1ar1"`` for ``ar1(row):ar1(col)``).
    time : str or None
        The column whose sorted levels are the positions within a subject.
    subject : str or None
        The subject (factor names joined by ``":"``); one residual block per level.
    group : str or None
        ``us(time | group / subject)``: one matrix per level; ``diag(1 | group)``: one variance per level.
    row, col : str or None
        The grid coordinates of ``ar1(row):ar1(col)``.
    trial : str or None
        ``ar1(row):ar1(col) | trial``: one grid per level of ``trial``.
    text : str
        The string as given.
    """

    kind: str
    time: str | None = None
    subject: str | None = None
    group: str | None = None
    row: str | None = None
    col: str | None = None
    trial: str | None = None
    text: str = ""

    @property
    def columns(self) -> list[str]:
        """Data columns the structure uses."""
        out = []
        for v in (self.time, self.group, self.subject, self.row, self.col, self.trial):
            if v:
                out += [f for f in v.split(":") if f not in out]
        return out


_RES_HELP = ("residual= must be one of 'ar1(time | subject)', 'cs(...)', 'us(...)', 'toep(...)', "
             "'ar1h(...)', 'csh(...)', 'us(time | group / subject)', 'diag(1 | group)', "
             "'ar1(row):ar1(col)' or 'ar1(row):ar1(col) | trial'")


def _res_names(text: str, what: str, spec: str, colon: bool = True) -> str:
    parts = [p.strip() for p in text.split(":")] if colon else [text.strip()]
    for p in parts:
        if not p.isidentifier() or "__" in p:
            raise FormulaError("residual=%r: %s %r is not a plain column name; %s" % (spec, what, text.strip(),
                                                                                     _RES_HELP))
    return ":".join(parts)


def parse_residual(text: str) -> ResidualSpec:
    """Parse the ``residual=`` string of :func:`vcomp.lmm`.

    Parameters
    ----------
    text : str
        ``"ar1(time | subject)"`` (also ``cs``, ``us``, ``toep``, ``ar1h``, ``csh``),
        ``"us(time | group / subject)"``, ``"diag(1 | group)"``, ``"ar1(row):ar1(col)"``,
        ``"ar1(row):ar1(col) | trial"``.

    Returns
    -------
    ResidualSpec

    Raises
    ------
    FormulaError
        Naming the unknown structure or the malformed part.
    """
    import re

    if not isinstance(text, str):
        raise FormulaError("%s, got %r" % (_RES_HELP, text))
    s = text.strip()
    m = re.fullmatch(r"ar1\s*\(([^()|]*)\)\s*:\s*ar1\s*\(([^()|]*)\)\s*(?:\|\s*(.*))?", s)
    if m:
        row = _res_names(m.group(1), "row", text, colon=False)
        col = _res_names(m.group(2), "column", text, colon=False)
        trial = _res_names(m.group(3), "trial", text) if m.group(3) is not None else None
        if row == col:
            raise FormulaError("residual=%r: the row and the column must be different columns" % text)
        return ResidualSpec("ar1ar1", row=row, col=col, trial=trial, text=text)
    m = re.fullmatch(r"([A-Za-z0-9_]+)\s*\((.*)\)", s)
    if not m:
        raise FormulaError("cannot parse residual=%r; %s" % (text, _RES_HELP))
    kind, inner = m.group(1).lower(), m.group(2)
    if kind not in RESIDUAL_TIME_KINDS + ("diag",):
        raise FormulaError("unknown residual structure %r in residual=%r; the structures are %s. %s"
                           % (m.group(1), text, ", ".join(RESIDUAL_TIME_KINDS + ("diag", "ar1(row):ar1(col)")),
                              _RES_HELP))
    if inner.count("|") != 1:
        raise FormulaError("residual=%r: write %s(time | subject) with exactly one '|'" % (text, kind))
    left, right = (p.strip() for p in inner.split("|"))
    if kind == "diag":
        if left != "1" or "/" in right:
            raise FormulaError("residual=%r: write diag(1 | group), a residual variance per level of group"
                               % text)
        return ResidualSpec("diag", group=_res_names(right, "group", text), text=text)
    time = _res_names(left, "time", text, colon=False)
    if "/" in right:
        if kind != "us" or right.count("/") != 1:
            raise FormulaError("residual=%r: 'group / subject' is available for us(time | group / subject) only"
                               % text)
        g, subj = (p.strip() for p in right.split("/"))
        return ResidualSpec("us", time=time, group=_res_names(g, "group", text),
                            subject=_res_names(subj, "subject", text), text=text)
    return ResidualSpec(kind, time=time, subject=_res_names(right, "subject", text), text=text)
