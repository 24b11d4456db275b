"""The term grammar: model formulas (R / lme4 syntax) and Design term specifications.

One grammar serves every entry point: ``vcomp.lmm`` formulas, the ``fixed=`` and
``random=`` specifications of :class:`vcomp.Design`, and the expressions inside a
random-effects term ``(expr | group)``.  The parser is iterative (shunting-yard), so
formulas with thousands of terms or hundreds of nested parentheses parse without
recursion limits.

Supported (R semantics): ``+ - * / : ^ %in%``, ``0``/``1``/``-1`` for the intercept,
parentheses, ``(expr | group)`` and ``(expr || group)`` random terms with ``a/b`` and
``a:b`` grouping, function calls (``log(x)``, ``I(x^2)``, ``C(x)``, ``np.log(x)``), and
quoting of any column name as ``Q("grain yield")`` or with backticks (`` `N-rate` ``).
A variable is identified by its *name*: a column name, or the canonical text of a
function call (``"log(x)"``, ``"C(trt)"``).  Expressions are only parsed here; they are
evaluated (safely) by :mod:`vcomp.formula`.
"""
from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from typing import Iterable

from ._errors import FormulaError

__all__ = ["Term", "RandomSpec", "ModelFormula", "parse_formula", "parse_rhs", "parse_term_spec",
           "split_term", "join_term", "term_key", "canonical_call", "python_source", "quote_names"]


# --------------------------------------------------------------------------- terms
def split_term(term) -> list[str]:
    """Variable names of a term written ``"a:b"`` (colons inside parentheses or quotes are kept)."""
    if isinstance(term, Term):
        return list(term.variables)
    return list(_split_text(str(term)))


@functools.lru_cache(maxsize=4096)
def _split_text(text: str) -> tuple:
    out, depth, start, quote = [], 0, 0, None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == ":" and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return tuple(p.strip() for p in out if p.strip())


def join_term(variables: Iterable[str]) -> str:
    """Inverse of :func:`split_term`."""
    return ":".join(variables)


def term_key(term) -> frozenset:
    """Order-free identity of a term (``"a:b"`` == ``"b:a"``)."""
    return frozenset(split_term(term))


@dataclass(frozen=True)
class Term:
    """A model term: an interaction of variables (one variable for a main effect).

    Attributes
    ----------
    variables : tuple of str
        Variable names in display order.
    """

    variables: tuple

    @property
    def key(self) -> frozenset:
        return frozenset(self.variables)

    @property
    def name(self) -> str:
        return join_term(self.variables)

    @property
    def degree(self) -> int:
        return len(self.variables)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class RandomSpec:
    """One random-effects term ``(expr | group)`` after expansion.

    Attributes
    ----------
    intercept : bool
        Whether the term's model has an intercept (``(x|g)`` yes, ``(0+x|g)`` no).
    terms : tuple of Term
        The non-intercept terms of ``expr``.
    group : Term
        The grouping factor (``g``, or an interaction ``a:b``).
    correlated : bool
        False for the pieces of an uncorrelated ``(x||g)`` term.
    """

    intercept: bool
    terms: tuple
    group: Term
    correlated: bool = True

    @property
    def expr(self) -> str:
        """The expression in lme4 syntax (``"1"``, ``"x"``, ``"0+x"``, ``"1+x+z"``)."""
        parts = [t.name for t in self.terms]
        if not parts:
            return "1" if self.intercept else "0"
        return "+".join(parts) if self.intercept else "0+" + "+".join(parts)


@dataclass(frozen=True)
class ModelFormula:
    """A parsed model: response, fixed terms (R's model order), random terms.

    Attributes
    ----------
    response : str or None
        The response variable (``None`` for a right-hand side).
    intercept : bool
    fixed : tuple of Term
        Fixed terms sorted as R's ``terms()`` (by degree, formula order within a degree),
        each with its variables in order of first appearance in the formula.
    random : tuple of RandomSpec
    text : str
        The formula as given.
    factors : frozenset of str
        Variables to be treated as factors whatever their data type (from a Design or
        ``lmm(factors=...)``).
    covariates : frozenset of str
        Variables to be treated as numeric covariates (from a Design).
    """

    response: str | None
    intercept: bool
    fixed: tuple
    random: tuple = ()
    text: str = ""
    factors: frozenset = field(default_factory=frozenset)
    covariates: frozenset = field(default_factory=frozenset)

    @property
    def fixed_names(self) -> list[str]:
        return [t.name for t in self.fixed]

    def variables(self) -> list[str]:
        """Every variable the model uses (response first, then fixed, random expressions, groups)."""
        out = [self.response] if self.response is not None else []
        for t in self.fixed:
            out += t.variables
        for r in self.random:
            for t in r.terms:
                out += t.variables
            out += r.group.variables
        return list(dict.fromkeys(out))


# --------------------------------------------------------------------------- tokens
_NAME = re.compile(r"(?:[^\W\d]|\.)[\w.]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_OPS = ("||", "**", "%in%", "+", "-", "*", "/", ":", "^", "|", "(", ")")


@dataclass
class _Tok:
    kind: str            # "name", "call", "num", "op", "bar"
    text: str
    pos: int
    extra: object = None


def _fail(text: str, pos: int, msg: str):
    pos = max(0, min(pos, len(text)))
    raise FormulaError("formula syntax error at character %d: %s\n  %s\n  %s^" % (pos + 1, msg, text, " " * pos))


def _match_paren(text: str, i: int) -> int:
    """Index of the ``)`` matching the ``(`` at ``i`` (quote-aware, iterative)."""
    depth, quote = 0, None
    for j in range(i, len(text)):
        ch = text[j]
        if quote:
            if ch == "\\":
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j
    _fail(text, i, "unbalanced '(' (no matching ')')")
    return -1


def _string_at(text: str, i: int) -> int:
    """End index (exclusive) of the quoted string starting at ``i``."""
    q = text[i]
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == q:
            return j + 1
        j += 1
    _fail(text, i, "unterminated string")
    return -1


def _q_name(text: str, start: int, inner: str) -> str:
    """The column name quoted by ``Q("...")``."""
    try:
        node = ast.parse(inner.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        _fail(text, start, "Q() takes one quoted column name, e.g. Q(\"grain yield\")")
    return node.value


def _tokenize(text: str, offset: int = 0, full: str | None = None) -> list[_Tok]:
    full = text if full is None else full
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        pos = offset + i
        if ch == "`":
            j = text.find("`", i + 1)
            if j < 0:
                _fail(full, pos, "unterminated backtick quote")
            toks.append(_Tok("name", text[i + 1:j], pos))
            i = j + 1
            continue
        if ch in "'\"":
            _fail(full, pos, "a string is not a term (quote column names as Q(\"name\") or `name`)")
        m = _NUMBER.match(text, i)
        if m and not (ch == "." and _NAME.match(text, i) and not text[i + 1:i + 2].isdigit()):
            toks.append(_Tok("num", m.group(0), pos))
            i = m.end()
            continue
        m = _NAME.match(text, i)
        if m:
            name = m.group(0)
            j = m.end()
            k = j
            while k < n and text[k] in " \t":
                k += 1
            if k < n and text[k] == "(":
                end = _match_paren(text, k)
                inner = text[k + 1:end]
                if name == "Q":
                    toks.append(_Tok("name", _q_name(full, pos, inner), pos))
                else:
                    toks.append(_Tok("call", canonical_call(text[i:end + 1], full, pos), pos))
                i = end + 1
                continue
            if name == ".":
                _fail(full, pos, "'.' (all other columns) is not supported: list the terms explicitly")
            toks.append(_Tok("name", name, pos))
            i = j
            continue
        for op in _OPS:
            if text.startswith(op, i):
                toks.append(_Tok("op", op, pos))
                i += len(op)
                break
        else:
            if ch == "~":
                _fail(full, pos, "more than one '~'")
            _fail(full, pos, "unexpected %r" % ch)
    return toks


def canonical_call(code: str, full: str | None = None, pos: int = 0) -> str:
    """Canonical text of a function-call variable (``"log( x )"`` -> ``"log(x)"``).

    Backtick-quoted names become ``Q("...")`` and R's ``^`` becomes ``**``.
    """
    full = code if full is None else full
    src = python_source(code)
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        _fail(full, pos, "cannot read the expression %r" % code)
    try:
        return ast.unparse(tree)
    except RecursionError:  # pragma: no cover - ast.parse refuses deeper nesting first
        _fail(full, pos, "expression %r is nested too deeply" % code)
    return code


def python_source(code: str) -> str:
    """Backticks -> Q("..."), ``^`` -> ``**`` (outside strings)."""
    out, i, n = [], 0, len(code)
    while i < n:
        ch = code[i]
        if ch in "'\"":
            j = _string_at(code, i)
            out.append(code[i:j])
            i = j
        elif ch == "`":
            j = code.find("`", i + 1)
            if j < 0:
                raise FormulaError("unterminated backtick quote in %r" % code)
            out.append("Q(%r)" % code[i + 1:j])
            i = j + 1
        elif ch == "^":
            out.append("**")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# --------------------------------------------------------------------------- term sets
@dataclass
class _Set:
    """Operand of the grammar: ordered terms (tuples; ``()`` = intercept), intercept flag, random terms."""

    terms: list
    icpt: bool | None = None
    random: list = field(default_factory=list)
    power: int | None = None  # a bare number other than 0/1: only valid as an exponent


def _union(a: list, b: list) -> list:
    seen = {frozenset(t) for t in a}
    out = list(a)
    for t in b:
        k = frozenset(t)
        if k not in seen:
            seen.add(k)
            out.append(t)
    return out


def _interact(a: list, b: list) -> list:
    out: list = []
    for s in a:
        for t in b:
            out = _union(out, [tuple(dict.fromkeys(s + t))])
    return out


def _no_random(s: _Set, op: str, full: str, pos: int) -> None:
    if s.random:
        _fail(full, pos, "a random-effects term (expr | group) cannot be an operand of %r" % op)


_PREC = {"^": 5, "**": 5, "neg": 4, "pos": 4, ":": 3, "%in%": 3, "*": 2, "/": 2, "+": 1, "-": 1}
_RIGHT = {"^", "**", "neg", "pos"}


def _apply(op: str, args: list, full: str, pos: int) -> _Set:
    for k, a in enumerate(args):
        if a.power is not None and not (op in ("^", "**") and k == 1):
            _fail(full, pos, "the number %d is not a term (only 0, 1 and -1 mark the intercept)" % a.power)
    if op in ("neg", "pos"):
        (a,) = args
        if op == "pos":
            return a
        return _apply("-", [_Set([], None), a], full, pos)
    a, b = args
    if op == "+":
        return _Set(_union(a.terms, b.terms), b.icpt if b.icpt is not None else a.icpt, a.random + b.random)
    if op == "-":
        if b.random:
            _fail(full, pos, "random-effects terms cannot be removed with '-'")
        drop = {frozenset(t) for t in b.terms}
        icpt = a.icpt
        if () in b.terms:
            icpt = False
        elif b.icpt is False:
            icpt = True
        return _Set([t for t in a.terms if frozenset(t) not in drop], icpt, a.random)
    _no_random(a, op, full, pos)
    _no_random(b, op, full, pos)
    if op in (":", "%in%"):
        return _Set(_interact(a.terms, b.terms))
    if op == "*":
        return _Set(_union(_union(a.terms, b.terms), _interact(a.terms, b.terms)))
    if op == "/":
        allv = tuple(dict.fromkeys(v for t in a.terms for v in t))
        return _Set(_union(a.terms, _interact([allv], b.terms)))
    if op in ("^", "**"):
        if b.power is None:
            _fail(full, pos, "'%s' must be followed by a whole number, as in (a + b + c)^2" % op)
        k = b.power
        out = a.terms
        for _ in range(k - 1):
            out = _union(out, _interact(out, a.terms))
        return _Set(out)
    _fail(full, pos, "unexpected operator %r" % op)  # pragma: no cover
    return a


def _number(tok: _Tok, full: str) -> _Set:
    if tok.text in ("1", "1.0"):
        return _Set([()], True)
    if tok.text in ("0", "0.0"):
        return _Set([], False)
    try:
        v = float(tok.text)
    except ValueError:  # pragma: no cover - the tokenizer only makes numbers
        v = float("nan")
    if v.is_integer() and 2 <= v <= 50:
        return _Set([], None, [], int(v))
    _fail(full, tok.pos, "the number %s is not a term (only 0, 1 and -1 for the intercept, or an exponent)" % tok.text)
    return _Set([])


def _bars(toks: list[_Tok], full: str) -> list[_Tok]:
    """Replace every ``( expr | group )`` by one ``bar`` token (iterative, bars do not nest)."""
    match: dict[int, int] = {}
    stack: list[int] = []
    for i, t in enumerate(toks):
        if t.kind == "op" and t.text == "(":
            stack.append(i)
        elif t.kind == "op" and t.text == ")":
            if not stack:
                _fail(full, t.pos, "unbalanced ')'")
            match[stack.pop()] = i
    if stack:
        _fail(full, toks[stack[-1]].pos, "unbalanced '(' (no matching ')')")
    out: list[_Tok] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "op" and t.text == "(":
            j = match[i]
            depth, bar = 0, None
            for k in range(i + 1, j):
                tk = toks[k]
                if tk.kind == "op" and tk.text == "(":
                    depth += 1
                elif tk.kind == "op" and tk.text == ")":
                    depth -= 1
                elif depth == 0 and tk.kind == "op" and tk.text in ("|", "||"):
                    if bar is not None:
                        _fail(full, tk.pos, "more than one '|' in a random-effects term")
                    bar = k
            if bar is not None:
                if bar == i + 1:
                    _fail(full, toks[bar].pos, "nothing before '|': write (1 | group)")
                if bar == j - 1:
                    _fail(full, toks[bar].pos, "empty grouping factor after '|'")
                out.append(_Tok("bar", "", t.pos, (toks[i + 1:bar], toks[bar + 1:j], toks[bar].text == "||")))
                i = j + 1
                continue
        if t.kind == "op" and t.text in ("|", "||"):
            _fail(full, t.pos, "'|' outside a random-effects term: write (expr | group)")
        out.append(t)
        i += 1
    return out


def _parse_tokens(toks: list[_Tok], full: str) -> _Set:
    """Shunting-yard evaluation of a token list into a :class:`_Set` (no recursion on depth)."""
    toks = _bars(toks, full)
    if not toks:
        _fail(full, len(full), "nothing to parse (an empty formula side)")
    vals: list[_Set] = []
    ops: list[tuple[str, int]] = []

    def reduce_top() -> None:
        op, pos = ops.pop()
        k = 1 if op in ("neg", "pos") else 2
        if len(vals) < k:
            _fail(full, pos, "operator %r has no operand" % op.replace("neg", "-").replace("pos", "+"))
        args = vals[-k:]
        del vals[-k:]
        vals.append(_apply(op, args, full, pos))

    expect_operand = True
    for t in toks:
        if t.kind in ("name", "call", "num", "bar"):
            if not expect_operand:
                _fail(full, t.pos, "missing operator before %r" % (t.text or "(... | ...)"))
            if t.kind == "num":
                vals.append(_number(t, full))
            elif t.kind == "bar":
                vals.append(_bar_set(t, full))
            else:
                if "__" in t.text and t.kind == "call":
                    _fail(full, t.pos, "names with '__' are not allowed in expressions")
                vals.append(_Set([(t.text,)]))
            expect_operand = False
            continue
        op = t.text
        if op == "(":
            if not expect_operand:
                _fail(full, t.pos, "missing operator before '('")
            ops.append(("(", t.pos))
            continue
        if op == ")":
            if expect_operand:
                _fail(full, t.pos, "unexpected ')'")
            while ops and ops[-1][0] != "(":
                reduce_top()
            if not ops:
                _fail(full, t.pos, "unbalanced ')'")
            ops.pop()
            continue
        if expect_operand:
            if op in ("-", "+"):
                ops.append(("neg" if op == "-" else "pos", t.pos))
                continue
            _fail(full, t.pos, "operator %r has no left operand" % op)
        while ops and ops[-1][0] != "(":
            top = ops[-1][0]
            if _PREC[top] > _PREC[op] or (_PREC[top] == _PREC[op] and op not in _RIGHT):
                reduce_top()
            else:
                break
        ops.append((op, t.pos))
        expect_operand = True
    if expect_operand:
        _fail(full, len(full), "the formula ends with an operator")
    while ops:
        if ops[-1][0] == "(":
            _fail(full, ops[-1][1], "unbalanced '('")
        reduce_top()
    if len(vals) != 1:  # pragma: no cover - guarded by expect_operand
        _fail(full, 0, "cannot read the formula")
    if vals[0].power is not None:
        _fail(full, toks[0].pos, "the number %d is not a term (only 0, 1 and -1 mark the intercept)" % vals[0].power)
    return vals[0]


def _bar_set(t: _Tok, full: str) -> _Set:
    expr_toks, group_toks, double = t.extra
    e = _parse_tokens(expr_toks, full)
    if e.random:
        _fail(full, t.pos, "random-effects terms cannot be nested")
    g = _parse_tokens(group_toks, full)
    if g.random or any(len(x) == 0 for x in g.terms) or not g.terms:
        _fail(full, t.pos, "the grouping factor after '|' must be a factor name, a:b or a/b")
    for gt in g.terms:
        for v in gt:
            if "(" in v:
                _fail(full, t.pos, "grouping factor %r must be a column (quote odd names as Q(\"name\"))" % v)
    icpt = e.icpt if e.icpt is not None else True
    terms = [tuple(x) for x in e.terms if x != ()]
    specs = []
    for gt in g.terms:
        group = Term(tuple(gt))
        if double:
            if icpt:
                specs.append(RandomSpec(True, (), group, False))
            for x in terms:
                specs.append(RandomSpec(False, (Term(x),), group, False))
        else:
            specs.append(RandomSpec(icpt, tuple(Term(x) for x in terms), group, True))
    return _Set([], None, specs)


def _r_order(terms: list, first_pos: dict) -> list[Term]:
    """R's ``terms()`` order: by degree, stable; variables within a term by first appearance."""
    out = []
    for t in terms:
        vs = sorted(t, key=lambda v: first_pos.get(v, len(first_pos)))
        out.append(Term(tuple(vs)))
    return sorted(out, key=lambda t: t.degree)


def _appearance(s: _Set) -> dict:
    pos: dict = {}
    for t in s.terms:
        for v in t:
            pos.setdefault(v, len(pos))
    return pos


def parse_rhs(text: str, full: str | None = None, offset: int = 0) -> ModelFormula:
    """Parse a right-hand side (``"A*B + (1|block)"``) into a :class:`ModelFormula` without response.

    Raises
    ------
    FormulaError
        On any syntax error; the message shows the position.
    """
    full = text if full is None else full
    s = _parse_tokens(_tokenize(text, offset, full), full)
    intercept = s.icpt if s.icpt is not None else True
    terms = [t for t in s.terms if t != ()]
    fixed = _r_order(terms, _appearance(_Set(terms)))
    return ModelFormula(None, bool(intercept), tuple(fixed), tuple(s.random), full)


def quote_names(text: str, names) -> str:
    """Backtick-quote the column names in ``text`` that the grammar would misread, where that is unambiguous.

    A column named ``N-rate`` written plainly in ``"y ~ N-rate + (1|block)"`` is read as that
    column unless its pieces (``N``, ``rate``) are columns too (then R's reading, ``N - rate``,
    stands).  Names that are plain identifiers, and text already quoted, are left alone.
    """
    cols = [str(c) for c in names]
    colset = set(cols)
    odd = sorted((c for c in cols if c.strip() and not _NAME.fullmatch(c)), key=len, reverse=True)
    for c in odd:
        pieces = [p for p in re.split(r"[^\w.]+", c) if p]
        if pieces and all(p in colset for p in pieces):
            continue
        out, i = [], 0
        while i < len(text):
            ch = text[i]
            if ch in "`'\"":
                j = text.find(ch, i + 1)
                j = len(text) - 1 if j < 0 else j
                out.append(text[i:j + 1])
                i = j + 1
                continue
            if text.startswith(c, i) and not _is_name_char(text, i - 1) and not _is_name_char(text, i + len(c)):
                out.append("`%s`" % c)
                i += len(c)
                continue
            out.append(ch)
            i += 1
        text = "".join(out)
    return text


def _is_name_char(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] in "_.")


def parse_formula(text: str) -> ModelFormula:
    """Parse ``"response ~ right-hand side"`` (R/lme4 syntax).

    The response may be any column name (quote odd ones: ```grain yield` ~ ...`` or
    ``Q("grain yield") ~ ...``) or an expression (``log(y) ~ ...``).  The result is immutable, so
    repeated formulas (refits in a loop, simulations) are parsed once.
    """
    if not isinstance(text, str):
        raise FormulaError("formula must be a string like 'y ~ x + (1|g)', got %r" % (text,))
    return _parse_formula(text)


@functools.lru_cache(maxsize=256)
def _parse_formula(text: str) -> ModelFormula:
    if "~" not in text:
        _fail(text, len(text), "no '~' (write 'response ~ terms')")
    tilde = _top_tilde(text)
    lhs, rhs = text[:tilde], text[tilde + 1:]
    if not lhs.strip():
        _fail(text, 0, "no response before '~'")
    ltoks = _tokenize(lhs, 0, text)
    if len(ltoks) != 1 or ltoks[0].kind not in ("name", "call"):
        _fail(text, 0, "the response must be one column (quote odd names as `name` or Q(\"name\"))")
    response = ltoks[0].text
    if not rhs.strip():
        _fail(text, len(text), "nothing after '~'")
    mf = parse_rhs(rhs, text, tilde + 1)
    return ModelFormula(response, mf.intercept, mf.fixed, mf.random, text)


def _top_tilde(text: str) -> int:
    """Position of the one '~' outside quotes."""
    found = []
    i, quote = 0, None
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == "~":
            found.append(i)
        i += 1
    if len(found) > 1:
        _fail(text, found[1], "more than one '~'")
    if not found:
        _fail(text, len(text), "no '~' (write 'response ~ terms')")
    return found[0]


_FORMULA_CHARS = set("+*/^()|~`")


def parse_term_spec(spec, what: str = "terms") -> list[Term]:
    """Terms of a Design specification: a right-hand side string or a list of terms.

    A string is a right-hand side (``"A*B"``, ``"rep + gen"``, ``"A/B"``, ``"(A+B+C)^2"``;
    quote odd names as ``Q("N-rate")``).  A list holds terms written ``"a:b"``: each item is
    split at ``:`` only, so any column name works (``["block", "block:N-rate"]``), unless
    the item contains formula operators (``+ * / ^ ( ) |``), in which case it is parsed
    as a right-hand side.  A :class:`Term` or a tuple of names is taken as it is.
    Terms keep their first-appearance order, stably sorted by degree; intercept markers are ignored.
    """
    if spec is None:
        return []
    if not isinstance(spec, (str, Term, list, tuple)):
        raise FormulaError("%s must be strings (a right-hand side like 'A*B' or a list of terms), got %r"
                           % (what, spec))
    pieces = [spec] if isinstance(spec, (str, Term)) else list(spec)
    out: list = []
    for piece in pieces:
        if isinstance(piece, Term):
            out = _union(out, [piece.variables])
            continue
        if isinstance(piece, (tuple, list)) and all(isinstance(v, str) for v in piece):
            out = _union(out, [tuple(piece)])
            continue
        if not isinstance(piece, str):
            raise FormulaError("%s must be strings, got %r" % (what, piece))
        if not isinstance(spec, str) and not (_FORMULA_CHARS & set(piece)) and "Q(" not in piece:
            names = split_term(piece)
            if not names:
                raise FormulaError("%s: empty term %r" % (what, piece))
            out = _union(out, [tuple(dict.fromkeys(names))])
            continue
        text = piece.split("~", 1)[1] if "~" in piece else piece
        if not text.strip():
            continue
        mf = parse_rhs(text)
        if mf.random:
            raise FormulaError("%s: %r holds a random-effects term (expr | group); list random terms in "
                               "random=[...] as plain terms" % (what, piece))
        out = _union(out, [t.variables for t in mf.fixed])
    out.sort(key=len)
    return [Term(tuple(t)) for t in out]
