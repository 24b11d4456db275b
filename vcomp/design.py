"""Experimental designs: which terms are fixed, which are random, and their textbook order.

A :class:`Design` is an immutable description of a model: fixed terms, random
terms, and the order of the terms in a type I (sequential) ANOVA table.  The
builders (:func:`CRD`, :func:`RCBD`, :func:`LatinSquare`, :func:`SplitPlot`,
:func:`SplitSplitPlot`, :func:`StripPlot`, :func:`Nested`) return designs with
the textbook term order; :class:`Design` itself orders the terms of any other
design by strata (see :attr:`Design.terms`).

>>> import vcomp
>>> d = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")
>>> d.terms
['block', 'variety', 'block:variety', 'nitro', 'variety:nitro']
>>> d.formula("yield")
'yield ~ variety*nitro + (1|block) + (1|block:variety)'
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence, Union

from ._data import join_term, split_term, term_key
from ._errors import DesignError

__all__ = ["Design", "CRD", "RCBD", "LatinSquare", "SplitPlot", "SplitSplitPlot", "StripPlot",
           "Nested", "parse_terms"]

TermSpec = Union[str, Sequence[str], None]

# --------------------------------------------------------------------------- term parser
_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_.][A-Za-z0-9_.]*|`[^`]+`)|(?P<op>[-+*/:()^]|\d+))")


def _tokenize(text: str) -> list[str]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise DesignError("cannot read the term specification %r at %r; write terms like "
                              "'A*B', 'rep + gen' or 'a + b + a:b'." % (text, text[pos:]))
        tok = m.group("name") or m.group("op")
        if tok.startswith("`"):
            tok = tok[1:-1]
        out.append(tok)
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    """Recursive-descent parser for patsy/R right-hand sides (``+ * / : ( ) ^``)."""

    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def error(self, msg: str):
        raise DesignError("term specification %r: %s" % (self.text, msg))

    def parse(self) -> list[tuple[str, ...]]:
        if not self.toks:
            return []
        terms = self.sum()
        if self.peek() is not None:
            self.error("unexpected %r" % self.peek())
        return terms

    # each level returns a list of terms; a term is a tuple of factor names (order kept)
    def sum(self):
        terms = self.product()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.product()
            if op == "+":
                terms = _union(terms, rhs)
            else:
                drop = {frozenset(t) for t in rhs}
                terms = [t for t in terms if frozenset(t) not in drop]
        return terms

    def product(self):
        terms = self.power()
        while self.peek() in ("*", "/"):
            op = self.take()
            rhs = self.power()
            if op == "*":
                terms = _union(_union(terms, rhs), _interact(terms, rhs))
            else:  # A/B = A + (all factors of A):B
                allf = tuple(dict.fromkeys(f for t in terms for f in t))
                terms = _union(terms, _interact([allf] if allf else [], rhs))
        return terms

    def power(self):
        terms = self.colon()
        if self.peek() == "^":
            self.take()
            n = self.take()
            if n is None or not n.isdigit():
                self.error("'^' must be followed by an integer")
            base = terms
            for _ in range(int(n) - 1):
                terms = _union(_union(terms, base), _interact(terms, base))
        return terms

    def colon(self):
        terms = self.atom()
        while self.peek() == ":":
            self.take()
            terms = _interact(terms, self.atom())
        return terms

    def atom(self):
        t = self.take()
        if t is None:
            self.error("ends too early")
        if t == "(":
            terms = self.sum()
            if self.take() != ")":
                self.error("missing ')'")
            return terms
        if t in ("0", "1"):
            return []  # intercept markers: the intercept is always in the model
        if t in "+-*/:()^" or t.isdigit():
            self.error("unexpected %r" % t)
        return [(t,)]


def _union(a, b):
    seen = {frozenset(t) for t in a}
    out = list(a)
    for t in b:
        if frozenset(t) not in seen:
            seen.add(frozenset(t))
            out.append(t)
    return out


def _interact(a, b):
    out = []
    for s in a:
        for t in b:
            out = _union(out, [tuple(dict.fromkeys(s + t))])
    return out


def parse_terms(spec: TermSpec) -> list[str]:
    """Expand a term specification into a list of terms ``"a:b"``.

    Parameters
    ----------
    spec : str, list of str or None
        A patsy/R right-hand side (``"A*B"``, ``"rep + gen"``,
        ``"a + b + a:b"``, ``"A/B"``, ``"(A+B+C)^2"``) or a list of such
        pieces.  ``*`` expands to the full factorial, ``A/B`` to ``A + A:B``.

    Returns
    -------
    list of str
        Distinct terms (order-free identity), stably sorted by the number of
        factors, in the order they first appear.
    """
    if spec is None:
        return []
    pieces = [spec] if isinstance(spec, str) else list(spec)
    terms: list[tuple[str, ...]] = []
    for piece in pieces:
        if not isinstance(piece, str):
            raise DesignError("terms must be strings, got %r" % (piece,))
        text = piece.strip()
        if "~" in text:
            text = text.split("~", 1)[1]
        terms = _union(terms, _Parser(text).parse())
    terms.sort(key=len)
    return [join_term(t) for t in terms]


# --------------------------------------------------------------------------- Design
def _order_terms(fixed: list[str], random: list[str]) -> list[str]:
    """Stratum order used by :class:`Design` (see :attr:`Design.terms`)."""
    rkeys = [term_key(r) for r in random]
    inside = [t for t in fixed if any(term_key(t) <= rk for rk in rkeys)]
    outside = [t for t in fixed if t not in inside]
    first = [(len(term_key(t)), 0, i, t) for i, t in enumerate(inside)]
    first += [(len(term_key(t)), 1, i, t) for i, t in enumerate(random)]
    first.sort(key=lambda x: x[:3])
    rest = sorted(outside, key=lambda t: len(term_key(t)))
    return [x[3] for x in first] + rest


class Design:
    """An experimental design: fixed terms, random terms and their stratum order.

    Parameters
    ----------
    fixed : str or list of str, optional
        Fixed terms as a patsy right-hand side (``"A*B"``, ``"rep + gen"``)
        or a list of terms.
    random : str or list of str, optional
        Random terms, a list (``["block", "block:A"]``) or a ``+``-joined string.
        Random terms must be made of factors.
    covariates : list of str, optional
        Variables of fixed terms to treat as numeric covariates (ANCOVA).  By
        default a variable that appears in a fixed term only and whose column
        has a floating-point dtype is a covariate; every other variable
        (strings, categoricals, integers, booleans, and anything in a random
        term) is a factor.  Pass ``covariates=[]`` to make every variable a factor.

    Notes
    -----
    Term order (:attr:`terms`, the order of a type I table): first the fixed
    terms contained in some random term (factor-set subset) together with the
    random terms, sorted stably by the number of factors with fixed terms
    before random terms at ties (each in the order given); then the remaining
    fixed terms (those tested in the residual stratum), sorted stably by the
    number of factors.  Builders use the textbook order instead.  When data are
    analysed, a generic design orders its type I table by the data's columns
    (see :meth:`terms_for`).

    A design is immutable.
    """

    __slots__ = ("_fixed", "_random", "_covariates", "_terms", "_name", "_roles")

    def __init__(self, fixed: TermSpec = None, random: TermSpec = None, covariates: Sequence[str] | None = None,
                 *, _order: Sequence[str] | None = None, _name: str | None = None,
                 _roles: Sequence[tuple[str, Sequence[str]]] = ()):
        fx = parse_terms(fixed)
        rd = parse_terms(random) if not isinstance(random, (list, tuple)) else _dedupe(
            [t for piece in random for t in parse_terms(piece)])
        fkeys = {term_key(t) for t in fx}
        both = [t for t in rd if term_key(t) in fkeys]
        if both:
            raise DesignError("term(s) %s are listed as both fixed and random; keep each term in one list."
                              % ", ".join(map(repr, both)))
        if not fx and not rd:
            raise DesignError("the design has no terms; give fixed=... and/or random=[...].")
        if _order is not None:
            order = list(_order)
            if sorted(map(term_key, order), key=sorted) != sorted(map(term_key, fx + rd), key=sorted):
                raise DesignError("internal: term order does not match the terms")  # pragma: no cover
        else:
            order = _order_terms(fx, rd)
        object.__setattr__(self, "_fixed", tuple(fx))
        object.__setattr__(self, "_random", tuple(rd))
        object.__setattr__(self, "_covariates", None if covariates is None else tuple(covariates))
        object.__setattr__(self, "_terms", tuple(order))
        object.__setattr__(self, "_name", _name)
        object.__setattr__(self, "_roles", tuple((r, tuple(fs)) for r, fs in _roles))

    def __setattr__(self, key, value):
        raise AttributeError("Design is immutable; build a new one")

    def __delattr__(self, key):
        raise AttributeError("Design is immutable")

    # ---- read-only views
    @property
    def fixed_terms(self) -> list[str]:
        """Fixed terms (list of ``"a:b"`` strings)."""
        return list(self._fixed)

    @property
    def random_terms(self) -> list[str]:
        """Random terms (list of ``"a:b"`` strings)."""
        return list(self._random)

    @property
    def terms(self) -> list[str]:
        """All terms in textbook (stratum) order.

        For builders this is the order of a type I table; a generic
        :class:`Design` analyses data in :meth:`terms_for` order.
        """
        return list(self._terms)

    def terms_for(self, data) -> list[str]:
        """The type I (sequential) order used when analysing ``data``.

        Builders (``SplitPlot``, ``RCBD``, ...) always use their textbook
        order, :attr:`terms`.  A generic :class:`Design` has no order of its
        own beyond its strata, so, as a SAS MODEL statement usually does, it
        follows the data: terms sorted by the position among the data's
        columns of their last factor, then by the number of factors, then by
        :attr:`terms`.  (Balanced data give the same sums of squares in any
        order.)

        Parameters
        ----------
        data : DataFrame
            The data to be analysed (only its column order is used).

        Returns
        -------
        list of str
        """
        if self._name is not None:
            return list(self._terms)
        pos = {c: i for i, c in enumerate(getattr(data, "columns", []))}
        if not all(f in pos for t in self._terms for f in split_term(t)):
            return list(self._terms)  # a missing column is reported by the analysis itself
        rank = {t: i for i, t in enumerate(self._terms)}
        return sorted(self._terms, key=lambda t: (max(pos[f] for f in split_term(t)), len(split_term(t)), rank[t]))

    @property
    def factors(self) -> list[str]:
        """Every variable named by the design, in order of first appearance in :attr:`terms`."""
        return list(dict.fromkeys(f for t in self._terms for f in split_term(t)))

    @property
    def covariates(self) -> list[str] | None:
        """Explicit covariates, or ``None`` for the default rule (see the class docstring)."""
        return None if self._covariates is None else list(self._covariates)

    @property
    def kind(self) -> str | None:
        """The builder that made the design (``"SplitPlot"``, ...), or ``None`` for a generic :class:`Design`."""
        return self._name

    @property
    def roles(self) -> dict[str, tuple[str, ...]]:
        """The factors' roles in a builder's design: ``{role: factors}``; empty for a generic design.

        Roles: ``treatment`` (CRD, RCBD, LatinSquare; a tuple for a factorial),
        ``block``, ``row``, ``col``, ``whole``, ``sub``, ``subsub``,
        ``horizontal``, ``vertical``, ``factors`` (Nested, outer to inner).
        """
        return {r: fs for r, fs in self._roles}

    def as_builder(self) -> "Design | None":
        """The builder's design with the same fixed and random terms, or ``None``.

        A builder's design returns itself; a generic design such as
        ``Design(fixed="A*B", random=["block", "block:A"])`` returns
        ``SplitPlot(whole="A", sub="B", block="block")``, which knows its
        factors' roles (used by :meth:`layout`, :meth:`skeleton`).
        """
        if self._name is not None:
            return self
        if self._covariates:
            return None
        return _match_builder(self)

    def is_random(self, term: str) -> bool:
        """Whether ``term`` (any factor order) is a random term of the design."""
        return term_key(term) in {term_key(t) for t in self._random}

    # ---- equality / repr
    def __eq__(self, other) -> bool:
        if not isinstance(other, Design):
            return NotImplemented
        return (self._terms == other._terms and {term_key(t) for t in self._random}
                == {term_key(t) for t in other._random} and self._covariates == other._covariates)

    def __hash__(self) -> int:
        return hash((self._terms, frozenset(map(term_key, self._random)), self._covariates))

    def __repr__(self) -> str:
        head = self._name or "Design"
        return "%s(fixed=%r, random=%r)\n  terms (stratum order): %s" % (
            head, list(self._fixed), list(self._random), ", ".join(self._terms))

    # ---- other views
    def _fixed_rhs(self) -> str:
        """Compact patsy/lme4 right-hand side of the fixed part (``*`` where it is a full factorial)."""
        if not self._fixed:
            return "1"
        fkeys = [term_key(t) for t in self._fixed]
        allf = list(dict.fromkeys(f for t in self._fixed for f in split_term(t)))
        from itertools import combinations
        full = {frozenset(c) for r in range(1, len(allf) + 1) for c in combinations(allf, r)}
        if set(fkeys) == full and len(fkeys) == len(full) and len(allf) > 1:
            return "*".join(allf)
        return " + ".join(self._fixed)

    def formula(self, response: str) -> str:
        """The same model in lme4 syntax.

        Parameters
        ----------
        response : str
            Name of the response column.

        Returns
        -------
        str
            e.g. ``"yield ~ variety*nitro + (1|block) + (1|block:variety)"``;
            a design without fixed terms gives ``"y ~ 1 + (1|batch)"``.
        """
        parts = [self._fixed_rhs()] + ["(1|%s)" % t for t in self._random]
        return "%s ~ %s" % (response, " + ".join(parts))

    def anova(self, data, response: str, ss_type: int = 3):
        """Classical ANOVA with EMS, variance components and F tests (see :func:`vcomp.anova`)."""
        from .classical import anova
        return anova(data, response, self, ss_type=ss_type)

    def lmm(self, data, response: str, reml: bool = True):
        """REML/ML mixed model of the same design: ``vcomp.lmm(self.formula(response), data, reml)``."""
        from .mixed import lmm
        return lmm(self.formula(response), data, reml=reml)

    def simulate(self, levels, components, effects=None, seed=None, reps: int = 1,
                 mean: float = 0.0, response: str = "y"):
        """Simulate a data set on a randomized field plan of this design (see :func:`vcomp.simulate.design_data`)."""
        from .simulate import design_data
        return design_data(self, levels, components, effects=effects, seed=seed, reps=reps, mean=mean,
                           response=response)

    def layout(self, levels, seed=None, reps: int = 1):
        """A randomized field plan: one row per plot (see :func:`vcomp.layout.field_plan`)."""
        from .layout import field_plan
        return field_plan(self, levels, seed=seed, reps=reps)

    def skeleton(self, symbols=None, names=None):
        """The textbook ANOVA table of the design, df and EMS in symbols (see :func:`vcomp.skeleton.skeleton`)."""
        from .skeleton import skeleton
        return skeleton(self, symbols=symbols, names=names)

    def power(self, levels, effects, components, alpha: float = 0.05, nsim: int | None = None,
              ddf: str = "kenward-roger", seed=None, progress: bool | None = None, reps: int = 1, plan=None):
        """Power of the F test of every fixed term, exact or by simulation (see :func:`vcomp.power.power`)."""
        from .power import power
        return power(self, levels, effects, components, alpha=alpha, nsim=nsim, ddf=ddf, seed=seed,
                     progress=progress, reps=reps, plan=plan)

    def crosscheck(self, data, response: str):
        """Method of moments versus REML (see :func:`vcomp.crosscheck`)."""
        from .crosscheck import crosscheck
        return crosscheck(data, response, self)


def _dedupe(terms: Iterable[str]) -> list[str]:
    seen, out = set(), []
    for t in terms:
        if term_key(t) not in seen:
            seen.add(term_key(t))
            out.append(t)
    return out


def _names(x, what: str) -> list[str]:
    if isinstance(x, str):
        x = [x]
    x = list(x)
    if not x or not all(isinstance(v, str) and v.strip() for v in x):
        raise DesignError("%s must be a column name or a list of column names, got %r" % (what, x))
    if len(set(x)) != len(x):
        raise DesignError("%s lists a factor twice: %r" % (what, x))
    return [v.strip() for v in x]


def _factorial(factors: Sequence[str]) -> list[str]:
    return parse_terms("*".join(factors))


def _check_distinct(**roles) -> None:
    seen: dict[str, str] = {}
    for role, names in roles.items():
        for n in names:
            if n in seen:
                raise DesignError("factor %r is used as both %s and %s; each role needs its own column."
                                  % (n, seen[n], role))
            seen[n] = role


# --------------------------------------------------------------------------- builders
def CRD(treatment: str | Sequence[str]) -> Design:
    """Completely randomized design.

    Parameters
    ----------
    treatment : str or list of str
        Treatment factor; a list gives the full factorial.
    """
    tr = _names(treatment, "treatment")
    fx = _factorial(tr)
    return Design(fx, None, covariates=(), _order=fx, _name="CRD",
                  _roles=[("treatment", tr)])


def RCBD(treatment: str | Sequence[str], block: str) -> Design:
    """Randomized complete block design: fixed treatment(s), random blocks.

    Terms: block, treatment (factorial if a list).
    """
    tr = _names(treatment, "treatment")
    (bl,) = _names(block, "block")
    _check_distinct(treatment=tr, block=[bl])
    fx = _factorial(tr)
    return Design(fx, [bl], covariates=(), _order=[bl] + fx, _name="RCBD",
                  _roles=[("treatment", tr), ("block", [bl])])


def LatinSquare(treatment: str | Sequence[str], row: str, col: str) -> Design:
    """Latin square: fixed treatment, random rows and columns. Terms: row, col, treatment."""
    tr = _names(treatment, "treatment")
    (r,) = _names(row, "row")
    (c,) = _names(col, "col")
    _check_distinct(treatment=tr, row=[r], col=[c])
    fx = _factorial(tr)
    return Design(fx, [r, c], covariates=(), _order=[r, c] + fx, _name="LatinSquare",
                  _roles=[("treatment", tr), ("row", [r]), ("col", [c])])


def SplitPlot(whole: str, sub: str, block: str) -> Design:
    """Split-plot in randomized complete blocks.

    Terms: block, whole, block:whole (whole-plot error), sub, whole:sub.
    """
    (w,) = _names(whole, "whole")
    (s,) = _names(sub, "sub")
    (b,) = _names(block, "block")
    _check_distinct(whole=[w], sub=[s], block=[b])
    bw = join_term([b, w])
    return Design([w, s, join_term([w, s])], [b, bw], covariates=(),
                  _order=[b, w, bw, s, join_term([w, s])], _name="SplitPlot",
                  _roles=[("whole", [w]), ("sub", [s]), ("block", [b])])


def SplitSplitPlot(whole: str, sub: str, subsub: str, block: str) -> Design:
    """Split-split-plot in randomized complete blocks.

    Terms: block, whole, block:whole, sub, whole:sub, block:whole:sub, subsub,
    whole:subsub, sub:subsub, whole:sub:subsub.
    """
    (w,) = _names(whole, "whole")
    (s,) = _names(sub, "sub")
    (ss,) = _names(subsub, "subsub")
    (b,) = _names(block, "block")
    _check_distinct(whole=[w], sub=[s], subsub=[ss], block=[b])
    j = join_term
    order = [b, w, j([b, w]), s, j([w, s]), j([b, w, s]), ss, j([w, ss]), j([s, ss]), j([w, s, ss])]
    fixed = [w, s, ss, j([w, s]), j([w, ss]), j([s, ss]), j([w, s, ss])]
    return Design(fixed, [b, j([b, w]), j([b, w, s])], covariates=(), _order=order, _name="SplitSplitPlot",
                  _roles=[("whole", [w]), ("sub", [s]), ("subsub", [ss]), ("block", [b])])


def StripPlot(horizontal: str, vertical: str, block: str) -> Design:
    """Strip-plot (split-block) design.

    Terms: block, horizontal, block:horizontal, vertical, block:vertical, horizontal:vertical.
    """
    (h,) = _names(horizontal, "horizontal")
    (v,) = _names(vertical, "vertical")
    (b,) = _names(block, "block")
    _check_distinct(horizontal=[h], vertical=[v], block=[b])
    j = join_term
    order = [b, h, j([b, h]), v, j([b, v]), j([h, v])]
    return Design([h, v, j([h, v])], [b, j([b, h]), j([b, v])], covariates=(), _order=order, _name="StripPlot",
                  _roles=[("horizontal", [h]), ("vertical", [v]), ("block", [b])])


def Nested(factors: Sequence[str]) -> Design:
    """Fully nested random design (outer to inner): factors[0], factors[0]:factors[1], ...

    The innermost stratum (e.g. repeated tests of one sample) is the residual.
    """
    fs = _names(factors, "factors")
    rd = [join_term(fs[:i + 1]) for i in range(len(fs))]
    return Design(None, rd, covariates=(), _order=rd, _name="Nested",
                  _roles=[("factors", fs)])


# --------------------------------------------------------------------------- builder recognition
#: builder -> (its single-factor roles in call order, whether it takes a list of further factors)
_BUILDERS = {"CRD": ((), True), "RCBD": (("block",), True), "LatinSquare": (("row", "col"), True),
             "SplitPlot": (("whole", "sub", "block"), False),
             "SplitSplitPlot": (("whole", "sub", "subsub", "block"), False),
             "StripPlot": (("horizontal", "vertical", "block"), False)}


def _build(kind: str, singles: Sequence[str], rest: Sequence[str]) -> Design:
    if kind == "CRD":
        return CRD(list(rest))
    if kind == "RCBD":
        return RCBD(list(rest), singles[0])
    if kind == "LatinSquare":
        return LatinSquare(list(rest), *singles)
    return {"SplitPlot": SplitPlot, "SplitSplitPlot": SplitSplitPlot, "StripPlot": StripPlot}[kind](*singles)


def _match_builder(design: Design) -> Design | None:
    """The builder design whose fixed and random term sets equal ``design``'s, or ``None``."""
    from itertools import permutations
    fx = {term_key(t) for t in design.fixed_terms}
    rd = {term_key(t) for t in design.random_terms}
    factors = design.factors
    if not fx:  # Nested: the random terms form a chain f0, f0:f1, ...
        chain = sorted(rd, key=len)
        if all(len(k) == i + 1 for i, k in enumerate(chain)) and all(a < b for a, b in zip(chain, chain[1:])):
            order = [next(iter(chain[0]))] + [next(iter(b - a)) for a, b in zip(chain, chain[1:])]
            return Nested(order)
        return None
    if len(factors) > 8:
        return None
    for kind, (singles, takes_rest) in _BUILDERS.items():
        k = len(singles)
        if len(factors) < k + (1 if takes_rest else 0) or (not takes_rest and len(factors) != k):
            continue
        for combo in permutations(factors, k):
            rest = [f for f in factors if f not in combo]
            try:
                cand = _build(kind, combo, rest)
            except DesignError:
                continue
            if {term_key(t) for t in cand.fixed_terms} == fx and {term_key(t) for t in cand.random_terms} == rd:
                return cand
    return None
