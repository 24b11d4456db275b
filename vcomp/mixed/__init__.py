"""REML/ML linear mixed models in lme4 formula syntax (``vcomp.lmm``)."""
from .model import MixedModel, lmm

__all__ = ["lmm", "MixedModel"]
