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

from itertools import combinations
from typing import Iterable, Sequence, Union

from ._errors import DesignError, FormulaError
from .terms import ModelFormula, RandomSpec, Term, join_term, parse_term_spec, split_term, term_key

__all__ = ["Design", "CRD", "RCBD", "LatinSquare", "SplitPlot", "SplitSplitPlot", "StripPlot",
           "Nested", "parse_terms"]

TermSpec = Union[str, Sequence[str], None]


def parse_terms(spec: TermSpec) -> list[str]:
    """Expand a term specification into a list of terms ``"a:b"``.

    Parameters
    ----------
    spec : str, list of str or None
        A right-hand side (``"A*B"``, ``"rep + gen"``, ``"a + b + a:b"``, ``"A/B"``,
        ``"(A+B+C)^2"``; odd names quoted as ``Q("N-rate")``) or a list of terms
        (``["block", "block:N-rate"]``, any column names).

    Returns
    -------
    list of str
        Distinct terms (order-free identity), stably sorted by the number of factors.
    """
    try:
        return [t.name for t in parse_term_spec(spec)]
    except FormulaError as exc:
        raise DesignError(str(exc)) from None


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
        Variables of fixed terms to treat as numeric covariates (ANCOVA).  Every other
        variable is a factor whatever its dtype -- strings, categoricals, integers,
        floats, booleans (SAS's CLASS statement); random terms are made of factors.

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
        rd = _dedupe(parse_terms(random))
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
        if isinstance(covariates, str):
            covariates = [covariates]
        cov = tuple(str(c) for c in (covariates or ()))
        rvars = {f for t in rd for f in split_term(t)}
        bad = [c for c in cov if c in rvars]
        if bad:
            raise DesignError("covariate(s) %s appear in a random term; random terms must be made of factors"
                              % ", ".join(map(repr, bad)))
        unknown = [c for c in cov if c not in {f for t in fx for f in split_term(t)}]
        if unknown:
            raise DesignError("covariate(s) %s are not variables of a fixed term" % ", ".join(map(repr, unknown)))
        object.__setattr__(self, "_covariates", cov)
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
    def covariates(self) -> list[str]:
        """The numeric covariates (every other variable is a factor)."""
        return list(self._covariates)

    def model_formula(self, response: str) -> ModelFormula:
        """The design as a parsed model (the same object an lme4 formula parses to).

        Fixed terms in R's order (by degree), random terms as ``(1 | term)``; every variable but
        the covariates is a factor.  The mixed path fits this directly (no formula string).
        """
        fixed = sorted((Term(tuple(split_term(t))) for t in self._fixed), key=lambda t: t.degree)
        random = tuple(RandomSpec(True, (), Term(tuple(split_term(t)))) for t in self._random)
        cov = frozenset(self._covariates)
        return ModelFormula(str(response), True, tuple(fixed), random, self.formula(response),
                            frozenset(self.factors) - cov, cov)

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
        """Compact lme4 right-hand side of the fixed part (``*`` where it is a full factorial)."""
        if not self._fixed:
            return "1"
        fkeys = [term_key(t) for t in self._fixed]
        allf = list(dict.fromkeys(f for t in self._fixed for f in split_term(t)))
        full = {frozenset(c) for r in range(1, len(allf) + 1) for c in combinations(allf, r)}
        if set(fkeys) == full and len(fkeys) == len(full) and len(allf) > 1:
            return "*".join(_quote(f) for f in allf)
        return " + ".join(_quote_term(t) for t in self._fixed)

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
        parts = [self._fixed_rhs()] + ["(1|%s)" % _quote_term(t) for t in self._random]
        return "%s ~ %s" % (_quote(str(response)), " + ".join(parts))

    def anova(self, data, response: str, ss_type: int = 3):
        """Classical ANOVA with EMS, variance components and F tests (see :func:`vcomp.anova`)."""
        from .classical import anova
        return anova(data, response, self, ss_type=ss_type)

    def lmm(self, data, response: str, reml: bool = True, **options):
        """REML/ML mixed model of the same design (the design's factors are factors whatever their dtype).

        Same as ``vcomp.lmm(self.formula(response), data, reml)`` for string-coded factors; the
        design's parsed terms are fitted directly.  ``options`` as :func:`vcomp.lmm`.
        """
        from .mixed import fit_design
        return fit_design(self, data, response, reml, **options)

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


_PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


def _quote(name: str) -> str:
    """A column name as an lme4 formula writes it (backticks for odd names)."""
    plain = name and all(c in _PLAIN or c.isalpha() for c in name) and not name[0].isdigit() \
        and name not in ("Intercept", "C", "I", "Q", "np")
    return name if plain or ("(" in name and name.endswith(")")) else "`%s`" % name


def _quote_term(term: str) -> str:
    return ":".join(_quote(f) for f in split_term(term))


def _names(x, what: str, one: bool = False) -> list[str]:
    if isinstance(x, (str, int)):
        x = [x]
    try:
        x = list(x)
    except TypeError:
        raise DesignError("%s must be a column name or a list of column names, got %r" % (what, x)) from None
    if not x or not all(isinstance(v, (str, int)) and str(v).strip() for v in x):
        raise DesignError("%s must be a column name or a list of column names, got %r" % (what, x))
    x = [str(v).strip() for v in x]
    if len(set(x)) != len(x):
        raise DesignError("%s lists a factor twice: %r" % (what, x))
    if one and len(x) != 1:
        raise DesignError("%s must be one column name, got %d: %r (for several whole-plot factors use "
                          "vcomp.Design(fixed=..., random=[...]))" % (what, len(x), x))
    return x


def _factorial(factors: Sequence[str]) -> list[str]:
    return [t.name for t in parse_term_spec([tuple(c) for r in range(1, len(factors) + 1)
                                              for c in combinations(factors, r)])]


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
    return Design(fx, None, _order=fx, _name="CRD",
                  _roles=[("treatment", tr)])


def RCBD(treatment: str | Sequence[str], block: str) -> Design:
    """Randomized complete block design: fixed treatment(s), random blocks.

    Terms: block, treatment (factorial if a list).
    """
    tr = _names(treatment, "treatment")
    (bl,) = _names(block, "block", one=True)
    _check_distinct(treatment=tr, block=[bl])
    fx = _factorial(tr)
    return Design(fx, [bl], _order=[bl] + fx, _name="RCBD",
                  _roles=[("treatment", tr), ("block", [bl])])


def LatinSquare(treatment: str | Sequence[str], row: str, col: str) -> Design:
    """Latin square: fixed treatment, random rows and columns. Terms: row, col, treatment."""
    tr = _names(treatment, "treatment")
    (r,) = _names(row, "row", one=True)
    (c,) = _names(col, "col", one=True)
    _check_distinct(treatment=tr, row=[r], col=[c])
    fx = _factorial(tr)
    return Design(fx, [r, c], _order=[r, c] + fx, _name="LatinSquare",
                  _roles=[("treatment", tr), ("row", [r]), ("col", [c])])


def SplitPlot(whole: str, sub: str, block: str) -> Design:
    """Split-plot in randomized complete blocks.

    Terms: block, whole, block:whole (whole-plot error), sub, whole:sub.
    """
    (w,) = _names(whole, "whole", one=True)
    (s,) = _names(sub, "sub", one=True)
    (b,) = _names(block, "block", one=True)
    _check_distinct(whole=[w], sub=[s], block=[b])
    bw = join_term([b, w])
    return Design([w, s, join_term([w, s])], [b, bw],
                  _order=[b, w, bw, s, join_term([w, s])], _name="SplitPlot",
                  _roles=[("whole", [w]), ("sub", [s]), ("block", [b])])


def SplitSplitPlot(whole: str, sub: str, subsub: str, block: str) -> Design:
    """Split-split-plot in randomized complete blocks.

    Terms: block, whole, block:whole, sub, whole:sub, block:whole:sub, subsub,
    whole:subsub, sub:subsub, whole:sub:subsub.
    """
    (w,) = _names(whole, "whole", one=True)
    (s,) = _names(sub, "sub", one=True)
    (ss,) = _names(subsub, "subsub", one=True)
    (b,) = _names(block, "block", one=True)
    _check_distinct(whole=[w], sub=[s], subsub=[ss], block=[b])
    j = join_term
    order = [b, w, j([b, w]), s, j([w, s]), j([b, w, s]), ss, j([w, ss]), j([s, ss]), j([w, s, ss])]
    fixed = [w, s, ss, j([w, s]), j([w, ss]), j([s, ss]), j([w, s, ss])]
    return Design(fixed, [b, j([b, w]), j([b, w, s])], _order=order, _name="SplitSplitPlot",
                  _roles=[("whole", [w]), ("sub", [s]), ("subsub", [ss]), ("block", [b])])


def StripPlot(horizontal: str, vertical: str, block: str) -> Design:
    """Strip-plot (split-block) design.

    Terms: block, horizontal, block:horizontal, vertical, block:vertical, horizontal:vertical.
    """
    (h,) = _names(horizontal, "horizontal", one=True)
    (v,) = _names(vertical, "vertical", one=True)
    (b,) = _names(block, "block", one=True)
    _check_distinct(horizontal=[h], vertical=[v], block=[b])
    j = join_term
    order = [b, h, j([b, h]), v, j([b, v]), j([h, v])]
    return Design([h, v, j([h, v])], [b, j([b, h]), j([b, v])], _order=order, _name="StripPlot",
                  _roles=[("horizontal", [h]), ("vertical", [v]), ("block", [b])])


def Nested(factors: Sequence[str]) -> Design:
    """Fully nested random design (outer to inner): factors[0], factors[0]:factors[1], ...

    The innermost stratum (e.g. repeated tests of one sample) is the residual.
    """
    fs = _names(factors, "factors")
    rd = [join_term(fs[:i + 1]) for i in range(len(fs))]
    return Design(None, rd, _order=rd, _name="Nested",
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
