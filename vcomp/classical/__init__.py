"""Classical ANOVA: type I/II/III sums of squares, expected mean squares (Hartley's synthesis),
method-of-moments variance components and F tests with exact or synthesized denominators."""
from .anova import anova
from .result import AnovaResult

__all__ = ["anova", "AnovaResult"]
