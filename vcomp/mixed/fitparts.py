"""What the variance-component inference (profile, heritability, compare, ranova) reads from a fit.

Every access of :mod:`vcomp.mixed.profile`, :mod:`vcomp.mixed.heritability` and
:mod:`vcomp.mixed.compare` to the internals of a :class:`~vcomp.mixed.MixedModel` goes
through the functions of this module, so that a change of the model core is rewired here
and nowhere else:

* :func:`criterion_pieces` -- log|L|^2 and the downdated cross-product ``M(theta)`` at any
  theta (the profiled criteria at fixed sigma, and with a fixed coefficient held, follow);
  :func:`criterion_gradient` -- the same with the analytic gradient in theta of
  :func:`profiled_deviance` (sigma profiled or held); :func:`fixed_coef_criterion` -- the ML
  deviance with one fixed coefficient held, and its gradient in theta;
* :func:`re_layout` -- the random-effects terms and their part of theta;
* :func:`random_pev` -- prediction-error covariance of a term's BLUPs from the inverse of the
  full mixed-model equations;
* :func:`fixed_rows` -- rows of the fixed-effects model matrix for new data;
* :func:`ml_optimum`, :func:`refit` -- the ML optimum on the stored cross-products, and a refit
  of another formula on the same rows.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.linalg as sla
from threadpoolctl import threadpool_limits

from ..terms import ModelFormula, RandomSpec, Term
from .criterion import make_kernel, objective
from .optimize import optimize_theta
from .reterm import theta_layout

__all__ = ["TermLayout", "criterion_pieces", "criterion_gradient", "fixed_coef_criterion", "re_layout", "theta_bounds", "random_pev", "fixed_rows",
           "ml_optimum", "refit", "profiled_deviance", "formula_parts", "blas_single_thread",
           "WrittenTerm", "random_terms_as_written", "reduced_model", "random_spec", "response_values"]

_LOG2PI = np.log(2 * np.pi)


@dataclass(frozen=True)
class TermLayout:
    """One random-effects term as the inference code sees it.

    Attributes
    ----------
    name : str
        lme4's ``VarCorr`` name (``"g"``, ``"g.1"`` for a second term on ``g``).
    group : str
        The grouping factor(s), ``"a:b"``.
    expr : str
        The coefficient formula (``"1"``, ``"x"``, ``"0+x"``).
    correlated : bool
        False for the parts of ``(x||g)``.
    coef_names : list of str
        lme4 coefficient names (``"(Intercept)"``, ``"x"``).
    theta_slice : slice
        The term's part of theta (column-major lower triangle of its k x k factor).
    offset, nlev : int
        First column in Z and number of levels.
    levels : list of str
    """

    name: str
    group: str
    expr: str
    correlated: bool
    coef_names: tuple
    theta_slice: slice
    offset: int
    nlev: int
    levels: tuple

    @property
    def k(self) -> int:
        return len(self.coef_names)


def re_layout(model) -> list[TermLayout]:
    """The model's random-effects terms, in lme4 order (the order of theta and of ``varcorr``)."""
    return [TermLayout(t.name, t.group, t.spec.expr, bool(t.correlated), tuple(t.coef_names), t.theta_slice,
                       int(t.offset), int(t.nlev), tuple(t.levels)) for t in model._re_terms]


@dataclass(frozen=True)
class WrittenTerm:
    """A random term as the formula wrote it (``a/b`` expanded, ``(x||g)`` split into its parts).

    Attributes
    ----------
    expr, group : str
        ``(expr | group)``; ``group`` as vcomp names it (``"a:b"``).
    correlated : bool
    terms : tuple of str
        The model terms of ``expr`` without the intercept (``("x",)``, ``("x", "z", "x:z")``).
    intercept : bool
        ``expr`` has an intercept.
    lme4_group : str
        The grouping factor as lme4's ``findbars`` writes it: ``"b:a"`` for ``a/b``,
        ``"c:(b:a)"`` for ``a/b/c``, ``group`` otherwise.
    """

    expr: str
    group: str
    correlated: bool
    terms: tuple
    intercept: bool
    lme4_group: str
    spec: object = None


def _lme4_group(formula: str, group: str) -> str:
    """lme4's name of a grouping factor that ``a/b`` expanded (the group itself if written out)."""
    import re

    facs = group.split(":")
    if len(facs) == 1:
        return group
    written = r"\|\s*" + r"\s*:\s*".join(map(re.escape, facs)) + r"\s*\)"
    if re.search(written, formula):
        return group
    name = facs[0]
    for i, f in enumerate(facs[1:]):
        name = "%s:%s" % (f, name if i == 0 else "(%s)" % name)
    return name


def random_terms_as_written(model) -> list[WrittenTerm]:
    """The random terms in the order the formula writes them (lme4's ``findbars``)."""
    return [WrittenTerm(r.expr, r.group.name, bool(r.correlated), tuple(t.name for t in r.terms), bool(r.intercept),
                        _lme4_group(model.formula, r.group.name), r) for r in model._model.random]


def reduced_model(model, random: list | None = None, add_fixed: str | None = None, text: str = "") -> ModelFormula:
    """The model's formula with other random terms (``WrittenTerm.spec`` or ``RandomSpec``) and/or one more
    fixed main effect or interaction ``add_fixed`` (``"gen"``)."""
    mf = model._model
    fixed = list(mf.fixed)
    if add_fixed is not None:
        fixed = sorted(fixed + [Term(tuple(add_fixed.split(":")))], key=lambda t: t.degree)
    rand = tuple(mf.random) if random is None else tuple(getattr(r, "spec", r) for r in random)
    return replace(mf, fixed=tuple(fixed), random=rand, text=text)


def random_spec(intercept: bool, terms: tuple, group: str, correlated: bool = True) -> RandomSpec:
    """A random term ``(terms | group)`` (``terms``: names of the non-intercept terms)."""
    return RandomSpec(bool(intercept), tuple(Term(tuple(t.split(":"))) for t in terms), Term(tuple(group.split(":"))),
                      bool(correlated))


def theta_bounds(model) -> np.ndarray:
    """Lower bounds of theta (0 on diagonal elements, -inf elsewhere)."""
    return theta_layout(model._re_terms)[0]


def criterion_pieces(model, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """log|L(theta)|^2 and the downdated cross-product matrix at ``theta``.

    With ``W = [X y]`` and ``L L' = Lambda' Z'Z Lambda + I``, ``M = W'W - W'Z Lambda (L L')^{-1} Lambda' Z'W``
    (``(p+1) x (p+1)``, from the cross-products stored on the model; cost independent of n).
    Its leading ``p x p`` block is ``R_X' R_X`` and the Schur complement of that block is the
    penalized residual sum of squares, so every profiled criterion follows from ``(log|L|^2, M)``.

    Returns
    -------
    ldL2 : float
        ``inf`` when ``theta`` is not admissible.
    M : ndarray (p+1, p+1)
    """
    kern = model._kernel
    th = _to_internal_theta(model, theta)
    try:
        ldL2, Mi = kern.pieces(th)
    except (np.linalg.LinAlgError, ValueError, RuntimeError):
        return np.inf, np.full((model._X.shape[1] + 1,) * 2, np.nan)
    A = _to_original(model._std)
    return float(ldL2), A.T @ Mi @ A


def criterion_gradient(model, theta: np.ndarray, reml: bool,
                       sigma: float | None = None) -> tuple[float, np.ndarray, np.ndarray] | None:
    """:func:`criterion_pieces` at ``theta`` and the analytic gradient in (lme4's) theta of
    ``profiled_deviance(ldL2, M, n, reml, sigma=sigma)``; None when the model's kernel has no
    analytic gradient.

    The kernel's gradient is that of ``log|L|^2 (+ log|R_X|^2) + c log(pwrss)`` with ``c`` its
    degrees of freedom (``n`` or ``n - p``); with ``sigma`` held, the wanted gradient is that of
    ``log|L|^2 (+ log|R_X|^2) + pwrss / sigma^2``, i.e. the same with ``c = pwrss / sigma^2``: a
    shallow copy of the kernel with that ``c`` gives it in one call.

    Returns
    -------
    ldL2 : float
        ``inf`` when ``theta`` is not admissible (the gradient is then zero).
    M : ndarray (p+1, p+1)
    grad : ndarray (len(theta),)
    """
    kern = model._kernel
    if not getattr(kern, "has_gradient", False) or not hasattr(kern, "n"):
        return None
    theta = np.asarray(theta, dtype=float)
    th = _to_internal_theta(model, theta)
    bad = (np.inf, np.full((model._X.shape[1] + 1,) * 2, np.nan), np.zeros(len(theta)))
    try:
        ldL2, Mi = kern.pieces(th)
        p = Mi.shape[0] - 1
        if sigma is not None:
            Lm = np.linalg.cholesky(Mi)
            c = Lm[p, p] ** 2 * model._std.scale ** 2 / sigma ** 2
            kern = copy.copy(kern)
            kern.n = c + (kern.p if reml else 0)
        crit, g = kern.value_and_grad(th, reml)
    except (np.linalg.LinAlgError, ValueError, RuntimeError):
        return bad
    if not (np.isfinite(ldL2) and np.isfinite(crit)):
        return bad
    A = _to_original(model._std)
    return float(ldL2), A.T @ Mi @ A, g * _theta_rows(model)


def fixed_coef_criterion(model, j: int, b: float):
    """``f(theta) -> (value, gradient)``: ``profiled_deviance(*criterion_pieces(model, theta), n, False,
    fixed=(j, b))`` (the ML deviance with coefficient ``j`` held at ``b``, the others and sigma
    profiled) and its analytic gradient in (lme4's) theta; None when the model's kernel has none.

    The held coefficient moves to the response: a criterion kernel on the stored cross-products
    of ``[X_{-j}, y - b x_j] = [X y] T`` (``T`` as in :func:`profiled_deviance`), in the original
    units, so that its criterion is this deviance exactly.
    """
    kern = model._kernel
    cp = getattr(model, "_cp", None)
    if cp is None or not getattr(kern, "has_gradient", False) or not hasattr(kern, "n"):
        return None
    p = cp.p
    keep = [i for i in range(p) if i != j]
    T = np.zeros((p + 1, p))
    T[keep, np.arange(p - 1)] = 1.0
    T[p, p - 1] = 1.0
    T[j, p - 1] = -b
    C = _to_original(model._std) @ T          # internal [X y] -> [X_{-j}, y - b x_j]
    G = C.T @ cp.WtW @ C
    new = replace(cp, p=p - 1, XtX=G[:p - 1, :p - 1], Xty=G[:p - 1, p - 1], yty=float(G[p - 1, p - 1]))
    if cp.block:
        ZW = np.concatenate([cp.ZX, cp.Zy[:, :, None]], axis=2) @ C
        new = replace(new, ZX=ZW[:, :, :p - 1], Zy=ZW[:, :, p - 1])
    if cp.ZtX is not None:
        ZtW = np.column_stack([cp.ZtX, cp.Zty]) @ C
        new = replace(new, ZtX=ZtW[:, :p - 1], Zty=ZtW[:, p - 1])
    kj = make_kernel(model._re_terms, new)
    if not getattr(kj, "has_gradient", False):
        return None
    rows = _theta_rows(model)

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            crit, g = kj.value_and_grad(_to_internal_theta(model, theta), False)
        except (np.linalg.LinAlgError, ValueError, RuntimeError):
            return np.inf, np.zeros(len(theta))
        return (float(crit), g * rows) if np.isfinite(crit) else (np.inf, np.zeros(len(theta)))
    return f


def _theta_rows(model) -> np.ndarray:
    """d internal theta / d lme4 theta: each entry of a term's factor scales with its row's column."""
    return np.concatenate([t.scale[[i for i, _ in t.varpars()]] for t in model._re_terms])


def _to_internal_theta(model, theta: np.ndarray) -> np.ndarray:
    theta = np.asarray(theta, dtype=float)
    return np.concatenate([t.internal_theta(theta[t.theta_slice]) for t in model._re_terms])


def _to_original(std) -> np.ndarray:
    """``A`` with ``[X y] = [X_int y_int] A`` (the standardisation undone; ``X_int = X T``,
    ``y_int = (y - c) / s``)."""
    p = std.p
    Tinv = np.linalg.inv(std.T) if p else np.zeros((0, 0))
    A = np.zeros((p + 1, p + 1))
    A[:p, :p] = Tinv
    if std.icpt is not None:
        A[:p, p] = std.center * Tinv[:, std.icpt]
    A[p, p] = std.scale
    return A


def profiled_deviance(ldL2: float, M: np.ndarray, n: int, reml: bool, sigma: float | None = None,
                      fixed: tuple[int, float] | None = None) -> float:
    """-2 log-likelihood (REML or ML) from :func:`criterion_pieces`.

    Parameters
    ----------
    ldL2, M : from :func:`criterion_pieces`.
    n : int
        Observations.
    reml : bool
        REML criterion (with log|R_X|^2 and n - p) or ML deviance.
    sigma : float, optional
        Residual SD held fixed; by default it is profiled out (lme4's criterion).
    fixed : (j, b), optional
        Coefficient ``j`` held at ``b`` and the others profiled (ML only, as lme4's profile).
    """
    if not np.isfinite(ldL2):
        return np.inf
    p = M.shape[0] - 1
    if fixed is not None:
        j, b = fixed
        keep = [i for i in range(p) if i != j]
        T = np.zeros((p + 1, p))
        T[keep, np.arange(p - 1)] = 1.0
        T[p, p - 1] = 1.0
        T[j, p - 1] = -b
        M = T.T @ M @ T
        p -= 1
    try:
        Lm = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return np.inf
    pwrss = Lm[p, p] ** 2
    if not np.isfinite(pwrss) or pwrss <= 0:
        return np.inf
    nu = n - p if reml else n
    out = ldL2 + (2.0 * np.sum(np.log(np.diag(Lm)[:p])) if reml else 0.0)
    if sigma is None:
        return float(out + nu * (1.0 + _LOG2PI + np.log(pwrss / nu)))
    with np.errstate(over="ignore", divide="ignore"):  # an absurd sigma of a search: inf, not an error
        s2 = np.float64(sigma) ** 2
        return float(out + nu * (_LOG2PI + np.log(s2)) + pwrss / s2)


def ml_optimum(model) -> tuple[np.ndarray, float]:
    """Theta and deviance of the ML fit of the same model, from the stored cross-products.

    An ML fit returns its own optimum; a REML fit is re-optimised under the ML criterion
    (lme4's ``refitML``), started from its REML theta.
    """
    if not model.reml:
        return np.asarray(model.theta, dtype=float), float(model.deviance)
    terms = model._re_terms
    if model._residual is not None:  # a residual= structure: its own criterion, same cross-products
        from .residual_fit import ml_refit
        x, dev = ml_refit(model._residual)
        m = sum(t.ntheta for t in terms)
        theta = np.concatenate([t.public_theta(x[t.theta_slice]) for t in terms]) if terms else np.zeros(0)
        return np.concatenate([theta, x[m:]]), float(model._std.criterion(dev, False, model.nobs,
                                                                          model._X.shape[1]))
    f, fg = objective(model._kernel, False)
    opt = optimize_theta(f, np.asarray(model._theta, dtype=float), theta_layout(terms)[0], fg=fg)
    theta = np.concatenate([t.public_theta(opt.theta[t.theta_slice]) for t in terms])
    return theta, float(model._std.criterion(float(opt.fun), False, model.nobs, model._X.shape[1]))


def random_pev(model, term: TermLayout) -> np.ndarray:
    """Prediction-error covariance of one term's BLUPs, ``Var(b_hat - b)`` (``q_t x q_t``).

    From the inverse of the full mixed-model equations in the spherical scale
    ``[[Lambda'Z'Z Lambda + I, Lambda'Z'X], [X'Z Lambda, X'X]]`` (valid when a component is
    zero): ``sigma^2 Lambda_t C^{uu}_{tt} Lambda_t'``, so the uncertainty of the fixed effects is
    included (ASReml's ``predict`` SEDs, Henderson's C22).
    """
    Z = model.Z
    X = np.asarray(model._X, dtype=float)
    Lam = model._Lambda()
    ZL = (Z @ Lam).tocsc()
    q, p = ZL.shape[1], X.shape[1]
    A = np.empty((q + p, q + p))
    A[:q, :q] = (ZL.T @ ZL).toarray() + np.eye(q)
    A[:q, q:] = np.asarray(ZL.T @ X)
    A[q:, :q] = A[:q, q:].T
    A[q:, q:] = X.T @ X
    sl = slice(term.offset, term.offset + term.nlev * term.k)
    E = np.zeros((q + p, sl.stop - sl.start))
    E[np.arange(sl.start, sl.stop), np.arange(sl.stop - sl.start)] = 1.0
    Cu = sla.cho_solve(sla.cho_factor(A, lower=True), E)[sl]
    Lt = Lam[sl, sl].toarray()
    return model.sigma ** 2 * Lt @ Cu @ Lt.T


def fixed_rows(model, newdata: pd.DataFrame) -> np.ndarray:
    """Rows of the fitted fixed-effects model matrix (same columns as ``model.fixef``) for ``newdata``."""
    return model._fixed.build_frame(newdata)


def response_values(model) -> np.ndarray:
    """The response the model was fitted to (its rows, original units)."""
    return np.asarray(model._y, dtype=float)


def formula_parts(model) -> tuple[str, str]:
    """The response and the fixed-effects right-hand side (R syntax) of the model."""
    mf = model._model
    fixed = " + ".join(t.name for t in mf.fixed) or "1"
    if not mf.intercept:
        fixed = "0 + " + fixed if mf.fixed else "0"
    return str(mf.response), fixed


def refit(model, formula: ModelFormula, reml: bool, fit) -> object:
    """Fit another model (a :class:`~vcomp.terms.ModelFormula`) to the rows the model used.

    ``fit`` is :func:`vcomp.mixed.model.fit`; the model's cleaned data and its variables' roles and
    contrast codings are passed on, so the number of observations and the coding cannot change.
    """
    import warnings

    used = set(formula.variables())
    specs = model._mf.specs
    factors = [v for v, sp_ in specs.items() if sp_.kind == "factor" and v in used]
    covariates = [v for v, sp_ in specs.items() if sp_.kind == "covariate" and v in used and v != formula.response]
    contrasts = {v: sp_.contrast for v, sp_ in specs.items() if sp_.contrast is not None and v in used}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reduced model's own boundary / convergence notes
        return fit(formula, model.data, reml, contrasts=contrasts or None, factors=factors, covariates=covariates)


def blas_single_thread():
    """Context manager: BLAS on one thread while it is active.

    The profile runs thousands of tiny (p+1 or a few dozen square) factorizations; a threaded
    OpenBLAS spends ~1 ms waking its threads for each (50x the work) on a loaded machine.
    """
    return threadpool_limits(limits=1, user_api="blas")
