"""vcomp: classical ANOVA with expected mean squares and variance components,
and REML/ML mixed models with Satterthwaite and Kenward-Roger inference."""
from ._errors import (ConvergenceWarning, DataError, DesignError, DroppedRowsWarning, FormulaError,
                      NotEstimableError, SingularFitWarning, VcompError, VcompWarning)

from .mixed import MixedModel, lmm

__version__ = "0.1.0"

__all__ = [
    "VcompError", "DataError", "FormulaError", "DesignError", "NotEstimableError",
    "VcompWarning", "DroppedRowsWarning", "ConvergenceWarning", "SingularFitWarning",
    "lmm", "MixedModel",
    "__version__",
]
