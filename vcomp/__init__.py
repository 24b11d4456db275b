"""vcomp: classical ANOVA with expected mean squares and variance components,
and REML/ML mixed models with Satterthwaite and Kenward-Roger inference."""
from ._errors import (ConvergenceWarning, DataError, DesignError, DroppedRowsWarning, FormulaError,
                      NotEstimableError, SingularFitWarning, VcompError, VcompWarning)

from .mixed import MixedModel, lmm
from .mixed.compare import compare
from .design import CRD, RCBD, Design, LatinSquare, Nested, SplitPlot, SplitSplitPlot, StripPlot
from .classical import AnovaResult, anova
from .crosscheck import CrossCheck, crosscheck
from .means import Means
from .skeleton import Skeleton
from . import datasets, plot, simulate

__version__ = "0.1.0"

from ._threads import discover as _discover_blas  # noqa: E402

_discover_blas()   # numpy's and scipy's BLAS are loaded by now

__all__ = [
    "VcompError", "DataError", "FormulaError", "DesignError", "NotEstimableError",
    "VcompWarning", "DroppedRowsWarning", "ConvergenceWarning", "SingularFitWarning",
    "lmm", "MixedModel", "compare",
    "Design", "CRD", "RCBD", "LatinSquare", "SplitPlot", "SplitSplitPlot", "StripPlot", "Nested",
    "anova", "AnovaResult", "crosscheck", "CrossCheck", "Means", "Skeleton",
    "datasets", "simulate", "plot",
    "__version__",
]
