"""The result of a classical ANOVA: table, EMS, error terms, variance components."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..tables import TableMixin

__all__ = ["AnovaResult", "ems_strings"]


def _coef_text(c: float) -> str:
    if abs(c - round(c)) < 1e-8 * max(1.0, abs(c)):
        return "%d" % round(c)
    return "%.4g" % c


def ems_strings(E: np.ndarray, sources: list[str], comps: list[str], fixed_parts: dict[str, list[str]],
                order: list[str]) -> pd.Series:
    """SAS-style expected mean squares: ``"Var(Residual) + 3 Var(block:variety) + Q(variety)"``.

    Parameters
    ----------
    E : ndarray
        Coefficients (sources x components).
    sources, comps : list of str
        Row and column names of ``E``.
    fixed_parts : dict
        Source -> fixed terms in its EMS.
    order : list of str
        Components in the order to print them (``"Residual"`` first, then inner to outer).
    """
    idx = [comps.index(c) for c in order]
    out = []
    for s, row in zip(sources, E):
        if not np.isfinite(row).all():
            out.append("")
            continue
        big = max(1.0, float(np.max(np.abs(row))))
        parts = []
        for c, j in zip(order, idx):
            v = float(row[j])
            if abs(v) <= 1e-8 * big:
                continue
            txt = "Var(%s)" % c
            coef = _coef_text(abs(v))
            if coef != "1":
                txt = coef + " " + txt
            parts.append(("- " if v < 0 else "+ ") + txt if parts else ("-" if v < 0 else "") + txt)
        q = fixed_parts.get(s) or []
        if q:
            parts.append(("+ " if parts else "") + "Q(%s)" % ", ".join(q))
        out.append(" ".join(parts))
    return pd.Series(out, index=pd.Index(sources, name="source"), name="EMS", dtype=object)


@dataclass(frozen=True, repr=False, eq=False)
class AnovaResult(TableMixin):
    """Classical ANOVA of a design (SAS PROC GLM with ``RANDOM / TEST``).

    Attributes
    ----------
    table : DataFrame
        Index = sources (design term order, then ``"Residual"``); columns
        ``df, SS, MS, F, p, den_df, error``.  ``F``, ``p``, ``den_df`` are NaN
        where a source has no test; ``error`` names the denominator.
    ems : DataFrame
        Coefficient of each variance component (columns: random terms, then
        ``"Residual"``) in each source's expected mean square (Hartley's synthesis).
    ems_text : Series
        Readable expected mean squares, fixed parts as ``Q(term, ...)``.
    fixed_parts : dict
        Source -> list of fixed terms whose effects enter its expected mean square.
    error_terms : dict
        Source -> ``{denominator source: coefficient}``.
    components : DataFrame
        Method-of-moments variance components: index = random terms then
        ``"Residual"``, columns ``estimate`` (negatives set to zero) and ``raw``.
    ss_type : int
        1, 2 or 3.
    nobs : int
        Observations used; ``n_dropped`` rows were dropped for missing values.
    response : str
    design : Design
    rank_deficient : bool
        The sum-coded all-fixed model (R's ``model.matrix`` rule) is rank
        deficient (nesting with unequal inner levels, or empty cells).
    type3_coding : {"sum", "nested-cell"} or None
        Coding behind type III: ``"sum"`` (full-rank sum-coded ``X``) or
        ``"nested-cell"`` (cell-space coding of a rank-deficient model whose
        only deficiency is nesting; see :func:`vcomp.anova`); ``None`` for
        types I and II.
    """

    table: pd.DataFrame
    ems: pd.DataFrame
    ems_text: pd.Series
    fixed_parts: dict
    error_terms: dict
    components: pd.DataFrame
    ss_type: int
    nobs: int
    n_dropped: int = 0
    response: str = ""
    design: object = field(default=None, repr=False)
    rank_deficient: bool = False
    type3_coding: str | None = None
    #: (Prepared, CellModel) of the sum-coded all-fixed fit, for :meth:`means` (private)
    _fixed_fit: object = field(default=None, repr=False)

    def means(self, term: str, by=None, level: float = 0.95):
        """Least-squares means of a fixed term, their differences, letters, SEDs and LSDs.

        Balanced data: the textbook values from the stratum mean squares; unbalanced data:
        least-squares means of the all-fixed fit with variances from the truncated
        method-of-moments components (see :func:`vcomp.classical.lsmeans.classical_means`).

        Parameters
        ----------
        term : str
            A fixed term, e.g. ``"nitro"`` or ``"variety:nitro"``.
        by : str or list of str, optional
            Factors of ``term``: comparisons are made within each of their levels.
        level : float
            Confidence level of the intervals.

        Returns
        -------
        Means
        """
        from .lsmeans import classical_means
        return classical_means(self, term, by=by, level=level)

    @property
    def sources(self) -> list[str]:
        """Sources of variation in table order."""
        return list(self.table.index)

    def _blocks(self) -> list:
        kind = {1: "I (sequential)", 2: "II", 3: "III"}[self.ss_type]
        head = "Analysis of variance of %s, type %s sums of squares (%d observations%s)" % (
            self.response, kind, self.nobs,
            ", %d dropped for missing values" % self.n_dropped if self.n_dropped else "")
        tab = self.table.copy()
        tab["df"] = tab["df"].astype(float)
        shown = tab[["df", "SS", "MS", "F", "p", "error"]].rename(columns={"error": "Error term"})
        blocks: list = [(head, shown, {"index_name": "Source"})]
        emsf = pd.DataFrame({"Expected mean square": self.ems_text})
        blocks.append(("Expected mean squares", emsf, {"index_name": "Source"}))
        if self.type3_coding == "nested-cell":
            blocks.append("The sum-coded model is rank deficient (unequal numbers of inner levels per outer level): "
                          "type III uses within-outer-level contrasts for nested terms (SAS PROC GLM), so an "
                          "outer factor tests equal unweighted means of its inner cells.")
        synth = [s for s, c in self.error_terms.items() if len(c) > 1]
        if synth:
            blocks.append("Synthesized denominators use Satterthwaite's df: "
                          + "; ".join("%s (den df %.2f)" % (s, self.table.loc[s, "den_df"]) for s in synth) + ".")
        if len(self.components):
            comp = self.components.copy()
            tot = comp["estimate"].sum()
            comp["percent"] = 100 * comp["estimate"] / tot if tot > 0 else np.nan
            blocks.append(("Variance components (method of moments)", comp, {"index_name": "Component"}))
            neg = [c for c, r in self.components.iterrows() if r["raw"] < 0]
            if neg:
                blocks.append("Negative estimates set to zero: %s." % ", ".join(neg))
        untested = [s for s in self.table.index[:-1] if not np.isfinite(self.table.loc[s, "F"])]
        if untested:
            blocks.append("No valid F test (no mean-square combination has the null expectation): %s."
                          % ", ".join(untested))
        return blocks
