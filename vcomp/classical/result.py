"""The result of a classical ANOVA: table, EMS, error terms, variance components."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..tables import Notes, TableMixin

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
    """Classical ANOVA of a design (SAS PROC GLM with ``RANDOM / TEST``, PROC VARCOMP).

    Attributes
    ----------
    table : DataFrame
        Index = sources (design term order, then ``"Residual"``); columns
        ``df, SS, MS, F, p, den_df, error``.  ``F``, ``p``, ``den_df`` are NaN
        where a source has no test; ``error`` names the denominator.  (The
        printed listing adds the ``Corrected Total`` row, :attr:`total`.)
    ems : DataFrame
        Coefficient of each variance component (columns: random terms, then
        ``"Residual"``) in each source's expected mean square (Hartley's
        synthesis); rounding noise (below 1e-10 of the row's largest) is 0.
    ems_text : Series
        Readable expected mean squares, fixed parts as ``Q(term, ...)``.
    fixed_parts : dict
        Source -> list of fixed terms whose effects enter its expected mean square.
    error_terms : dict
        Source -> ``{denominator source: coefficient}``.
    components : DataFrame
        Method-of-moments variance components: index = random terms then
        ``"Residual"``, columns ``estimate`` (negatives set to zero) and ``raw``.
        They solve the equations in :attr:`moments`: for type I the sums of
        squares with the fixed terms fitted first (SAS PROC VARCOMP
        METHOD=TYPE1), for types II and III the rows of :attr:`table` (unless
        one of them holds fixed effects, see :attr:`notes`).
    moments : DataFrame
        The moment equations solved for :attr:`components`: index = random
        terms then ``"Residual"``, columns ``df, SS, MS`` and the EMS
        coefficient of every component.
    moments_order : list of str or None
        Sequential order of the type I fit behind :attr:`moments` (fixed terms,
        then random terms, each in :attr:`table` order); ``None`` when the
        rows of :attr:`table` are used.
    notes : list of str
        Plain-language remarks, each produced from the numbers it describes
        (fixed effects in a random row's E[MS] and the moments used instead,
        nesting behind type III, synthesized or biased tests, truncated
        components, ...).
    fit_stats : Series
        ``R-Square``, ``Coeff Var`` (percent), ``Root MSE`` and ``Mean`` of the
        response (SAS PROC GLM's fit statistics).
    total : Series
        ``df`` and ``SS`` of the corrected total.
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
    moments: pd.DataFrame | None = None
    moments_order: list | None = None
    notes: list = field(default_factory=list)
    fit_stats: pd.Series | None = None
    total: pd.Series | None = None
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

    @property
    def cv(self) -> float:
        """Coefficient of variation in percent: ``100 * sqrt(MS(Residual)) / mean(response)``."""
        return float(self.fit_stats["Coeff Var"])

    def components_ci(self, level: float = 0.95, method: str = "satterthwaite") -> pd.DataFrame:
        """Confidence intervals for the variance components (SAS PROC VARCOMP ``CL``).

        See :func:`vcomp.classical.intervals.components_ci`: ``method`` is
        ``"satterthwaite"`` or ``"mls"`` (Graybill-Wang modified large-sample); columns
        ``estimate, lower, upper, raw, df``.
        """
        from .intervals import components_ci
        return components_ci(self, level, method)

    def _blocks(self) -> list:
        kind = {1: "I (sequential)", 2: "II", 3: "III"}[self.ss_type]
        head = "Analysis of variance of %s, type %s sums of squares (%d observations%s)" % (
            self.response, kind, self.nobs,
            ", %d dropped for missing values" % self.n_dropped if self.n_dropped else "")
        shown = self.table[["df", "SS", "MS", "F", "p", "error"]].astype({"df": float})
        if self.total is not None:
            shown = pd.concat([shown, pd.DataFrame({"df": [float(self.total["df"])], "SS": [float(self.total["SS"])]},
                                                   index=["Corrected Total"])])
        shown.loc[shown["error"].isna() | (shown["error"] == ""), "error"] = ""
        blocks: list = [(head, shown, {"index_name": "Source", "labels": {"error": "Error term"},
                                       "formats": {"df": "df", "error": "text"}})]
        if self.fit_stats is not None:
            fs = pd.DataFrame([self.fit_stats.to_numpy()], columns=["R-Square", "Coeff Var", "Root MSE",
                                                                   "%s Mean" % self.response])
            blocks.append(("Fit statistics", fs, {"index": False, "digits": 5, "formats": {"R-Square": "fixed4"}}))
        emsf = pd.DataFrame({"Expected mean square": self.ems_text})
        blocks.append(("Expected mean squares", emsf, {"index_name": "Source", "formats": {"Expected mean square": "text"}}))
        if self.moments_order is not None and not np.allclose(
                self.moments["MS"].to_numpy(), self.table.loc[self.moments.index, "MS"].to_numpy(),
                rtol=1e-10, atol=0, equal_nan=True):
            comps = list(self.moments.columns[3:])
            text = ems_strings(self.moments[comps].to_numpy(), list(self.moments.index), comps, {},
                               ["Residual"] + comps[-2::-1])
            mt = pd.DataFrame({"df": self.moments["df"].astype(float), "MS": self.moments["MS"],
                               "Expected mean square": text})
            blocks.append(("Moment equations: type I with the fixed terms fitted first (%s)"
                           % ", ".join(self.moments_order), mt,
                           {"index_name": "Source", "formats": {"df": "df", "Expected mean square": "text"}}))
        if len(self.components):
            comp = self.components.copy()
            tot = comp["estimate"].sum()
            comp["percent"] = 100 * comp["estimate"] / tot if tot > 0 else np.nan
            blocks.append(("Variance components (method of moments)", comp, {"index_name": "Component"}))
        if self.notes:
            blocks.append(Notes(self.notes))
        return blocks
