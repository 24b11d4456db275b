"""The one inference kernel: :func:`contrast_test` of ``L @ beta = 0`` for a fitted model."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._errors import VcompError
from ._pieces import Pieces, model_pieces_auto
from .kenward_roger import kr_1d, kr_md, kr_rows
from .satterthwaite import satterthwaite_1d, satterthwaite_md, satterthwaite_rows

__all__ = ["contrast_test", "contrast_rows", "test_1d", "model_pieces", "normalize_ddf", "as_contrast_matrix",
           "coef_names", "model_cache"]

_CACHE_ATTR = "_inference_cache"
_DDF = {"satterthwaite": "satterthwaite", "satt": "satterthwaite", "s": "satterthwaite",
        "kenward-roger": "kenward-roger", "kenward_roger": "kenward-roger", "kenwardroger": "kenward-roger",
        "kenward roger": "kenward-roger", "kr": "kenward-roger"}


def normalize_ddf(ddf: str) -> str:
    """``"satterthwaite"`` or ``"kenward-roger"`` from any accepted spelling (case-insensitive)."""
    key = str(ddf).strip().lower() if isinstance(ddf, str) else None
    if key not in _DDF:
        raise VcompError("ddf must be 'satterthwaite' or 'kenward-roger' (also 'Kenward-Roger', 'KR'), "
                         "not %r" % (ddf,))
    return _DDF[key]


def model_cache(model) -> dict:
    """The model's inference cache (pieces, hypothesis matrices), created on first use."""
    c = getattr(model, _CACHE_ATTR, None)
    if c is None:
        c = {}
        try:
            setattr(model, _CACHE_ATTR, c)
        except AttributeError:  # pragma: no cover - frozen objects: no caching
            pass
    return c


def model_pieces(model) -> Pieces:
    """The cached per-model ingredients (computed on first use from the model's stored cross-products).

    They live in the model's internal (standardised) coordinates; :func:`contrast_test` maps
    each contrast there (``L T``) and scales estimates and standard errors back.
    """
    c = model_cache(model)
    pc = c.get("pieces")
    if pc is None and callable(getattr(model, "_pieces_override", None)):
        # models the lme4 path does not cover (residual structures) build their own pieces
        pc = model._pieces_override()
        if pc is not None:
            c["pieces"] = pc
    if pc is None:
        pc = model_pieces_auto(model._cp, list(model._re_terms), np.asarray(model._theta, dtype=float),
                               float(model.sigma_int), reml=bool(getattr(model, "reml", True)),
                               kernel=getattr(model, "_kernel", None))
        # estimates as the model reports them (lmerTest uses model@beta); ours agree to rounding
        beta = model._std.internal_beta(model._sol["beta"])
        if beta.shape == pc.beta.shape:
            pc.beta = beta
        c["pieces"] = pc
        c["n_computed"] = c.get("n_computed", 0) + 1
    return pc


def coef_names(model) -> list[str]:
    """Names of the fixed-effect coefficients (``"Intercept"``, ...)."""
    fixed = getattr(model, "_fixed", None)
    if fixed is not None and hasattr(fixed, "colnames"):
        return [str(c) for c in fixed.colnames]
    return [str(i) for i in model.fixef.index]


def as_contrast_matrix(model, L: Any) -> np.ndarray:
    """Validate a contrast and return it as an ``(r, p)`` float array.

    Parameters
    ----------
    model : MixedModel
    L : array_like (r x p or p), dict / Series (coefficient name -> weight), or DataFrame
        (columns = coefficient names).

    Returns
    -------
    ndarray, shape (r, p)
    """
    names = coef_names(model)
    p = len(names)
    pos = {n: j for j, n in enumerate(names)}

    def from_mapping(m) -> np.ndarray:
        row = np.zeros(p)
        for k, v in m.items():
            kk = "Intercept" if str(k) == "(Intercept)" else str(k)
            if kk not in pos:
                raise VcompError("contrast names an unknown coefficient %r; the coefficients are: %s"
                                 % (k, ", ".join(names)))
            row[pos[kk]] = float(v)
        return row

    if isinstance(L, pd.DataFrame):
        out = np.vstack([from_mapping(r) for _, r in L.iterrows()]) if len(L) else np.zeros((0, p))
    elif isinstance(L, (dict, pd.Series)):
        out = from_mapping(L)[None, :]
    else:
        try:
            out = np.asarray(L, dtype=float)
        except (TypeError, ValueError):
            raise VcompError("contrast L must be numeric (an array with %d columns) or a mapping "
                             "coefficient name -> weight" % p) from None
        if out.ndim == 1:
            out = out[None, :]
        if out.ndim != 2 or out.shape[1] != p:
            raise VcompError("contrast L has shape %s but the model has %d fixed-effect coefficients (%s); "
                             "give an array with %d columns or a dict name -> weight"
                             % (np.shape(L), p, ", ".join(names), p))
    if out.shape[0] == 0:
        raise VcompError("contrast L has no rows")
    if not np.all(np.isfinite(out)):
        raise VcompError("contrast L contains NaN or infinite weights")
    if not np.any(out):
        raise VcompError("contrast L is all zeros: nothing to test")
    return out


def _scale(res: dict, s: float) -> dict:
    for k in ("estimate", "se"):
        if k in res:
            res[k] = float(res[k]) * s
    return res


def test_1d(model, L: np.ndarray, method: str) -> dict:
    """t test of one linear combination of the original coefficients (``estimate, se, df, t, p``)."""
    pc = model_pieces(model)
    Li = model._std.contrast(np.asarray(L, dtype=float)[None, :])[0]
    fun = satterthwaite_1d if method == "satterthwaite" else kr_1d
    return _scale(fun(pc, Li), model._std.scale)


def contrast_test(model, L: Any, ddf: str = "satterthwaite", *, checked: bool = False) -> dict:
    """Test ``L @ beta = 0`` with Satterthwaite or Kenward-Roger denominator df.

    The single kernel behind ``coef_table``, ``anova``, ``contrast`` and means.  The contrast is
    mapped into the model's internal coordinates, so df, F and p do not depend on the units
    or offsets of the data.

    Parameters
    ----------
    model : MixedModel
        A REML fit (Satterthwaite also ML).
    L : array_like or mapping
        ``(r, p)`` / ``(p,)`` array, or coefficient name -> weight.
    ddf : {"satterthwaite", "kenward-roger"}
    checked : bool
        ``L`` is already a valid ``(r, p)`` float array (a hypothesis vcomp built from the model's
        coding, as in :func:`vcomp.inference.anova_table`): the validation is skipped.

    Returns
    -------
    dict
        ``num_df, den_df, F, p``; for one row also ``estimate, se, t`` (with
        Kenward-Roger, ``se`` from the adjusted covariance and ``F = lambda t^2``).
    """
    method = normalize_ddf(ddf)
    Lm = L if checked else as_contrast_matrix(model, L)
    pc = model_pieces(model)
    Li = model._std.contrast(Lm)
    md = satterthwaite_md if method == "satterthwaite" else kr_md
    res = md(pc, Li)
    if Lm.shape[0] == 1:
        r1 = test_1d(model, Lm[0], method)
        res.update(estimate=r1["estimate"], se=r1["se"], t=r1["t"])
    return res


def contrast_rows(model, L: np.ndarray, ddf: str = "satterthwaite") -> dict:
    """One-degree-of-freedom tests of every row of ``L`` at once (estimated means, their differences).

    The row-wise counterpart of :func:`test_1d`: the same estimate, SE (Kenward-Roger: from the
    adjusted covariance) and df, as emmeans reports them per row, for many rows in one pass.

    Parameters
    ----------
    model : MixedModel
    L : ndarray, shape (m, p)
        Finite weights on the original coefficients.
    ddf : {"satterthwaite", "kenward-roger"}

    Returns
    -------
    dict
        ``estimate, se, df``: arrays of length ``m``.
    """
    method = normalize_ddf(ddf)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    p = len(coef_names(model))
    if L.shape[1] != p or not np.all(np.isfinite(L)):
        raise VcompError("contrast rows must be a finite array with %d columns (one per coefficient)" % p)
    if L.shape[0] == 0:
        return {"estimate": np.zeros(0), "se": np.zeros(0), "df": np.zeros(0)}
    pc = model_pieces(model)
    Li = model._std.contrast(L)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = satterthwaite_rows(pc, Li) if method == "satterthwaite" else kr_rows(pc, Li)
    s = model._std.scale
    return {"estimate": res["estimate"] * s, "se": res["se"] * s, "df": res["df"]}
