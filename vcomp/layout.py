"""Randomized field plans (SAS PROC PLAN, agricolae's ``design.*``).

:func:`field_plan` lays out a design's plots in field order with the
design's randomization restrictions (shared/notes/power-and-layout.md):

============== ==============================================================
builder        plan
============== ==============================================================
CRD            every treatment combination ``reps`` times, in random order
RCBD           blocks contiguous, treatments randomized within each block
LatinSquare    t x t cells (row-major); a cyclic square with rows, columns
               and treatment labels randomly permuted
SplitPlot      blocks, then whole plots (randomized within blocks), then
               sub-plots (randomized within whole plots), each contiguous
SplitSplitPlot one level further (sub-sub-plots within sub-plots)
StripPlot      within each block, horizontal strips in a random order, each
               crossed by the vertical strips in one random order per block
Nested         every combination in order (no randomization)
============== ==============================================================

A generic :class:`~vcomp.Design` is laid out as the builder with the same
terms (:meth:`~vcomp.Design.as_builder`); otherwise every combination of
its factors appears ``reps`` times, the treatment factors (those of fixed
terms) randomized within the cells of the blocking factors (those only in
random terms).  Sub-samples (``reps`` > 1) of a split-plot, strip-plot,
Latin square or nested design are contiguous rows of the same plot; in a CRD
and an RCBD (and the generic plan) they are further randomized plots.

The callee takes the design as a plain object (this module does not import
:mod:`vcomp.design`).

>>> import vcomp
>>> plan = vcomp.RCBD(treatment="trt", block="block").layout({"trt": 3, "block": 2}, seed=1)
>>> list(plan.columns), len(plan)
(['plot', 'block', 'trt'], 6)
"""
from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .terms import split_term
from ._errors import DesignError

__all__ = ["field_plan", "level_labels", "plan_structure", "random_generator", "check_level_keys", "check_reps"]


def level_labels(factor: str, spec) -> list[str]:
    """The labels of a factor's levels from ``levels[factor]``.

    Parameters
    ----------
    factor : str
        The factor's name.
    spec : int or sequence
        A number of levels ``n`` (labels ``f"{factor}{i}"``, i = 1..n,
        zero-padded to a common width: ``"trt01"`` ... ``"trt12"``) or the
        labels themselves (used as strings).

    Returns
    -------
    list of str
    """
    if isinstance(spec, (bool, np.bool_)):
        raise DesignError("levels[%r] must be a number of levels or a list of labels, got %r" % (factor, spec))
    if isinstance(spec, (int, np.integer)):
        if spec < 1:
            raise DesignError("levels[%r] must be a positive number of levels, got %r" % (factor, spec))
        width = len(str(int(spec)))
        return ["%s%0*d" % (factor, width, i + 1) for i in range(int(spec))]
    if isinstance(spec, str) or not hasattr(spec, "__iter__"):
        raise DesignError("levels[%r] must be a number of levels or a list of labels, got %r" % (factor, spec))
    labels = [str(s) for s in spec]
    if not labels:
        raise DesignError("levels[%r] is empty; give at least one label." % factor)
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise DesignError("levels[%r] repeats the label(s) %s; each level needs its own label."
                          % (factor, ", ".join(map(repr, dup))))
    return labels


def random_generator(seed) -> np.random.Generator:
    """numpy Generator from an integer seed, ``None`` (fresh entropy) or a Generator (returned as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise DesignError("seed must be an integer, None or a numpy Generator, got %r" % (seed,)) from exc


def plan_structure(design):
    """The builder structure that lays out ``design``: ``(kind, roles)``, or ``(None, {})``.

    ``kind`` is a builder's name (``"SplitPlot"``) and ``roles`` its
    ``{role: factors}`` (see :attr:`vcomp.Design.roles`); a generic design
    uses the builder with the same terms, if any.
    """
    b = design.as_builder()
    if b is None:
        return None, {}
    return b.kind, b.roles


def check_level_keys(design, levels) -> None:
    """Raise :class:`DesignError` unless ``levels`` is a mapping whose keys are factors of ``design``."""
    if not isinstance(levels, Mapping):
        raise DesignError("levels must be a dict {factor: number of levels or list of labels}, got %r"
                          % type(levels).__name__)
    unknown = [k for k in levels if k not in design.factors]
    if unknown:
        raise DesignError("levels names %s, which %s not a factor of the design (%s)"
                          % (", ".join(map(repr, unknown)), "is" if len(unknown) == 1 else "are",
                             ", ".join(design.factors)))


def _plan_levels(design, levels) -> dict[str, list[str]]:
    check_level_keys(design, levels)
    if design.covariates:
        raise DesignError("the design has covariate(s) %s, which have no levels to lay out; a field plan "
                          "needs a design made of factors." % ", ".join(map(repr, design.covariates)))
    factors = design.factors
    missing = [f for f in factors if f not in levels]
    if missing:
        raise DesignError("levels must give the number of levels (or the labels) of every factor of the design "
                          "(%s); missing: %s" % (", ".join(factors), ", ".join(map(repr, missing))))
    if "plot" in factors:
        raise DesignError("the design has a factor named 'plot', which clashes with the plan's plot-number "
                          "column; rename that factor (e.g. 'mainplot').")
    for f in factors:  # a count too large for any field is refused before labels are made
        spec = levels[f]
        if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool) and spec > MAX_PLOTS:
            raise DesignError("levels[%r] = %d is more levels than any field trial has (at most %d plots)"
                              % (f, spec, MAX_PLOTS))
    labs = {f: level_labels(f, levels[f]) for f in factors}
    size = float(np.prod([float(len(v)) for v in labs.values()]))
    if size > MAX_PLOTS:
        raise DesignError("the plan would have %.3g plots (%s); vcomp lays out at most %d. Check the levels."
                          % (size, " x ".join("%d %s" % (len(v), f) for f, v in labs.items()), MAX_PLOTS))
    return labs


#: largest plan :func:`field_plan` builds (and :func:`vcomp.simulate.design_data` simulates)
MAX_PLOTS = 2_000_000


def check_reps(reps) -> int:
    """``reps`` as an int, or :class:`DesignError` unless it is a positive integer."""
    if isinstance(reps, (bool, np.bool_)) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise DesignError("reps (plots or sub-samples per cell) must be a positive integer, got %r" % (reps,))
    return int(reps)


def _nested_plan(labs: dict, order: Sequence[Sequence[str]], shuffle: Sequence[bool], rng, reps: int,
          reps_shuffled: bool) -> list[dict]:
    """Hierarchical plan: stage k crosses the factors ``order[k]`` within every unit of the earlier stages,
    in random order where ``shuffle[k]``; ``reps`` copies of the last stage (shuffled with it or contiguous)."""
    units: list[dict] = [{}]
    for k, group in enumerate(order):
        combos = list(itertools.product(*(labs[f] for f in group)))
        last = k == len(order) - 1
        out = []
        for u in units:
            cells = [dict(zip(group, c)) for c in combos]
            if last and reps > 1 and reps_shuffled:
                cells = [c for c in cells for _ in range(reps)]
            if shuffle[k]:
                cells = [cells[i] for i in rng.permutation(len(cells))]
            out.extend({**u, **c} for c in cells)
        units = out
    if reps > 1 and not reps_shuffled:
        units = [u for u in units for _ in range(reps)]
    return units


def _latin_plan(labs: dict, roles: dict, rng, reps: int) -> list[dict]:
    trt = list(roles["treatment"])
    (row,), (col,) = roles["row"], roles["col"]
    treatments = list(itertools.product(*(labs[f] for f in trt)))
    t = len(treatments)
    if len(labs[row]) != t or len(labs[col]) != t:
        raise DesignError("a Latin square has as many rows and columns as treatments: %s has %d levels, so "
                          "levels[%r] and levels[%r] must be %d (got %d and %d)."
                          % (":".join(trt), t, row, col, t, len(labs[row]), len(labs[col])))
    rp, cp, sp = rng.permutation(t), rng.permutation(t), rng.permutation(t)
    units = []
    for i, r in enumerate(labs[row]):
        for j, c in enumerate(labs[col]):
            cell = {row: r, col: c, **dict(zip(trt, treatments[sp[(rp[i] + cp[j]) % t]]))}
            units.extend([cell] * reps)
    return units


def _strip_plan(labs: dict, roles: dict, rng, reps: int) -> list[dict]:
    (h,), (v,), (b,) = roles["horizontal"], roles["vertical"], roles["block"]
    units = []
    for blk in labs[b]:
        hs = [labs[h][i] for i in rng.permutation(len(labs[h]))]
        vs = [labs[v][i] for i in rng.permutation(len(labs[v]))]
        for hl in hs:
            for vl in vs:
                units.extend([{b: blk, h: hl, v: vl}] * reps)
    return units


def _generic_plan(design, labs: dict, rng, reps: int) -> list[dict]:
    fixed_vars = {f for t in design.fixed_terms for f in split_term(t)}
    blocks = [f for f in design.factors if f not in fixed_vars]
    treat = [f for f in design.factors if f in fixed_vars]
    if not blocks:
        return _nested_plan(labs, [treat], [True], rng, reps, True)
    return _nested_plan(labs, [blocks, treat], [False, True], rng, reps, True)


def field_plan(design, levels: Mapping[str, object], seed=None, reps: int = 1) -> pd.DataFrame:
    """A randomized field plan of ``design`` (API.md, "Field layouts and power").

    Parameters
    ----------
    design : Design
        A builder's design (or a generic one; see the module docstring).
    levels : mapping
        ``{factor: number of levels or list of labels}`` for every factor of
        the design, blocks, rows and columns included.
    seed : int, numpy Generator or None
        The same seed gives the same plan.
    reps : int
        Plots (CRD, RCBD) or sub-samples (other designs) per cell.

    Returns
    -------
    DataFrame
        One row per plot: ``plot`` (1..N, field order), then the design's
        factors (labels as strings) in :attr:`~vcomp.Design.factors` order.

    Raises
    ------
    DesignError
        A factor's levels missing or unknown, a Latin square whose rows or
        columns do not match its treatments, a design with covariates.
    """
    labs = _plan_levels(design, levels)
    reps = check_reps(reps)
    rng = random_generator(seed)
    kind, roles = plan_structure(design)
    if kind == "CRD":
        units = _nested_plan(labs, [list(roles["treatment"])], [True], rng, reps, True)
    elif kind == "RCBD":
        units = _nested_plan(labs, [list(roles["block"]), list(roles["treatment"])], [False, True], rng, reps, True)
    elif kind == "LatinSquare":
        units = _latin_plan(labs, roles, rng, reps)
    elif kind in ("SplitPlot", "SplitSplitPlot"):
        stages = [roles["block"], roles["whole"], roles["sub"]] + ([roles["subsub"]] if "subsub" in roles else [])
        units = _nested_plan(labs, [list(s) for s in stages], [False] + [True] * (len(stages) - 1), rng, reps, False)
    elif kind == "StripPlot":
        units = _strip_plan(labs, roles, rng, reps)
    elif kind == "Nested":
        units = _nested_plan(labs, [[f] for f in roles["factors"]], [False] * len(roles["factors"]), rng, reps, False)
    else:
        units = _generic_plan(design, labs, rng, reps)
    factors = design.factors
    plan = pd.DataFrame([[u[f] for f in factors] for u in units], columns=factors)
    plan.insert(0, "plot", np.arange(1, len(plan) + 1))
    return plan
