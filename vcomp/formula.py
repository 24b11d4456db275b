"""Safe lme4-style formula parsing and fixed-effects model matrices.

This is the only module of vcomp that imports patsy, so the formula backend
can change in one place.

Formulas are *parsed*, never executed as arbitrary Python: every name in an
expression must be a data column, a whitelisted function (``C``, ``I``,
``log``, ``np.exp`` ...), a contrast (``Treatment``, ``Sum``) or a keyword
argument of those; dunder names, attribute access other than ``np.<math>``,
f-strings and lambdas are refused before patsy sees the formula.  patsy then
evaluates the factors in a namespace holding only the whitelist.
"""
from __future__ import annotations

import io
import keyword
import tokenize
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._data import factor_codes
from ._errors import DataError, FormulaError

__all__ = [
    "RandomTerm",
    "ParsedFormula",
    "FixedMatrix",
    "parse_formula",
    "fixed_matrix",
    "fixed_matrix_new",
    "formula_variables",
    "validate_expression",
    "ResidualSpec",
    "parse_residual",
]


# --------------------------------------------------------------------------- parse results
@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)``.

    Attributes
    ----------
    expr : str
        The model formula of the coefficients (``"1"``, ``"x"``, ``"1+x"``, ``"0+x"``).
    group : str
        The grouping factor, factor names joined by ``":"`` (``"g"``, ``"a:b"``).
    correlated : bool
        False for the pieces of an uncorrelated ``(x||g)`` term.
    """

    expr: str
    group: str
    correlated: bool = True


@dataclass(frozen=True)
class ParsedFormula:
    """A parsed lme4 formula: response, fixed right-hand side, random terms."""

    response: str
    fixed_rhs: str
    random: list = field(default_factory=list)
    formula: str = ""


@dataclass
class FixedMatrix:
    """A fixed-effects model matrix with patsy's column names.

    Attributes
    ----------
    X : ndarray, shape (n, p)
    column_names : list of str
        patsy names (``"Intercept"``, ``"x"``, ``"variety[T.Marvellous]"``).
    term_names : list of str
        Terms without the intercept, factor names joined by ``":"``.
    assign : list of int
        For each column, the index of its term in ``term_names`` (-1 for the intercept).
    rhs : str
        The right-hand side the matrix was built from.
    coding : str
        ``"treatment"`` or ``"sum"``.
    """

    X: np.ndarray
    column_names: list
    term_names: list
    assign: list
    rhs: str = ""
    coding: str = "treatment"
    design_info: Any = None
    levels: dict = field(default_factory=dict)

    def subset(self, keep) -> "FixedMatrix":
        """The same matrix restricted to the columns ``keep`` (indices)."""
        keep = list(keep)
        return FixedMatrix(self.X[:, keep], [self.column_names[j] for j in keep], list(self.term_names),
                           [self.assign[j] for j in keep], self.rhs, self.coding, self.design_info,
                           self.levels)


# --------------------------------------------------------------------------- whitelist
_MATH = {
    "log": np.log, "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "exp": np.exp,
    "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "square": np.square,
    "power": np.power, "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "sign": np.sign, "exp2": np.exp2, "cbrt": np.cbrt, "reciprocal": np.reciprocal,
}
_KEYWORDS = {"levels", "reference", "omit", "ddof", "rescale", "contrast", "diff", "scores"}
_CONSTS = {"True", "False", "None"}
_OPS = {"+", "-", "*", "/", ":", "**", "(", ")", ",", "=", "[", "]", "%", "//"}


class _SafeNumpy:
    """Stands for ``np``/``numpy`` in formulas: exposes only whitelisted math functions."""

    def __init__(self) -> None:
        for k, v in _MATH.items():
            setattr(self, k, v)
        self.pi = np.pi
        self.e = np.e


def _env(coding: str = "treatment") -> dict:
    import patsy.builtins as pb

    def C_plain(data, contrast=None, levels=None):
        """patsy's C(); numeric data become a Categorical (clean level names)."""
        if isinstance(data, np.ndarray) and data.dtype.kind in "iuf" and levels is None:
            data = pd.Categorical(data.tolist())
        return pb.C(data, contrast, levels)

    def C_sum(data, contrast=None, levels=None):
        """patsy's C() with sum-to-zero contrasts unless told otherwise."""
        return C_plain(data, pb.Sum if contrast is None else contrast, levels)

    env: dict = dict(_MATH)
    env.update({
        "C": C_sum if coding == "sum" else C_plain, "I": pb.I, "Q": pb.Q,
        "Treatment": pb.Treatment, "Sum": pb.Sum, "Helmert": pb.Helmert,
        "Poly": pb.Poly, "Diff": pb.Diff,
        "center": pb.center, "standardize": pb.standardize, "scale": pb.scale,
        "np": _SafeNumpy(), "numpy": _SafeNumpy(), "pi": np.pi,
        "True": True, "False": False, "None": None,
    })
    return env


_FUNCS = set(_MATH) | {"C", "I", "Q", "Treatment", "Sum", "Helmert", "Poly", "Diff",
                       "center", "standardize", "scale"}


# --------------------------------------------------------------------------- tokens
def _tokens(text: str, offset: int, formula: str) -> list:
    """Python tokens of ``text`` as (type, string, column-in-formula)."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.COMMENT):
                if tok.type == tokenize.COMMENT:
                    _fail(formula, offset + tok.start[1], "comments ('#') are not allowed")
                continue
            if tok.type == tokenize.ERRORTOKEN and tok.string.strip() == "":
                continue
            out.append((tok.type, tok.string, offset + tok.start[1]))
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        _fail(formula, offset + len(text), "incomplete expression (%s)" % (exc.args[0] if exc.args else exc))
    return out


def _fail(formula: str, pos: int, msg: str):
    pos = max(0, min(pos, len(formula)))
    raise FormulaError("formula syntax error at character %d: %s\n  %s\n  %s^"
                       % (pos + 1, msg, formula, " " * pos))


def validate_expression(text: str, columns=None, formula: str | None = None, offset: int = 0) -> list[str]:
    """Check that a patsy right-hand side uses only safe constructs.

    Parameters
    ----------
    text : str
        The expression (a patsy right-hand side or a random-term expression).
    columns : iterable of str, optional
        The data columns; when given, a name that is neither a column nor a
        whitelisted function raises :class:`FormulaError` naming it.
    formula, offset : optional
        The whole formula and the position of ``text`` in it (for messages).

    Returns
    -------
    list of str
        The data columns the expression refers to.
    """
    formula = text if formula is None else formula
    cols = None if columns is None else set(map(str, columns))
    toks = _tokens(text, offset, formula)
    used: list[str] = []
    depth = 0
    call_stack: list[bool] = []  # True if the paren opened a call
    prev = None
    for i, (typ, s, pos) in enumerate(toks):
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if typ == tokenize.NAME:
            if "__" in s:
                _fail(formula, pos, "name %r is not allowed (no dunder names)" % s)
            if s in ("np", "numpy"):
                if nxt != "." or i + 2 >= len(toks) or toks[i + 2][1] not in _MATH and toks[i + 2][1] not in ("pi", "e"):
                    _fail(formula, pos, "only np.<math function> is allowed (e.g. np.log)")
                prev = s
                continue
            if prev == "." :
                prev = s
                continue  # attribute checked above
            if s in _CONSTS:
                prev = s
                continue
            if nxt == "=" and call_stack and call_stack[-1]:
                if s not in _KEYWORDS:
                    _fail(formula, pos, "keyword argument %r is not allowed" % s)
                prev = s
                continue
            if cols is not None and s in cols:
                used.append(s)
            elif s in _FUNCS and nxt == "(":
                pass
            elif keyword.iskeyword(s):
                _fail(formula, pos, "Python keyword %r is not allowed in a formula" % s)
            elif cols is None:
                used.append(s)
            else:
                hint = " (functions allowed: %s)" % ", ".join(sorted(_FUNCS)) if nxt == "(" else ""
                raise FormulaError("unknown column or function %r in formula %r%s; available columns: %s"
                                   % (s, formula, hint, ", ".join(sorted(cols))[:400]))
        elif typ == tokenize.OP:
            if s == ".":
                if prev not in ("np", "numpy"):
                    _fail(formula, pos, "attribute access ('.') is not allowed")
            elif s == "(":
                call_stack.append(prev is not None and (prev in _FUNCS or prev in _MATH))
                depth += 1
            elif s == ")":
                if not call_stack:
                    _fail(formula, pos, "unbalanced ')'")
                call_stack.pop()
                depth -= 1
            elif s == "[":
                if prev is not None and (prev == ")" or (prev not in _OPS)):
                    if not (prev in ("(", ",", "=")):
                        _fail(formula, pos, "indexing ('[') is not allowed")
                call_stack.append(False)
            elif s == "]":
                if not call_stack:
                    _fail(formula, pos, "unbalanced ']'")
                call_stack.pop()
            elif s == "=":
                if not (call_stack and call_stack[-1]):
                    _fail(formula, pos, "'=' is only allowed for keyword arguments")
            elif s not in _OPS:
                _fail(formula, pos, "operator %r is not allowed" % s)
        elif typ == tokenize.NUMBER:
            pass
        elif typ == tokenize.STRING:
            pre = s[: min(i for i in (s.find("'"), s.find('"')) if i >= 0)]
            if "f" in pre.lower():
                _fail(formula, pos, "f-strings are not allowed")
            if prev == "(" and i >= 2 and toks[i - 2][1] == "Q":
                import ast
                name = ast.literal_eval(s)
                if cols is not None and name not in cols:
                    raise FormulaError("unknown column %r in Q() in formula %r" % (name, formula))
                used.append(name)
        else:
            _fail(formula, pos, "unexpected %r" % s)
        prev = s
    if call_stack:
        _fail(formula, offset + len(text), "unbalanced '('")
    return list(dict.fromkeys(used))


# --------------------------------------------------------------------------- lme4 formula
def _split_top(text: str, offset: int, formula: str, seps: str = "+-") -> list:
    """Split at top-level ``+``/``-``: list of (sign, chunk, chunk_offset)."""
    out = []
    depth = 0
    start = 0
    sign = "+"
    i = 0
    in_str = None
    while i < len(text):
        ch = text[i]
        if in_str:
            if ch == in_str:
                in_str = None
        elif ch in "'\"":
            in_str = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                _fail(formula, offset + i, "unbalanced ')'")
        elif depth == 0 and ch in seps:
            # '**' and '-' inside numbers like 1e-3 are not separators
            prev = text[:i].rstrip()
            if ch == "-" and prev[-1:] in ("e", "E") and prev[:-1][-1:].isdigit():
                i += 1
                continue
            out.append((sign, text[start:i], offset + start))
            sign = ch
            start = i + 1
        i += 1
    if depth > 0:
        _fail(formula, offset + len(text), "unbalanced '(' (missing ')')")
    if in_str:
        _fail(formula, offset + len(text), "unterminated string")
    out.append((sign, text[start:], offset + start))
    return out


def _group_names(gtext: str, pos: int, formula: str) -> list[str]:
    """Expand a grouping specification ``a``, ``a:b`` or ``a/b/c`` (-> a, a:b, a:b:c)."""
    g = gtext.strip()
    if g.startswith("(") and g.endswith(")"):
        g = g[1:-1].strip()
    if not g:
        _fail(formula, pos, "empty grouping factor after '|'")
    parts = [p.strip() for p in g.split("/")]
    out = []
    acc: list[str] = []
    for p in parts:
        facs = [f.strip() for f in p.split(":")]
        for f in facs:
            if not f.isidentifier() or "__" in f:
                _fail(formula, pos + max(gtext.find(f), 0),
                      "grouping factor %r is not a plain column name" % f)
        acc = acc + facs
        out.append(":".join(acc))
    return out


def _expr_pieces(expr: str) -> tuple[bool, list[str]]:
    """Intercept flag and the non-intercept pieces of a random-term expression."""
    intercept = True
    pieces = []
    for sign, chunk, _ in _split_top(expr, 0, expr):
        c = chunk.strip()
        if c in ("0", "-1") or (sign == "-" and c == "1"):
            intercept = False
        elif c == "1":
            intercept = True if sign == "+" else False
        elif c:
            if sign == "-":
                pieces.append("-" + c)
            else:
                pieces.append(c)
    return intercept, pieces


def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4 formula.

    Parameters
    ----------
    formula : str
        e.g. ``"y ~ x + (x | g)"``, ``"y ~ A*B + (1|block/A)"``, ``"y ~ x + (x || g)"``.

    Returns
    -------
    ParsedFormula
        The response, the fixed right-hand side (patsy syntax) and the random
        terms, with ``a/b`` expanded to ``a`` and ``a:b`` and ``(x||g)`` split
        into uncorrelated pieces (``(1|g)``, ``(0+x|g)``).

    Raises
    ------
    FormulaError
        On a syntax error (the message gives the character position) or an
        unsafe construct.
    """
    if not isinstance(formula, str):
        raise FormulaError("formula must be a string like 'y ~ x + (1|g)', got %r" % (formula,))
    if "~" not in formula:
        _fail(formula, len(formula), "no '~' (write 'response ~ terms')")
    if formula.count("~") > 1:
        _fail(formula, formula.index("~", formula.index("~") + 1), "more than one '~'")
    lhs, rhs = formula.split("~")
    response = lhs.strip()
    if not response:
        _fail(formula, 0, "no response before '~'")
    if not response.isidentifier() or "__" in response:
        _fail(formula, formula.index(response), "the response must be a column name, got %r" % response)
    off = len(lhs) + 1
    if not rhs.strip():
        _fail(formula, len(formula), "nothing after '~'")
    fixed_parts: list[str] = []
    random: list[RandomTerm] = []
    for sign, chunk, pos in _split_top(rhs, off, formula):
        c = chunk.strip()
        lead = pos + (len(chunk) - len(chunk.lstrip()))
        if not c:
            if sign == "+" and not fixed_parts and not random and pos == off:
                _fail(formula, lead, "empty term")
            _fail(formula, lead, "empty term (two operators in a row or a trailing '+')")
        if c.startswith("(") and c.endswith(")") and _has_bar(c[1:-1]):
            if sign == "-":
                _fail(formula, lead, "a random-effects term cannot be subtracted")
            inner = c[1:-1]
            ioff = lead + 1
            bar, double = _find_bar(inner, ioff, formula)
            expr = inner[:bar].strip()
            gtext = inner[bar + (2 if double else 1):]
            if not expr:
                _fail(formula, ioff, "empty expression before '|' (use 1 for an intercept)")
            validate_expression(expr, None, formula, ioff)
            groups = _group_names(gtext, ioff + bar + (2 if double else 1), formula)
            for g in groups:
                if double:
                    icpt, pieces = _expr_pieces(expr)
                    if icpt:
                        random.append(RandomTerm("1", g, False))
                    for p in pieces:
                        random.append(RandomTerm("0+" + p, g, False))
                else:
                    random.append(RandomTerm(expr.replace(" ", ""), g, True))
        else:
            if "|" in c and _has_bar(c):
                _fail(formula, lead + c.index("|"), "'|' outside a random term: write (expr | group)")
            validate_expression(c, None, formula, lead)
            fixed_parts.append((sign, c))
    if not fixed_parts:
        fixed = "1"
    else:
        fixed = ""
        for i, (s, c) in enumerate(fixed_parts):
            if i == 0:
                fixed = c if s == "+" else "1 - " + c
            else:
                fixed += " %s %s" % (s, c)
    return ParsedFormula(response, fixed, random, formula)


def _has_bar(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return True
    return False


def _find_bar(inner: str, off: int, formula: str) -> tuple[int, bool]:
    depth = 0
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            double = inner[i + 1: i + 2] == "|"
            rest = inner[i + (2 if double else 1):]
            if _has_bar(rest):
                _fail(formula, off + i + (2 if double else 1) + rest.index("|"), "more than one '|' in a term")
            return i, double
    _fail(formula, off, "no '|' in random term")  # pragma: no cover
    return -1, False


def formula_variables(parsed: ParsedFormula, columns) -> list[str]:
    """All data columns a parsed formula uses (response first); unknown names raise."""
    cols = list(map(str, columns))
    out = [parsed.response]
    if parsed.response not in cols:
        raise FormulaError("response %r is not a column of the data; available columns: %s"
                           % (parsed.response, ", ".join(cols)[:400]))
    out += validate_expression(parsed.fixed_rhs, cols, parsed.formula)
    for t in parsed.random:
        out += validate_expression(t.expr, cols, parsed.formula)
        for f in t.group.split(":"):
            if f not in cols:
                raise FormulaError("grouping factor %r of the random term (%s | %s) is not a column of the "
                                   "data; available columns: %s" % (f, t.expr, t.group, ", ".join(cols)[:400]))
            out.append(f)
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------- model matrices
def _is_factor(col: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)) \
        or isinstance(col.dtype, pd.CategoricalDtype)


def _patsy_data(data: pd.DataFrame, names, coding: str, levels: dict | None = None) -> tuple[dict, dict]:
    """Columns as patsy should see them: factors as Categoricals with sorted levels."""
    import patsy.builtins as pb

    out: dict = {}
    lev: dict = {}
    for c in names:
        col = data[c]
        if _is_factor(col):
            if levels is not None and c in levels:
                lv = levels[c]
            else:
                # R: "contrasts can be applied only to factors with 2 or more levels"
                _, lv = factor_codes(col, c, min_levels=2)
            cat = pd.Categorical(col.to_numpy(dtype=object), categories=lv)
            if levels is not None and (cat.codes < 0).any() and col.notna().all():
                bad = sorted(set(col[cat.codes < 0].astype(str)))[:5]
                raise DataError("column %r has level(s) %s not seen when fitting." % (c, ", ".join(bad)))
            lev[c] = lv
            out[c] = pb.C(cat, pb.Sum) if coding == "sum" else cat
        elif pd.api.types.is_integer_dtype(col):
            out[c] = col.to_numpy(dtype=np.int64)
        else:
            out[c] = col.to_numpy(dtype=float)
    return out, lev


def _term_name(term) -> str:
    return ":".join(f.name() for f in term.factors)


def fixed_matrix(rhs: str, data: pd.DataFrame, coding: str = "treatment") -> FixedMatrix:
    """Build a fixed-effects model matrix from a patsy right-hand side.

    Parameters
    ----------
    rhs : str
        patsy right-hand side, e.g. ``"variety*nitro"``, ``"x + I(x**2)"``.
    data : DataFrame
        Columns referenced by ``rhs``; string, categorical and boolean columns
        are factors (levels sorted unless ordered categorical); numeric columns
        are covariates unless wrapped in ``C()``.
    coding : {"treatment", "sum"}
        Contrasts for every categorical factor ("sum": sum-to-zero).

    Returns
    -------
    FixedMatrix
    """
    import patsy

    if coding not in ("treatment", "sum"):
        raise ValueError("coding must be 'treatment' or 'sum'")
    names = validate_expression(rhs, data.columns)
    pdata, lev = _patsy_data(data, names, coding)
    if not pdata:
        pdata = pd.DataFrame(index=range(len(data)))
    env = patsy.EvalEnvironment([_env(coding)])
    try:
        dm = patsy.dmatrix(rhs, pdata, eval_env=env, NA_action="raise", return_type="matrix")
    except patsy.PatsyError as exc:
        raise FormulaError("cannot build the model matrix of %r: %s" % (rhs, exc)) from None
    info = dm.design_info
    return _from_design(np.asarray(dm, dtype=float), info, rhs, coding, lev)


def _from_design(X, info, rhs, coding, lev) -> FixedMatrix:
    terms = [t for t in info.terms if t.factors]
    term_names = [_clean_term(_term_name(t)) for t in terms]
    assign = [-1] * X.shape[1]
    for t, sl in info.term_slices.items():
        idx = terms.index(t) if t.factors else -1
        for j in range(sl.start, sl.stop):
            assign[j] = idx
    cols = [_clean_col(c) for c in info.column_names]
    return FixedMatrix(X, cols, term_names, assign, rhs, coding, info, lev)


def _clean_term(name: str) -> str:
    return name


def _clean_col(name: str) -> str:
    # with sum coding patsy names columns "C(a, Sum)[S.x]"; keep patsy's names otherwise
    return name


def fixed_matrix_new(fm: FixedMatrix, data: pd.DataFrame) -> np.ndarray:
    """The model matrix of ``fm`` evaluated on new data (same columns, same levels)."""
    import patsy

    names = [n for n in validate_expression(fm.rhs, data.columns)]
    pdata, _ = _patsy_data(data, names, fm.coding, fm.levels)
    if not pdata:
        pdata = pd.DataFrame(index=range(len(data)))
    try:
        (X,) = patsy.build_design_matrices([fm.design_info], pdata, NA_action="raise")
    except patsy.PatsyError as exc:
        raise FormulaError("cannot build the model matrix of %r for new data: %s" % (fm.rhs, exc)) from None
    X = np.asarray(X, dtype=float)
    if X.shape[0] != len(data):  # intercept-only design: patsy returns one row
        X = np.repeat(X[:1], len(data), axis=0)
    keep = [fm.design_info.column_names.index(c) if c in fm.design_info.column_names else None
            for c in fm.column_names]
    return X[:, keep]


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
