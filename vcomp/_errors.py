"""Exceptions and warnings raised by vcomp.

Every input problem raises a subclass of :class:`VcompError` (itself a
``ValueError``) whose message names the offending column or term and says
what to do about it.
"""
from __future__ import annotations


class VcompError(ValueError):
    """Base class of every vcomp input error."""


class DataError(VcompError):
    """The data do not fit the request (missing column, non-numeric response, ...)."""


class FormulaError(VcompError):
    """A formula could not be parsed or names something unknown."""


class DesignError(VcompError):
    """A design is inconsistent (unknown factor, no residual df, ...)."""


class NotEstimableError(VcompError):
    """A hypothesis is not estimable in a rank-deficient model."""


class VcompWarning(UserWarning):
    """Base class of vcomp warnings."""


class DroppedRowsWarning(VcompWarning):
    """Rows with missing values were dropped before the analysis."""


class ConvergenceWarning(VcompWarning):
    """The optimizer did not converge cleanly."""


class SingularFitWarning(VcompWarning):
    """A variance component (or covariance factor) is on its boundary."""


def check_level(level, what: str = "level") -> float:
    """A confidence level in (0, 1) as a float, or a :class:`VcompError` naming the option."""
    try:
        lv = float(level)
    except (TypeError, ValueError):
        lv = float("nan")
    if not 0.0 < lv < 1.0:
        raise VcompError("%s must be a confidence level between 0 and 1 (e.g. 0.95), not %r." % (what, level))
    return lv
