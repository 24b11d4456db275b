"""REML/ML linear mixed models in lme4 formula syntax (``vcomp.lmm``)."""
from .model import MixedModel, fit, fit_design, lmm

__all__ = ["lmm", "fit", "fit_design", "MixedModel"]
