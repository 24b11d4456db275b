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
    """A hypothesis is not estimable in a rank-deficient model.

    Attributes
    ----------
    terms : list of str
        The terms concerned.
    details : dict
        Term -> what makes it not estimable (e.g. the missing cells), when known.
    """

    def __init__(self, message: str = "", terms=(), details=None):
        super().__init__(message)
        self.terms = list(terms)
        self.details = dict(details or {})


class VcompWarning(UserWarning):
    """Base class of vcomp warnings."""


class DroppedRowsWarning(VcompWarning):
    """Rows with missing values were dropped before the analysis."""


class ConvergenceWarning(VcompWarning):
    """The optimizer did not converge cleanly."""


class SingularFitWarning(VcompWarning):
    """A variance component (or covariance factor) is on its boundary."""


def _caller_stacklevel() -> int:
    """Stack level of the first frame outside the vcomp package (for ``warnings.warn``)."""
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    level = 1
    frame = sys._getframe(1)
    while frame is not None:
        fn = os.path.abspath(frame.f_code.co_filename)
        if not fn.startswith(here + os.sep):
            return level
        frame = frame.f_back
        level += 1
    return level  # pragma: no cover - vcomp never runs on its own


def warn(message: str, category: type = None) -> None:
    """Issue a warning pointing at the caller's line (the first frame outside vcomp)."""
    import warnings

    warnings.warn(message, category or VcompWarning, stacklevel=_caller_stacklevel())
