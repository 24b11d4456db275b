"""Exceptions and warnings raised by vcomp.

Every input problem raises a subclass of :class:`VcompError` (itself a
``ValueError``) whose message names the offending column or term and says
what to do about it.  Every warning goes through :func:`warn`, which points
it at the caller's line (the first stack frame outside the vcomp package).
"""
from __future__ import annotations

import os
import sys
import warnings

__all__ = ["VcompError", "DataError", "FormulaError", "DesignError", "NotEstimableError", "VcompWarning",
           "DroppedRowsWarning", "ConvergenceWarning", "SingularFitWarning", "warn", "caller_stacklevel",
           "check_level"]

#: directory of the vcomp package (frames whose file lies below it are "inside vcomp")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class VcompError(ValueError):
    """Base class of every vcomp input error."""


class DataError(VcompError):
    """The data do not fit the request (missing column, non-numeric response, ...)."""


class FormulaError(VcompError):
    """A formula could not be parsed or names something unknown."""


class DesignError(VcompError):
    """A design is inconsistent (unknown factor, no residual df, ...)."""


class NotEstimableError(VcompError):
    """A hypothesis is not estimable in a rank-deficient model.

    Parameters
    ----------
    message : str
        The readable explanation.
    terms : list of str, optional
        The terms whose hypotheses are not estimable (or ambiguous).
    missing_cells : dict, optional
        Term -> DataFrame with one row per empty cell of the term's crossed
        factors (columns = those factors, values = level labels).
    reason : {"empty_cells", "ambiguous", "not_estimable"}, optional
        ``"empty_cells"``: crossed factors of a term have empty combinations
        (a missing whole plot, an empty ``A:B`` cell); ``"ambiguous"``: SAS's
        type III rule has two readings that give different sums of squares
        (unequal multi-stage nesting); ``"not_estimable"``: other.
    details : dict, optional
        Term -> numbers behind the decision (for ``"ambiguous"``: ``nested_cell_ss``,
        ``nested_cell_df``, ``goodnight_ss``, ``goodnight_df``).

    Attributes
    ----------
    terms : list of str
    missing_cells : dict of str -> DataFrame
    reason : str
    details : dict
    """

    def __init__(self, message: str = "", terms=(), details=None, missing_cells=None, reason: str = "not_estimable"):
        super().__init__(message)
        self.terms: list = list(terms)
        self.missing_cells: dict = dict(missing_cells or {})
        self.reason: str = reason
        self.details: dict = dict(details or {})


class VcompWarning(UserWarning):
    """Base class of vcomp warnings."""


class DroppedRowsWarning(VcompWarning):
    """Rows with missing values were dropped before the analysis."""


class ConvergenceWarning(VcompWarning):
    """The optimizer did not converge cleanly."""


class SingularFitWarning(VcompWarning):
    """A variance component (or covariance factor) is on its boundary."""


def _inside_vcomp(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR)


def caller_stacklevel() -> int:
    """``stacklevel`` for :func:`warnings.warn` called *by the function calling this one* that
    points at the first stack frame outside the vcomp package (the user's line).

    Returns
    -------
    int
    """
    frame = sys._getframe(1)  # the vcomp function that is about to call warnings.warn
    level = 1
    while frame is not None and _inside_vcomp(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type | None = None) -> None:
    """Issue a vcomp warning attributed to the caller's line (the first frame outside vcomp).

    Parameters
    ----------
    message : str
    category : subclass of VcompWarning, optional
        Default :class:`VcompWarning`.
    """
    warnings.warn(message, category or VcompWarning, stacklevel=caller_stacklevel())


def check_level(level, what: str = "level") -> float:
    """A confidence level in (0, 1) as a float, or a :class:`VcompError` naming the option."""
    try:
        lv = float(level)
    except (TypeError, ValueError):
        lv = float("nan")
    if not 0.0 < lv < 1.0:
        raise VcompError("%s must be a confidence level between 0 and 1 (e.g. 0.95), not %r." % (what, level))
    return lv
