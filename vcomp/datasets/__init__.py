"""Small textbook data sets shipped with vcomp.

>>> import vcomp
>>> vcomp.datasets.names()[:3]
['dyestuff', 'ergostool', 'gomez_splitsplit']
>>> oats = vcomp.datasets.load("oats")
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

from .._errors import VcompError

__all__ = ["names", "load", "describe"]

_SETS = {
    "oats": ("yates_oats.csv", "Yates (1935) oats split-plot: 6 blocks, variety whole plots, nitro sub-plots; yield."),
    "stroup_splitplot": ("stroup_splitplot.csv", "SAS PROC MIXED example split-plot: rep blocks, factor a whole plots, b sub-plots; y."),
    "gomez_splitsplit": ("gomez_splitsplit.csv", "Gomez & Gomez rice split-split-plot: rep, nitro, management, gen; yield."),
    "ergostool": ("ergostool_rcbd.csv", "Ergometric stools (nlme ergoStool): RCBD with subjects as blocks; effort."),
    "dyestuff": ("dyestuff.csv", "Davies dyestuff: one-way random batch effects; yield."),
    "pastes": ("pastes_nested.csv", "Davies paste strength: cask nested in batch (3-stage nested); strength."),
    "machines": ("machines_gauge.csv", "Milliken & Johnson machines: random worker x fixed machine; score."),
    "john_alpha": ("john_alpha.csv", "John & Williams alpha-lattice: rep, incomplete block within rep, gen; yield."),
    "sas_varcomp1": ("sas_varcomp1.csv", "SAS PROC VARCOMP example 1: unbalanced two-way, a fixed, b random; y."),
    "shrink_base": ("shrink_base.csv", "Simulated random-slope data y ~ x + (x|cluster): 100 clusters x 10 obs."),
    "shrink_few_obs": ("shrink_few_obs.csv", "Simulated random-slope data y ~ x + (x|cluster): 100 clusters x 3 obs."),
    "splitplot_missing_whole": ("sim_splitplot_missing_whole.csv", "Simulated split-plot (5 blocks, A x B) with one whole plot missing; y."),
}
#: factors whose levels the source orders (quantitative or ordinal): read as ordered categoricals in that order
_ORDERED = {
    "oats": {"nitro": ["0.0cwt", "0.2cwt", "0.4cwt", "0.6cwt"]},
    "gomez_splitsplit": {"nitro": ["N0", "N50", "N80", "N110", "N140"],
                         "management": ["Minimum", "Optimum", "Intensive"]},
}
_ALIASES = {"yates_oats": "oats", "ergostool_rcbd": "ergostool", "pastes_nested": "pastes",
            "machines_gauge": "machines", "sim_splitplot_missing_whole": "splitplot_missing_whole"}


def names() -> list[str]:
    """Names of the bundled data sets, sorted."""
    return sorted(_SETS)


def describe(name: str) -> str:
    """One-line description of a bundled data set."""
    return _SETS[_resolve(name)][1]


class UnknownDatasetError(VcompError, KeyError):
    """No bundled data set has that name (a :class:`KeyError` too)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _resolve(name: str) -> str:
    if not isinstance(name, str):
        raise UnknownDatasetError("data set names are strings; available: %s" % ", ".join(names()))
    key = _ALIASES.get(name, name)
    if key not in _SETS:
        raise UnknownDatasetError("unknown data set %r; available: %s" % (name, ", ".join(names())))
    return key


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a fresh DataFrame, its factor levels in the study's order.

    Factors whose levels the source orders (nitrogen rates, management
    intensity) are ordered categoricals in that order, so tables, means and
    plots list them as the study does: ``oats.nitro`` is ``0.0cwt < 0.2cwt <
    0.4cwt < 0.6cwt``; in ``gomez_splitsplit`` ``nitro`` is ``N0 < N50 < N80
    < N110 < N140`` (not the text order ``N0, N110, N140, N50, N80``) and
    ``management`` is ``Minimum < Optimum < Intensive`` (Gomez & Gomez's M1,
    M2, M3).  Every other factor column is a string column whose sorted
    order is already the study's (blocks ``I`` .. ``VI``, varieties, ``R1``
    .. ``R3``); numeric columns (the response, covariates such as
    ``nitro_kg``, field coordinates) are numbers.

    Parameters
    ----------
    name : str
        One of :func:`names` (or an alias such as ``"yates_oats"``).

    Returns
    -------
    DataFrame

    Examples
    --------
    >>> import vcomp
    >>> list(vcomp.datasets.load("gomez_splitsplit")["nitro"].cat.categories)
    ['N0', 'N50', 'N80', 'N110', 'N140']
    """
    key = _resolve(name)
    with resources.files(__name__).joinpath("data", _SETS[key][0]).open("r") as fh:
        d = pd.read_csv(fh)
    for col, levels in _ORDERED.get(key, {}).items():
        d[col] = pd.Categorical(d[col], categories=levels, ordered=True)
    return d
