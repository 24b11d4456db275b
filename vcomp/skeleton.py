"""The skeleton ANOVA of a design: sources, df and expected mean squares in symbols, before any data.

The balanced plan of a design is decomposed into orthogonal *atoms*: for a
crossed plan (every builder but the Latin square) one atom per non-empty set
``U`` of factors (plus the replicate "factor" ``n`` when plots are
replicated), of dimension ``prod_{f in U} (x_f - 1)``; the Latin square's
atoms are its rows, columns, treatment effects, its residual ``(t-1)(t-2)``
and the within-cell replicates.  Going through the terms in textbook order,
each term takes the atoms inside its span that no earlier term took; the
residual takes the rest.  Then (Cornfield and Tukey's rules, for the
unrestricted mixed model that Hartley's synthesis computes):

- df of a source: the sum of its atoms' dimensions, printed in textbook form
  (``(r-1)(a-1)``, ``a(r-1)(c-1)``; an interval of atoms ``C ⊆ U ⊆ K``
  sums to ``prod_C (x-1) prod_{K\\C} x``);
- coefficient of ``σ²_j`` (random term ``j``) in its EMS: the number of plots
  per level of ``j`` times the share of the source's df that lies in the
  span of ``j`` (1 or 0 in the textbook designs);
- ``φ²(T)`` for a fixed term ``T`` whose own atom the source holds.

The callee takes the design as a plain object (this module does not import
:mod:`vcomp.design`).

>>> import vcomp
>>> sk = vcomp.SplitPlot(whole="A", sub="C", block="block").skeleton()
>>> sk.table.loc["Residual", "df"]
'a(r-1)(c-1)'
>>> sk.table.loc["block", "ems"]
'σ²_ε + c σ²_block:A + a c σ²_block'
"""
from __future__ import annotations

import itertools
import string
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .terms import split_term, term_key
from ._errors import DesignError
from .layout import check_level_keys, check_reps, level_labels, plan_structure
from .tables import TableMixin

__all__ = ["Skeleton", "skeleton", "default_symbols"]

#: the replicate "factor" (plots or sub-samples per cell) and its internal symbol, printed ``n``
REPS = "\x00reps"
REPS_SYMBOL = "\x00n"

_GREEK = {"α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\varepsilon", "ζ": r"\zeta",
          "η": r"\eta", "θ": r"\theta", "κ": r"\kappa", "λ": r"\lambda", "μ": r"\mu", "ν": r"\nu", "ξ": r"\xi",
          "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau", "φ": r"\phi", "χ": r"\chi", "ψ": r"\psi",
          "ω": r"\omega"}

# A factor of a product is (monomial, offset): the symbols multiplied, plus an integer ("(t-2)" = (("t",), -2)).
Factor = tuple[tuple[str, ...], int]
Product = tuple[Factor, ...]


@dataclass(frozen=True)
class _Atom:
    """One orthogonal piece of the plan's space: the factors it varies over and its dimension."""

    factors: frozenset
    dim: Product


@dataclass(frozen=True)
class _Structure:
    """The atoms of a balanced plan, with the rule for 'atom inside the span of a term'."""

    atoms: tuple
    crossed: bool                 # atoms are the non-empty subsets of `universe` (interval merging applies)
    universe: tuple               # factors in display order (REPS last)
    cells: dict                   # term key -> number of cells (a Product)
    plots: Product                # number of plots

    def inside(self, atom: _Atom, key: frozenset) -> bool:
        return atom.factors <= key


def _sym_value(sym: str, values: Mapping[str, float]) -> float:
    return float(values[sym])


def _product_value(p: Product, values: Mapping[str, float]) -> float:
    out = 1.0
    for mono, off in p:
        out *= np.prod([_sym_value(s, values) for s in mono]) + off
    return float(out)


def default_symbols(design, replicated: bool, given: Mapping[str, str] | None = None) -> dict[str, str]:
    """The skeleton's ``{factor: letter}``: lower-case first letters, ``r`` for a builder's block factor.

    Clashes are resolved by the next unused letter; ``n`` is kept for the
    replicates when ``replicated``; a Latin square's rows and columns share
    the letter of its side (the treatment's letter for one treatment factor).
    Entries of ``given`` are kept as they are.
    """
    kind, roles = plan_structure(design)
    factors = design.factors
    given = dict(given or {})
    used = set(given.values()) | ({"n"} if replicated else set())
    out: dict[str, str] = {}

    def take(first: str) -> str:
        letters = string.ascii_lowercase
        start = letters.index(first) if first in letters else 0
        for k in range(26):
            c = letters[(start + k) % 26]
            if c not in used:
                used.add(c)
                return c
        raise DesignError("more than 26 factors: give the skeleton's symbols=... yourself.")  # pragma: no cover

    def first_letter(name: str) -> str:
        for ch in name.lower():
            if ch in string.ascii_lowercase:
                return ch
        return "x"

    order = list(factors)
    if "block" in roles:
        (b,) = roles["block"]
        order.remove(b)
        order.insert(0, b)
    for f in order:
        if f in given:
            out[f] = given[f]
        elif kind == "LatinSquare" and f in roles["row"] + roles["col"]:
            continue
        elif "block" in roles and f == roles["block"][0]:
            out[f] = take("r")
        else:
            out[f] = take(first_letter(f))
    if kind == "LatinSquare":
        trt = list(roles["treatment"])
        side = [given[f] for f in roles["row"] + roles["col"] if f in given]
        if len(trt) == 1:
            side.append(out[trt[0]])
        if len(set(side)) > 1:
            raise DesignError("a Latin square has one number of levels for its rows, columns%s: give them the "
                              "same symbol (got %s)." % (" and treatments" if len(trt) == 1 else "",
                                                         ", ".join(sorted(set(side)))))
        letter = side[0] if side else take("t")
        for f in roles["row"] + roles["col"]:
            out[f] = letter
    return {f: out[f] for f in factors}


def _given_symbols(design, symbols) -> dict[str, str]:
    if symbols is None:
        return {}
    if not isinstance(symbols, Mapping):
        raise DesignError("symbols must be a dict {factor: letter}, got %r" % type(symbols).__name__)
    unknown = [k for k in symbols if k not in design.factors]
    if unknown:
        raise DesignError("symbols names %s, which %s not a factor of the design (%s)"
                          % (", ".join(map(repr, unknown)), "is" if len(unknown) == 1 else "are",
                             ", ".join(design.factors)))
    bad = [k for k, v in symbols.items() if not isinstance(v, str) or not v.strip() or any(c in v for c in "()+-: ")]
    if bad:
        raise DesignError("symbols[%r] must be a letter or a short name without spaces, brackets or operators, "
                          "got %r" % (bad[0], symbols[bad[0]]))
    return {k: v.strip() for k, v in symbols.items()}


def _crossed_atoms(design, sym: dict, replicated: bool) -> _Structure:
    universe = list(design.factors) + ([REPS] if replicated else [])
    s = dict(sym, **{REPS: REPS_SYMBOL})
    atoms = []
    for k in range(1, len(universe) + 1):
        for combo in itertools.combinations(universe, k):
            atoms.append(_Atom(frozenset(combo), tuple(((s[f],), -1) for f in combo)))
    cells = {term_key(t): tuple(((s[f],), 0) for f in split_term(t)) for t in design.terms}
    plots = tuple(((s[f],), 0) for f in universe)
    return _Structure(tuple(atoms), True, tuple(universe), cells, plots)


def _latin_atoms(design, roles: dict, sym: dict, replicated: bool) -> _Structure:
    (row,), (col,) = roles["row"], roles["col"]
    trt = list(roles["treatment"])
    t = sym[row]
    atoms = [_Atom(frozenset([row]), (((t,), -1),)), _Atom(frozenset([col]), (((t,), -1),))]
    for k in range(1, len(trt) + 1):
        for combo in itertools.combinations(trt, k):
            atoms.append(_Atom(frozenset(combo), tuple(((sym[f],), -1) for f in combo)))
    atoms.append(_Atom(frozenset([row, col] + trt), (((t,), -1), ((t,), -2))))
    if replicated:
        atoms.append(_Atom(frozenset([REPS]), (((t,), 0), ((t,), 0), ((REPS_SYMBOL,), -1))))
    cells = {term_key(row): (((t,), 0),), term_key(col): (((t,), 0),)}
    for term in design.terms:
        if term_key(term) not in cells:
            cells[term_key(term)] = tuple(((sym[f],), 0) for f in split_term(term))
    plots = (((t,), 0), ((t,), 0)) + (((REPS_SYMBOL,), 0),) if replicated else (((t,), 0), ((t,), 0))
    return _Structure(tuple(atoms), False, tuple([row, col] + trt + ([REPS] if replicated else [])), cells, plots)


def _atoms_of(design, sym: dict, replicated: bool) -> _Structure:
    kind, roles = plan_structure(design)
    if kind == "LatinSquare":
        return _latin_atoms(design, roles, sym, replicated)
    return _crossed_atoms(design, sym, replicated)


def _source_atoms(design, st: _Structure) -> dict[str, list[_Atom]]:
    """Each source's atoms: a term takes the atoms in its span not taken by an earlier term."""
    taken: set = set()
    out: dict[str, list[_Atom]] = {}
    for term in design.terms:
        key = term_key(term)
        mine = [a for a in st.atoms if a not in taken and st.inside(a, key)]
        taken.update(mine)
        out[term] = mine
    out["Residual"] = [a for a in st.atoms if a not in taken]
    return out


def _needs_reps(design) -> bool:
    """Whether the residual is empty without replicates (CRD, Nested: the residual is within cells)."""
    sym = {f: f for f in design.factors}
    st = _atoms_of(design, sym, replicated=False)
    return not _source_atoms(design, st)["Residual"]


# ------------------------------------------------------------------ text of products and sums
def _mono_text(syms: Sequence[str], sep: str) -> str:
    out = []
    for s in dict.fromkeys(syms):
        k = list(syms).count(s)
        out.append(("n" if s == REPS_SYMBOL else s) + ("" if k == 1 else "²" if k == 2 else "³" if k == 3 else "^%d" % k))
    return sep.join(out)


def _product_text(p: Product, order: Sequence[str], sep: str) -> str:
    rank = {s: i for i, s in enumerate(order)}
    plain = sorted([s for mono, off in p if off == 0 for s in mono], key=lambda s: rank.get(s, len(rank)))
    rest = sorted([(mono, off) for mono, off in p if off != 0], key=lambda f: [rank.get(s, len(rank)) for s in f[0]])
    parts = []
    for mono, off in rest:
        parts.append("%s%s%d" % (_mono_text(mono, sep), "+" if off > 0 else "-", abs(off)))
    head = _mono_text(plain, sep)
    if not parts:
        return head or "1"
    if not head and len(parts) == 1:
        return parts[0]
    return head + "".join("(%s)" % x for x in parts)


def _intervals(atoms: list[_Atom], universe: Sequence[str]) -> list[tuple[frozenset, frozenset]]:
    """Cover a crossed family of atoms by disjoint intervals ``C ⊆ U ⊆ K`` (greedy, in universe order)."""
    rank = {f: i for i, f in enumerate(universe)}
    remaining = {a.factors for a in atoms}
    out = []
    while remaining:
        C = min(remaining, key=lambda U: (len(U), sorted(rank[f] for f in U)))
        K = set(C)
        for f in universe:
            if f in K:
                continue
            extra = (K | {f}) - C
            if all(C | frozenset(sub) in remaining for r in range(len(extra) + 1)
                   for sub in itertools.combinations(sorted(extra, key=rank.get), r)):
                K.add(f)
        out.append((C, frozenset(K)))
        for r in range(len(K - C) + 1):
            for sub in itertools.combinations(sorted(K - C, key=rank.get), r):
                remaining.discard(C | frozenset(sub))
    return out


def _sum_products(atoms: list[_Atom], st: _Structure, sym: dict) -> list[Product]:
    """The atoms' dimensions as few products (textbook form)."""
    if not st.crossed:
        return [a.dim for a in atoms]
    s = dict(sym, **{REPS: REPS_SYMBOL})
    out = []
    for C, K in _intervals(atoms, st.universe):
        minus = [((s[f],), -1) for f in st.universe if f in C]
        plain = [((s[f],), 0) for f in st.universe if f in K - C]
        out.append(tuple(plain + minus))
    return out


def _sum_text(products: list[Product], order: Sequence[str], sep: str) -> str:
    return " + ".join(_product_text(p, order, sep) for p in products) or "0"


def _per_cell(num: Product, den: Product) -> Product | None:
    """``num / den`` when ``den``'s factors are all among ``num``'s (plots per cell), else ``None``."""
    rest = list(num)
    for f in den:
        if f not in rest:
            return None
        rest.remove(f)
    return tuple(rest)


# ------------------------------------------------------------------ result
@dataclass(frozen=True, repr=False, eq=False)
class Skeleton(TableMixin):
    """The textbook ANOVA table of a design before any data (API.md, "Field layouts and power").

    Attributes
    ----------
    table : DataFrame
        index = the design's terms (textbook order) then ``"Residual"``;
        columns ``df`` and ``ems`` (text in the symbols).
    symbols : dict
        ``{factor: letter}``; replicates per cell, when the residual needs
        them (CRD, Nested), are ``n``.
    replicated : bool
        Whether the table uses ``n`` (replicates per cell).
    """

    table: pd.DataFrame
    symbols: dict
    replicated: bool
    design: object = field(repr=False)
    names: dict = field(default_factory=dict, repr=False)
    latex: pd.DataFrame = field(default=None, repr=False)

    def evaluate(self, levels: Mapping[str, object], reps: int = 1) -> pd.DataFrame:
        """The skeleton in numbers for a balanced plan.

        Parameters
        ----------
        levels : mapping
            ``{factor: number of levels or list of labels}`` for every factor
            (a Latin square's rows and columns may be left out: they have as
            many levels as there are treatments).
        reps : int
            Plots or sub-samples per cell (the ``n`` of a CRD or nested design).

        Returns
        -------
        DataFrame
            index as :attr:`table`; columns ``df`` then one per random term
            and ``"Residual"``: the df and the EMS coefficients, equal to
            ``AnovaResult.table.df`` and ``AnovaResult.ems`` of a balanced
            data set on the plan.
        """
        design = self.design
        values = _symbol_values(design, self.symbols, levels, reps)
        st = _atoms_of(design, self.symbols, replicated=True)
        claims = _source_atoms(design, st)
        random = [t for t in design.terms if design.is_random(t)]
        nplots = _product_value(st.plots, values)
        rows = []
        for src, atoms in claims.items():
            dims = np.array([_product_value(a.dim, values) for a in atoms])
            df = float(dims.sum())
            row = [int(round(df))]
            for r in random:
                key = term_key(r)
                per = nplots / _product_value(st.cells[key], values)
                inside = float(dims[[st.inside(a, key) for a in atoms]].sum()) if len(atoms) else 0.0
                row.append(per * inside / df if df > 0 else np.nan)
            row.append(1.0 if df > 0 else np.nan)
            rows.append(row)
        out = pd.DataFrame(rows, index=pd.Index(list(claims), name="source"), columns=["df"] + random + ["Residual"])
        if out.loc["Residual", "df"] <= 0:
            raise DesignError("no residual degrees of freedom with reps=%d: %s needs replicates; give reps=2 or more."
                              % (reps, design.kind or "this design"))
        return out

    def _blocks(self) -> list:
        tab = self.table.rename(columns={"df": "df", "ems": "Expected mean square"})
        kw = {"index_name": "Source"}
        if self.latex is not None:
            kw["latex_frame"] = self.latex
        legend = ", ".join("%s = levels of %s" % (s, " = ".join(fs)) for s, fs in _symbol_legend(self.symbols).items())
        if self.replicated:
            legend += ", n = replicates per cell"
        return [("Skeleton ANOVA of %s (before data)" % (self.design.kind or "the design"), tab, kw),
                "Symbols: %s." % legend]


def _symbol_legend(symbols: dict) -> dict:
    out: dict = {}
    for f, s in symbols.items():
        out.setdefault(s, []).append(f)
    return out


def _symbol_values(design, symbols: dict, levels, reps) -> dict:
    if not isinstance(levels, Mapping):
        raise DesignError("levels must be a dict {factor: number of levels}, got %r" % type(levels).__name__)
    if isinstance(reps, (bool, np.bool_)) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise DesignError("reps (replicates per cell) must be a positive integer, got %r" % (reps,))
    kind, roles = plan_structure(design)
    unknown = [k for k in levels if k not in design.factors]
    if unknown:
        raise DesignError("levels names %s, which %s not a factor of the design (%s)"
                          % (", ".join(map(repr, unknown)), "is" if len(unknown) == 1 else "are",
                             ", ".join(design.factors)))
    counts = {f: len(level_labels(f, v)) for f, v in levels.items()}
    if kind == "LatinSquare":
        trt = list(roles["treatment"])
        if all(f in counts for f in trt):
            t = int(np.prod([counts[f] for f in trt]))
            for f in roles["row"] + roles["col"]:
                counts.setdefault(f, t)
                if counts[f] != t:
                    raise DesignError("a Latin square has as many rows and columns as treatments (%d): got "
                                      "levels[%r] = %d." % (t, f, counts[f]))
    missing = [f for f in design.factors if f not in counts]
    if missing:
        raise DesignError("levels must give the number of levels of every factor; missing: %s"
                          % ", ".join(map(repr, missing)))
    few = [f for f, c in counts.items() if c < 2]
    if few:
        raise DesignError("factor %r needs at least 2 levels, got %d." % (few[0], counts[few[0]]))
    values: dict = {REPS_SYMBOL: int(reps)}
    for f in design.factors:
        s = symbols[f]
        if s in values and values[s] != counts[f]:
            raise DesignError("factors sharing the symbol %r must have the same number of levels (%s has %d, "
                              "another %d)." % (s, f, counts[f], values[s]))
        values[s] = counts[f]
    return values


def _ems_texts(design, st: _Structure, claims: dict, sym: dict, names: dict, latex: bool) -> dict[str, str]:
    random = [t for t in design.terms if design.is_random(t)]
    fixed = [t for t in design.terms if not design.is_random(t)]
    order = list(dict.fromkeys([sym[f] for f in design.factors] + [REPS_SYMBOL]))
    sep = _product_sep(sym)
    resid = names.get("Residual", "ε")
    out = {}
    for src, atoms in claims.items():
        parts = [_sigma_text(resid, latex)]
        total = {a.factors for a in atoms}
        for r in reversed(random):
            key = term_key(r)
            ins = [a for a in atoms if st.inside(a, key)]
            if not ins:
                continue
            per = _per_cell(st.plots, st.cells[key])
            coef = _product_text(per, order, " ") if per is not None else "?"
            if len(ins) < len(atoms):  # part of the source's df inside the term's span: a ratio of dimensions
                coef = "%s (%s)/(%s)" % (coef, _sum_text(_sum_products(ins, st, sym), order, sep),
                                         _sum_text(_sum_products(atoms, st, sym), order, sep))
            coef = "" if coef == "1" else coef + " "
            if latex:
                coef = coef.replace(" ", r"\,") if coef else ""
            parts.append(coef + _sigma_text(names.get(r, r), latex))
        for f in fixed:
            if term_key(f) in total:
                parts.append(_phi_text(names.get(f, f), latex))
        out[src] = " + ".join(parts)
    return out


def _product_sep(sym: dict) -> str:
    return "·" if any(len(s) > 1 for s in sym.values()) else ""


def _tex_name(name: str) -> str:
    if name in _GREEK:
        return _GREEK[name]
    if len(name) == 1 and name.isascii() and name.isalpha():
        return name
    return r"\mathrm{%s}" % name.replace("_", r"\_")


def _sigma_text(name: str, latex: bool) -> str:
    return r"\sigma^2_{%s}" % _tex_name(name) if latex else "σ²_%s" % name


def _phi_text(name: str, latex: bool) -> str:
    return r"\phi^2(%s)" % _tex_name(name) if latex else "φ²(%s)" % name


def _tex_expr(text: str) -> str:
    """A df text (``a(r-1)(c-1)``, ``t²(n-1)``) in LaTeX math."""
    return text.replace("²", "^{2}").replace("³", "^{3}").replace("·", r"\cdot ")


def _display_names(design, names) -> dict:
    if names is None:
        return {}
    if not isinstance(names, Mapping):
        raise DesignError("names must be a dict {term: display name}, got %r" % type(names).__name__)
    keys = {term_key(t): t for t in design.terms}
    out = {}
    for k, v in names.items():
        if k == "Residual":
            out[k] = str(v)
        elif isinstance(k, str) and term_key(k) in keys:
            out[keys[term_key(k)]] = str(v)
        else:
            raise DesignError("names[%r]: not a term of the design (%s) or 'Residual'" % (k, ", ".join(design.terms)))
    return out


def skeleton(design, symbols: Mapping[str, str] | None = None, names: Mapping[str, str] | None = None) -> Skeleton:
    """The textbook ANOVA table of ``design`` before any data.

    Parameters
    ----------
    design : Design
    symbols : mapping, optional
        ``{factor: letter}``; by default the lower-case first letter of each
        factor, ``r`` for a builder's block factor, clashes resolved by the
        next unused letter (see :func:`default_symbols`).
    names : mapping, optional
        ``{term or "Residual": name}`` used in ``σ²_<name>`` and
        ``φ²(<name>)``; by default the term itself and ``ε`` for the residual
        (lecture notes: ``{"block": "b", "block:A": "w", "A": "α"}``).

    Returns
    -------
    Skeleton
    """
    if design.covariates:
        raise DesignError("the design has covariate(s) %s; a skeleton ANOVA is for designs made of factors."
                          % ", ".join(map(repr, design.covariates)))
    replicated = _needs_reps(design)
    given = _given_symbols(design, symbols)
    if replicated and "n" in given.values():
        raise DesignError("the symbol 'n' is kept for the replicates per cell of %s; give the factor another letter."
                          % (design.kind or "this design"))
    sym = default_symbols(design, replicated, given)
    nm = _display_names(design, names)
    st = _atoms_of(design, sym, replicated)
    claims = _source_atoms(design, st)
    order = list(dict.fromkeys([sym[f] for f in design.factors] + [REPS_SYMBOL]))
    sep = _product_sep(sym)
    df = {s: _sum_text(_sum_products(a, st, sym), order, sep) for s, a in claims.items()}
    ems = _ems_texts(design, st, claims, sym, nm, latex=False)
    ems_tex = _ems_texts(design, st, claims, sym, nm, latex=True)
    index = pd.Index(list(claims), name="source")
    table = pd.DataFrame({"df": [df[s] for s in index], "ems": [ems[s] for s in index]}, index=index)
    latex = pd.DataFrame({"df": ["$%s$" % _tex_expr(df[s]) for s in index],
                          "Expected mean square": ["$%s$" % ems_tex[s] for s in index]},
                         index=pd.Index([s.replace("_", r"\_") for s in index], name="Source"))
    return Skeleton(table=table, symbols=sym, replicated=replicated, design=design, names=nm, latex=latex)
