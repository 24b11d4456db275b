"""Out-of-core analyses of a Dask DataFrame: the one O(n) pass as a map-reduce.

vcomp's fits need the data only through sums over rows: factor levels, the column means and
scales of the standardisation, the blocked cross-products ``[Z X y]'[Z X y]`` of a mixed model
and the cell statistics (counts, sums, sums of squares, covariate cross-products) of a
classical ANOVA.  For a :class:`dask.dataframe.DataFrame` each sum is computed partition by
partition and summed by Dask on whatever scheduler is active (threads, processes, or a
``distributed.Client`` cluster); the fit then runs the same stages as in memory, from the
reduced statistics only.  Memory is bounded by the partition size and the number of random
effects (or cells), not by the number of rows.

Modules: :mod:`.frame` (levels pass, coding of one partition), :mod:`.stats` (sums about a
shift and their exact combination; per-cell moments and the weighted rows that reproduce
them), :mod:`.mixed` (``lmm``), :mod:`.classical` (``anova``).  The entry points call into
this package lazily; it needs the optional extra ``pip install "vcomp[dask]"``.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from .._errors import VcompError

__all__ = ["require_dask", "reduce_partitions", "PROGRESS_MIN_SECONDS"]

#: passes that run longer than this show a progress bar (local schedulers; ``dask.config``
#: key ``"vcomp.progress"`` set to False turns it off)
PROGRESS_MIN_SECONDS = 2.0


def require_dask():
    """Import :mod:`dask` or raise a :class:`VcompError` naming the optional extra."""
    try:
        import dask
        import dask.dataframe  # noqa: F401
    except ImportError:  # pragma: no cover - the test environment has dask
        raise VcompError("analysing a Dask DataFrame needs dask: pip install \"vcomp[dask]\" "
                         "(installs dask[dataframe] and pyarrow)") from None
    return dask


def _tree(items: list, combine: Callable) -> Any:
    """Pairwise (tree) reduction of delayed objects."""
    from dask import delayed

    comb = delayed(combine, pure=True)
    while len(items) > 1:
        nxt = [comb(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]


def reduce_partitions(ddf, columns: Sequence[str], mapper: Callable, combine: Callable, *args: Any) -> Any:
    """``combine``-reduce ``mapper(partition, *args)`` over the partitions of ``ddf[columns]``.

    Runs on the active Dask scheduler.  ``mapper`` and ``combine`` must be module-level
    functions (picklable for process and distributed schedulers); a mapper may return None
    for a partition without analysable rows, and ``combine`` must accept None.  Passes longer
    than :data:`PROGRESS_MIN_SECONDS` show Dask's progress bar on stderr (local schedulers).
    """
    dask = require_dask()
    from dask import delayed

    sub = ddf[list(columns)] if columns else ddf
    parts = sub.to_delayed(optimize_graph=True)
    shared = [delayed(a, traverse=False) for a in args]
    fn = delayed(mapper, pure=True)
    mapped = [fn(p, *shared) for p in parts]
    if not mapped:
        return None
    total = _tree(mapped, combine)
    if dask.config.get("vcomp.progress", True):
        from dask.diagnostics import ProgressBar

        with ProgressBar(minimum=PROGRESS_MIN_SECONDS, out=sys.stderr):
            (out,) = dask.compute(total)
        return out
    (out,) = dask.compute(total)
    return out
