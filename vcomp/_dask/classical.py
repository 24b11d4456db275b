"""The classical ANOVA of a Dask DataFrame: the all-fixed cell model from reduced cell statistics.

In memory, :func:`vcomp.classical.model.prepare` codes every observation and
:func:`~vcomp.classical.model.build_model` collapses them into cells (one row per combination
of the design's factors, weighted by its count).  Everything after that -- sums of squares of
every type, Hartley's EMS, the method of moments, the F tests, SAS's type III rules -- uses
only the cells' rows, counts and the response's per-cell sums and residual sum of squares.

Here two passes (levels, then per-cell moments of the covariates and the response) give
those statistics, combined exactly across partitions; :func:`~vcomp._dask.stats.weighted_rows`
turns them into a :class:`~vcomp.classical.model.Prepared` of weighted rows (one per cell
without covariates; with covariates a few per cell that carry the within-cell covariate
cross-products), so the in-memory stages run unchanged.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._errors import DataError, DesignError, VcompError
from ..classical.model import Prepared, prepare
from ..terms import split_term
from . import reduce_partitions, require_dask
from .frame import FramePlan, GlobalFrame, code_partition, dask_meta, global_frame
from .stats import cell_stats, combine_cells, weighted_rows

__all__ = ["prepare_reduced"]


def _cells_map(part: pd.DataFrame, gf: GlobalFrame, factors: list, covariates: list):
    """Per-cell moments of the covariates and the response in one partition."""
    pc = code_partition(part, gf)
    if pc is None:
        return None
    keys = np.column_stack([pc.values[f] for f in factors]) if factors else np.zeros((pc.n, 0), dtype=np.int64)
    return cell_stats(keys, np.column_stack([pc.values[c] for c in covariates] + [np.asarray(pc.y, dtype=float)]))


def prepare_reduced(ddf, response: str, design) -> Prepared:
    """:func:`~vcomp.classical.model.prepare` for a Dask DataFrame: weighted cell rows, same specs and checks.

    Raises
    ------
    DataError, DesignError
        As in memory (missing column, one-level factor, ...).
    VcompError
        A term multiplying two covariates (its products are not among the reduced statistics).
    """
    require_dask()
    dask_meta(ddf)
    if not isinstance(response, (str, int)):
        raise DataError("response must be a column name (str), got %r" % (response,))
    response = str(response)
    if response in design.factors:
        raise DesignError("the response %r is also used as a factor of the design." % response)
    cov = set(design.covariates)
    for t in design.terms:
        if sum(v in cov for v in split_term(t)) > 1:
            raise VcompError("term %r multiplies two covariates; for a Dask DataFrame add their product as a "
                             "column (ddf['x_z'] = ddf.x * ddf.z) and use it as the covariate" % t)
    meta = dask_meta(ddf)
    if any(c not in meta.columns for c in [response] + list(design.factors)):
        prepare(meta, response, design)  # raises the in-memory message naming the column
    plan = FramePlan(design.model_formula(response), frozenset(set(design.factors) - cov), frozenset(cov),
                     "for the ANOVA", DataError)
    gf, ddf = global_frame(ddf, plan)
    proto = prepare(gf.mf.frame, response, design)  # the in-memory checks and specs, on one row per level
    factors, covariates = list(proto.codes), list(proto.covars)
    cells = reduce_partitions(ddf, gf.columns, _cells_map, combine_cells, gf, factors, covariates)
    wr = weighted_rows(cells, len(covariates))
    return Prepared(y=wr["y"], codes={f: cells.keys[wr["cell"], i] for i, f in enumerate(factors)},
                    levels=proto.levels, covars={c: wr["x"][:, j] for j, c in enumerate(covariates)},
                    n_dropped=gf.n_dropped, specs=proto.specs, w=wr["w"], ss_within=wr["within"])
