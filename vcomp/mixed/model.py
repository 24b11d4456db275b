"""``vcomp.lmm`` and the fitted :class:`MixedModel`: the fit as a chain of small named stages.

``lmm`` chains, as lme4's ``lmer`` does: parse (:mod:`vcomp.terms`) -> model frame and coding
(:mod:`vcomp._coding`) -> fixed columns (aliased ones dropped) -> random-effects terms
(:mod:`vcomp.mixed.reterm`) -> standardisation and cross-products, once
(:mod:`vcomp.mixed.crossprod`) -> criterion (:mod:`vcomp.mixed.criterion`) -> optimizer
(:mod:`vcomp.mixed.optimize`) -> :class:`MixedModel`.  Inference (:mod:`vcomp.inference`)
reuses the model's cross-products.
"""
from __future__ import annotations

import dataclasses

from functools import cached_property
from typing import Any, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._coding import FixedCoding, ModelFrame, _is_dask, as_frame, model_frame
from .._threads import entry_point
from .._errors import ConvergenceWarning, DataError, FormulaError, SingularFitWarning, VcompError, warn
from ..formula import contrast_kind, parse_residual
from ..tables import TableMixin
from ..terms import ModelFormula, parse_formula, quote_names
from .criterion import make_kernel, objective
from .crossprod import (CrossProducts, Standardization, check_residual, crossproducts, drop_aliased, standardize,
                        centered_crossprod, transposed_z, with_response, xtx_factor)
from .optimize import gradient_hessian, optimize_theta, refine_theta
from .reterm import ReTerm, build_re_terms, theta_layout, tril_from_theta, z_matrix

__all__ = ["lmm", "fit", "fit_design", "fit_residual_model", "MixedModel", "OPTIONS"]

SINGULAR_TOL = 1e-4

#: keyword options of :func:`lmm` (besides ``reml``)
OPTIONS = ("contrasts", "factors", "theta0")


def _check_reml(reml) -> bool:
    if isinstance(reml, (bool, np.bool_)):
        return bool(reml)
    raise VcompError("reml must be True (REML) or False (maximum likelihood), got %r (%s)"
                     % (reml, type(reml).__name__))


def _check_options(options: Mapping[str, Any]) -> dict:
    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        hint = ""
        if "REML" in unknown:
            hint = " (write reml=False for maximum likelihood)"
        elif "weights" in unknown or "family" in unknown:
            hint = " (vcomp fits unweighted Gaussian linear mixed models only)"
        raise VcompError("unknown keyword%s %s for vcomp.lmm%s; accepted: reml, %s"
                         % ("s" if len(unknown) > 1 else "", ", ".join(map(repr, unknown)), hint, ", ".join(OPTIONS)))
    out = dict(options)
    con = out.get("contrasts")
    if con is not None:
        if not isinstance(con, Mapping):
            raise VcompError("contrasts must be a dict {factor: coding}, e.g. {'variety': 'sum'}; codings: "
                             "sum, treatment, sas, helmert, poly")
        out["contrasts"] = {str(k): contrast_kind(v, "contrast coding for %r" % k) for k, v in con.items()}
    fac = out.get("factors")
    if fac is not None:
        out["factors"] = [fac] if isinstance(fac, str) else [str(f) for f in fac]
    return out


def lmm(formula: str, data: pd.DataFrame, reml: bool = True, residual: str | None = None,
        **options: Any) -> "MixedModel":
    """Fit a linear mixed model by REML (default) or ML, in lme4 formula syntax.

    Parameters
    ----------
    formula : str
        lme4 formula: ``"y ~ x + (x|g)"``, ``"y ~ A*B + (1|block/A)"``, ``"y ~ x + (x||g)"``,
        crossed ``"(1|plate) + (1|sample)"``.  Quote odd column names as ```grain yield``` or
        ``Q("grain yield")``.  A numeric column is a covariate unless wrapped in ``C()``
        or listed in ``factors``.
    data : DataFrame
        Never modified; rows with a missing value in a used column are dropped
        (counted, :class:`~vcomp.DroppedRowsWarning`).
    reml : bool
        REML (True, default) or maximum likelihood.
    residual : str, optional
        A residual covariance structure: ``"ar1(time | subject)"``, ``"cs(...)"``, ``"us(...)"``,
        ``"toep(...)"``, ``"ar1h(...)"``, ``"csh(...)"``, ``"us(time | group / subject)"``,
        ``"diag(1 | group)"``, ``"ar1(row):ar1(col)"`` (optionally ``" | trial"``); see
        :mod:`vcomp.mixed.residual`. The formula may then be purely fixed (nlme's ``gls``), and a
        ``(1 | plot)`` with one level per observation is a nugget. ``theta0`` then lists lme4's θ of
        the random terms followed by the structure's optimizer parameters (``_residual.x`` layout).
    **options
        ``contrasts``: ``{factor: "sum"|"treatment"|"sas"|"helmert"|"poly"}`` (the coding of the
        coefficients, as R's ``contrasts=``; tests and means do not depend on it);
        ``factors``: numeric columns to read as factors; ``theta0``: starting θ (lme4's
        parameterisation).  Any other keyword is an error.

    Returns
    -------
    MixedModel
    """
    reml = _check_reml(reml)
    opts = _check_options(options)
    frame = data if _is_dask(data) else as_frame(data)
    if isinstance(formula, str):
        cols = frame.columns
        formula = quote_names(formula, cols.tolist() if hasattr(cols, "tolist") else list(cols))
    model = parse_formula(formula)
    if residual is not None:
        return fit_residual_model(model, frame, reml, residual, **opts)
    return fit(model, frame, reml, **opts)


def fit_residual_model(model: ModelFormula, data, reml: bool, residual: str, *, contrasts: Mapping | None = None,
                       factors=(), covariates=(), theta0=None) -> "MixedModel":
    """``lmm`` with a ``residual=`` structure: the same stages, the engine of :mod:`vcomp.mixed.residual_fit`."""
    from .residual import residual_frame
    from .residual_fit import fit_residual, split_nugget
    spec = parse_residual(residual)
    if _is_dask(data):
        raise VcompError("residual= needs the rows in memory (a pandas DataFrame); call .compute() on the Dask "
                         "DataFrame first")
    data, rframe = residual_frame(spec, data)
    factors = set(factors or ()) | set(model.factors)
    covariates = set(covariates or ()) | set(model.covariates)
    mf = model_frame(model, data, factors=factors, covariates=covariates, contrasts=contrasts,
                     context="from the model frame")
    _check_specs(model, mf, factors)
    rframe = rframe.iloc[np.asarray(mf.row_index)].reset_index(drop=True)
    fixed, X = fixed_columns(model, mf)
    n, p = X.shape
    _check_sizes(model, n, p, None)
    specs, nugget = split_nugget(list(model.random), mf)
    terms = build_re_terms(specs, mf, n)
    std, Xi, yi = standardize(X, mf.y)
    Z = z_matrix(terms, n) if terms else None
    x0 = None
    m = sum(t.ntheta for t in terms)
    if theta0 is not None:
        th = np.asarray(theta0, dtype=float).ravel()
        x0 = np.concatenate([_internal_theta(terms, th[:m]) if terms else np.zeros(0), th[m:]])
    rfit, sol, opt = fit_residual(spec, rframe, Xi, yi, terms, Z, nugget, reml, x0, std.scale)
    cp = rfit.criterion.crossproducts()
    opt_theta = type(opt)(opt.theta[:m], opt.fun, opt.converged, opt.nfev, opt.message)
    return MixedModel(model=model, mf=mf, fixed=fixed, X=X, terms=terms, std=std, cp=cp, kernel=rfit.criterion,
                      reml=reml, opt=opt_theta, sol=sol, Xi=Xi, Z=Z, residual=rfit)


def fit_design(design, data, response, reml: bool = True, **options: Any) -> "MixedModel":
    """REML/ML fit of a :class:`~vcomp.Design` (its parsed terms, its factor roles)."""
    reml = _check_reml(reml)
    opts = _check_options(options)
    if not isinstance(response, (str, int)):
        raise VcompError("response must be a column name, got %r" % (response,))
    return fit(design.model_formula(str(response)), data, reml, **opts)


@entry_point
def fit(model: ModelFormula, data, reml: bool = True, *, contrasts: Mapping | None = None, factors=(),
        covariates=(), theta0=None) -> "MixedModel":
    """Fit a parsed model (a :class:`~vcomp.terms.ModelFormula`, e.g. from a Design) -- the stages of ``lmm``."""
    reml = _check_reml(reml)
    factors = set(factors or ()) | set(model.factors)
    covariates = set(covariates or ()) | set(model.covariates)
    source = Xi = Z = None
    if _is_dask(data):  # out of core: the same stages from statistics reduced by Dask (vcomp._dask)
        from .._dask.mixed import reduced_inputs

        mf, fixed, X, terms, std, cp, source = reduced_inputs(model, data, factors, covariates, contrasts)
        _check_specs(model, mf, factors)
        _check_sizes(model, cp.n, cp.p, terms)
    else:
        mf = model_frame(model, data, factors=factors, covariates=covariates, contrasts=contrasts,
                         context="from the model frame")
        _check_specs(model, mf, factors)
        fixed, X = fixed_columns(model, mf)
        n, p = X.shape
        _check_sizes(model, n, p, None)
        terms = build_re_terms(list(model.random), mf, n)
        _check_sizes(model, n, p, terms)
        std, Xi, yi = standardize(X, mf.y)
        cp = crossproducts(Xi, yi, terms, ones=std.icpt)  # Z is formed there (sparse, or dense when small)
    check_residual(cp, xtx_factor(cp))
    kernel = make_kernel(terms, cp)
    lower, start = theta_layout(terms)
    if theta0 is not None:
        start = _internal_theta(terms, theta0)
    f, fg = objective(kernel, reml)
    opt = optimize_theta(f, start, lower, fg=fg)
    sol = kernel.solve(opt.theta, reml)
    return MixedModel(model=model, mf=mf, fixed=fixed, X=X, terms=terms, std=std, cp=cp, kernel=kernel,
                      reml=reml, opt=opt, sol=sol, Xi=Xi, Z=Z, source=source)


def _check_specs(model: ModelFormula, mf, factors) -> None:
    """``factors=`` names variables of the model; every factor of a model term has at least 2 levels."""
    for v in sorted(factors):
        if v not in mf.specs:
            raise VcompError("factors= names %r, which is not a variable of the model (%s)"
                             % (v, ", ".join(map(repr, mf.specs)) or "none"))
    for t in list(model.fixed) + [x for r in model.random for x in r.terms]:
        for v in t.variables:
            s = mf.specs[v]
            if s.kind == "factor" and len(s.labels) < 2:
                raise DataError("factor %r has %d level (%s) in the rows analysed; a factor in a model term needs at "
                                "least 2 levels (as in R). Drop it from the formula or check the data."
                                % (v, len(s.labels), ", ".join(s.labels)))


def _check_sizes(model: ModelFormula, n: int, p: int, terms) -> None:
    """Residual degrees of freedom for the fixed part; at least one random term (``terms`` None: not yet built)."""
    if n <= p:
        raise DataError("%d observations for %d fixed effects: no residual degrees of freedom." % (n, p))
    if terms is not None and not terms:
        raise FormulaError("formula %r has no random-effects term like (1|g); use vcomp.anova or an "
                           "ordinary least-squares fit for a purely fixed model." % (model.text or str(model)))


def _internal_theta(terms: list[ReTerm], theta0) -> np.ndarray:
    try:
        th = np.asarray(theta0, dtype=float).ravel()
    except (TypeError, ValueError):
        raise VcompError("theta0 must be a sequence of numbers") from None
    m = sum(t.ntheta for t in terms)
    if th.size != m:
        raise VcompError("theta0 has %d value(s) but the model has %d variance parameters (theta, lme4's layout: "
                         "%s)" % (th.size, m, ", ".join("%s: %d" % (t.name, t.ntheta) for t in terms)))
    if not np.all(np.isfinite(th)):
        raise VcompError("theta0 must be finite")
    out = np.concatenate([t.internal_theta(th[t.theta_slice]) for t in terms])
    lower, _ = theta_layout(terms)
    if np.any(out < lower):
        raise VcompError("theta0 has a negative diagonal element (they are standard-deviation ratios, >= 0)")
    return out


def fixed_columns(model: ModelFormula, mf: ModelFrame) -> tuple[FixedCoding, np.ndarray]:
    """The fixed part's coding and matrix; aliased columns are dropped (warned) as lme4 does."""
    fixed = FixedCoding(list(model.fixed), model.intercept, mf.specs, "treatment")
    X = fixed.build(mf.values, mf.n)
    if X.shape[1]:
        fixed, keep, dropped = drop_aliased(fixed, centered_crossprod(X, model.intercept))
        if dropped:
            X = X[:, keep]
    return fixed, X


class MixedModel(TableMixin):
    """A fitted linear mixed model (REML or ML), with lme4's results.

    Public members: ``fixef``, ``vcov``, ``sigma``, ``nobs``, ``reml_criterion``, ``loglik``,
    ``aic``, ``bic``, ``singular``, ``varcorr``, ``ranef``, ``ranef_var`` (conditional
    variances of the BLUPs), ``theta`` (lme4's), ``reml``, ``formula``, ``data``, ``fitted()``,
    ``residuals()``, ``predict(newdata)``, ``refit(y)``, ``summary()``, and the inference
    methods ``coef_table``, ``anova``, ``contrast``, ``vcov_kr``, ``shrinkage``, and the variance-component
    inference ``confint``, ``heritability``, ``ranova`` (with :func:`vcomp.compare`).

    Documented internals (for vcomp's own modules)
    ----------------------------------------------
    _cp : CrossProducts
        The internal cross-products (kept; never recomputed from the data).
    _std : Standardization
        The map between internal and original coordinates.
    _theta : ndarray
        The internal θ (term-scaled); ``sigma_int`` the internal residual SD.
    _re_terms : list of ReTerm
    _fixed : FixedCoding
        ``colnames``, ``terms``, ``assign``; ``build``/``build_frame`` for new rows.
    _X, _y : ndarray
        Original fixed matrix and response (for fitted values and residuals).
    _kernel
        The criterion object: ``_kernel(theta_int, reml)``, ``_kernel.parts(theta_int, reml)``.
    _source
        None for in-memory data; for a Dask DataFrame the object that computes per-row outputs
        lazily and further per-level sums (:class:`vcomp._dask.mixed.DaskRows`).  Then ``_X`` holds
        weighted rows with the data's moments (``_mf.weights``), not the data's rows.
    _residual : ResidualFit or None
        A ``residual=`` structure's fit (:mod:`vcomp.mixed.residual_fit`): ``.x`` (internal θ, then
        the structure's parameters), ``.criterion`` (``criterion(x, reml)``, ``.gradient``),
        ``.params``, ``.structure``, ``.layout``. Then ``_kernel`` is that criterion too.
    """

    @property
    def _frame(self) -> pd.DataFrame:
        """The analysed raw columns (kept rows, index reset)."""
        return self._mf.frame

    def __init__(self, *, model, mf, fixed, X, terms, std, cp, kernel, reml, opt, sol, Xi=None, Z=None, source=None,
                 residual=None):
        self.formula: str = model.text or _formula_text(model)
        #: the fitted residual structure (:class:`vcomp.mixed.residual_fit.ResidualFit`) or None
        self._residual = residual
        self.reml: bool = bool(reml)
        self._model = model
        self._mf = mf
        self._y: np.ndarray = mf.y
        self._fixed: FixedCoding = fixed
        self._X: np.ndarray = X
        self._Xi = Xi
        self._re_terms: list[ReTerm] = terms
        self._std: Standardization = std
        self._cp: CrossProducts = cp
        self._kernel = kernel
        self._Zi = Z
        self._Zpub = None
        self._source = source
        self._opt = opt
        self._theta = np.asarray(opt.theta, dtype=float)
        self._sol = sol
        self.n_dropped: int = int(mf.n_dropped)
        self.nobs: int = int(cp.n)
        self.sigma_int: float = float(sol["sigma"])
        self.sigma: float = std.scale * self.sigma_int
        self.theta: np.ndarray = (np.concatenate([t.public_theta(self._theta[t.theta_slice]) for t in terms])
                                  if terms else np.zeros(0))
        names = list(fixed.colnames)
        crit = std.criterion(float(sol["criterion"]), self.reml, self.nobs, len(names))
        self.reml_criterion: float = crit if self.reml else float("nan")
        self.deviance: float = float("nan") if self.reml else crit
        self.loglik: float = -crit / 2.0
        self.npar: int = len(names) + len(self.theta) + 1 + (residual.n_params if residual is not None else 0)
        self.aic: float = -2 * self.loglik + 2 * self.npar
        self.bic: float = -2 * self.loglik + np.log(self.nobs) * self.npar
        lower, _ = theta_layout(terms)
        diag = np.isfinite(lower)
        self.singular: bool = bool(np.any(self._theta[diag] < SINGULAR_TOL)) or bool(
            residual is not None and residual.singular)
        self.converged: bool = bool(opt.converged)
        if self.singular:
            warn("boundary (singular) fit: a variance component or covariance factor is on its boundary (see "
                 ".varcorr); consider simplifying the random effects.", SingularFitWarning)
        elif not opt.converged:
            warn("the optimizer did not report convergence (%s); check the fit." % opt.message, ConvergenceWarning)

    # ------------------------------------------------------------------ results (built on first use)
    @cached_property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates (original units), indexed by coefficient name."""
        return pd.Series(self._std.beta(self._sol["beta"]), index=list(self._fixed.colnames), name="estimate")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Model-based covariance of the fixed effects (lme4's ``vcov``)."""
        names = list(self._fixed.colnames)
        return pd.DataFrame(self._std.vcov(self._sol["vcov"]), index=names, columns=names)

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))``: ``grp, var1, var2, vcov, sdcor``, residual last."""
        rows = []
        for t in self._re_terms:
            rows += t.varcorr_rows(self._theta[t.theta_slice], self.sigma)
        if self._residual is not None:
            rows += self._residual.varcorr_rows()
        else:
            rows.append(("Residual", None, None, self.sigma ** 2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    @cached_property
    def _blups(self) -> tuple[list, list]:
        """Per term: conditional modes (levels x k) and conditional covariance blocks, original units."""
        s = self._std.scale
        bs, cvs = [], []
        for t, b, cv in zip(self._re_terms, self._sol["b_terms"], self._sol["condvar_terms"]):
            d = t.scale
            bs.append(s * b / d[None, :])
            cvs.append((s ** 2) * cv / d[None, :, None] / d[None, None, :])
        return bs, cvs

    @property
    def _b_terms(self) -> list:
        return self._blups[0]

    @property
    def _condvar(self) -> list:
        return self._blups[1]

    @cached_property
    def _ranef_frames(self) -> tuple[dict, dict]:
        ranef: dict = {}
        rvar: dict = {}
        for t, bp, cvp in zip(self._re_terms, *self._blups):
            df = pd.DataFrame(bp, index=pd.Index(t.levels, name=t.group), columns=t.ranef_names)
            cvd = pd.DataFrame(np.stack([cvp[:, j, j] for j in range(t.k)], axis=1),
                               index=pd.Index(t.levels, name=t.group), columns=t.ranef_names)
            if t.group in ranef:
                ranef[t.group] = _join_columns(ranef[t.group], df)
                rvar[t.group] = _join_columns(rvar[t.group], cvd)
            else:
                ranef[t.group], rvar[t.group] = df, cvd
        return ranef, rvar

    @property
    def ranef(self) -> dict:
        """Conditional modes (BLUPs): ``{group: DataFrame}``, index the levels, columns the coefficients."""
        return self._ranef_frames[0]

    @property
    def ranef_var(self) -> dict:
        """Conditional variances of the BLUPs (diagonal of lme4's condVar), same layout as ``ranef``."""
        return self._ranef_frames[1]

    @cached_property
    def _b(self) -> np.ndarray:
        return np.concatenate([b.reshape(-1) for b in self._b_terms]) if self._b_terms else np.zeros(0)

    # ------------------------------------------------------------------ accessors
    @property
    def data(self) -> pd.DataFrame:
        """The cleaned copy of the data the model was fitted to (a lazy Dask DataFrame for Dask data)."""
        if self._source is not None:
            return self._source.data(self)
        return self._frame

    @property
    def Z(self) -> sp.csr_matrix:
        """Sparse random-effects model matrix (n x q, lme4 column order, original units), built on first use."""
        if self._source is not None:
            raise VcompError("Z (n x q) is not formed for a model fitted to Dask data; its cross-products are kept "
                             "(the fit, tests, BLUPs and shrinkage use them)")
        if self._Zpub is None:
            self._Zpub = z_matrix(self._re_terms, self.nobs, internal=False)
        return self._Zpub

    _Z = Z

    def _Lambda(self, theta: np.ndarray | None = None) -> sp.csc_matrix:
        """lme4's sparse q x q relative covariance factor Λ(θ) (θ in lme4's parameterisation)."""
        th = self.theta if theta is None else np.asarray(theta, dtype=float)
        blocks = [sp.kron(sp.identity(t.nlev, format="csc"), sp.csc_matrix(tril_from_theta(th[t.theta_slice], t.k)),
                          format="csc") for t in self._re_terms]
        return sp.block_diag(blocks, format="csc") if blocks else sp.csc_matrix((0, 0))

    @property
    def residual_params(self) -> pd.DataFrame:
        """Parameters of the residual covariance (``name, estimate``); ``sigma2`` without a structure."""
        if self._residual is not None:
            return self._residual.params
        return pd.DataFrame({"name": ["sigma2"], "estimate": [self.sigma ** 2]})

    def _pieces_override(self):
        """Inference pieces for models the lme4 path does not cover (residual structures), else None."""
        if self._residual is None:
            return None
        from .residual_fit import residual_pieces
        pc = residual_pieces(self._residual, self._re_terms, self._theta, self._sol["beta"])
        pc.beta = self._std.internal_beta(self._sol["beta"])      # the response's centre folded in, as reported
        return pc

    def _criterion(self, theta: np.ndarray, reml: bool | None = None) -> float:
        """lme4's profiled criterion of the original data at lme4's θ (REML or ML); with a residual
        structure, θ is followed by the structure's parameters (``_residual.x`` layout)."""
        if self._residual is not None:
            th = np.asarray(theta, dtype=float)
            m = len(self.theta)
            x = np.concatenate([np.concatenate([t.internal_theta(th[t.theta_slice]) for t in self._re_terms])
                                if self._re_terms else np.zeros(0), th[m:]])
            r = self.reml if reml is None else reml
            return self._std.criterion(self._residual.criterion(x, r), r, self.nobs, self._cp.p)
        th = np.concatenate([t.internal_theta(np.asarray(theta, dtype=float)[t.theta_slice])
                             for t in self._re_terms])
        r = self.reml if reml is None else reml
        return self._std.criterion(self._kernel(th, r), r, self.nobs, self._cp.p)

    @property
    def b(self) -> np.ndarray:
        """Conditional modes of the random effects as one vector (Z's column order)."""
        return self._b

    @property
    def random_cov(self) -> dict:
        """Covariance matrix of each term's random effects (DataFrame per lme4 VarCorr name)."""
        return {t.name: pd.DataFrame(t.cov(self._theta[t.theta_slice], self.sigma), index=t.coef_names,
                                     columns=t.coef_names) for t in self._re_terms}

    def _random_part(self, terms_codes) -> np.ndarray:
        out = np.zeros(len(terms_codes[0][0])) if terms_codes else np.zeros(self.nobs)
        for (codes, Xi), b in zip(terms_codes, self._b_terms):
            ok = codes >= 0
            out[ok] += np.sum(Xi[ok] * b[codes[ok]], axis=1)
        return out

    def fitted(self) -> np.ndarray:
        """Conditional fitted values X beta + Z b (a lazy Dask Series for Dask data)."""
        if self._source is not None:
            return self._source.fitted(self)
        return self._X @ self.fixef.to_numpy() + self._random_part([(t.codes, t.Xi) for t in self._re_terms])

    def residuals(self) -> np.ndarray:
        """Response minus conditional fitted values (a lazy Dask Series for Dask data)."""
        if self._source is not None:
            return self._source.residuals(self)
        return self._y - self.fitted()

    def predict(self, newdata: pd.DataFrame | None = None, re: bool = True) -> np.ndarray:
        """Predictions X beta + Z b for new data; unseen levels get the population level (b = 0).

        Parameters
        ----------
        newdata : DataFrame, optional
            Defaults to the fitted data.
        re : bool
            Include the random effects (False: population-level predictions).
        """
        if self._source is not None and newdata is None:
            return self._source.predict(self, re)
        if _is_dask(newdata):
            from .._dask.mixed import predict_lazily
            return predict_lazily(self, newdata, re)
        if newdata is None:
            return self.fitted() if re else self._X @ self.fixef.to_numpy()
        X = self._fixed.build_frame(newdata)
        out = X @ self.fixef.to_numpy()
        if re:
            out = out + self._random_part([t.new_codes(newdata) for t in self._re_terms])
        return out

    @cached_property
    def _refit_hessian(self) -> np.ndarray | None:
        """Hessian of the criterion in the internal θ at this fit's optimum (the warm start of its refits);
        None without an analytic gradient, with more than 6 parameters or at a boundary."""
        f, fg = objective(self._kernel, self.reml)
        lower, _ = theta_layout(self._re_terms)
        m = len(self._theta)
        if fg is None or m == 0 or m > 6 or np.any(self._theta[np.isfinite(lower)] < 1e-2):
            return None
        return gradient_hessian(fg, self._theta, range(m))

    @cached_property
    def _zt(self):
        """``Z'`` (internal scaling, CSR) for the ``Z'y`` of refits."""
        return transposed_z(z_matrix(self._re_terms, self.nobs))

    @cached_property
    def _xtx_factor(self):
        """Cholesky factor of the internal X'X (for the exact-fit check of refits); None if not definite."""
        return xtx_factor(self._cp)

    @entry_point
    def refit(self, y) -> "MixedModel":
        """The same model fitted to a new response (lme4's ``refit``, MixedModels.jl's ``refit!``).

        Everything that does not depend on y is reused: the coding, the terms, Z'Z, Z'X, X'X and
        the criterion's structure; only X'y, Z'y and y'y are recomputed, and θ is warm-started.

        Parameters
        ----------
        y : array_like, shape (nobs,)
            The new response, in the rows of the fitted data (after any dropped rows).
        """
        if self._source is not None:
            raise VcompError("refit(y) needs the rows in memory; for Dask data add the new response as a column "
                             "and fit again (the levels and cross-products are recomputed in two passes)")
        try:
            y = np.asarray(y, dtype=float).ravel()
        except (TypeError, ValueError):
            raise DataError("refit: y must be numeric, got %r" % type(y).__name__) from None
        if y.shape != (self.nobs,):
            raise DataError("refit: y has %d values but the model has %d observations" % (y.size, self.nobs))
        if self._residual is not None:
            return self._refit_residual(y)
        if not np.all(np.isfinite(y)):
            raise DataError("refit: y has missing or infinite values")
        std0 = self._std
        c = float(np.mean(y)) if std0.icpt is not None else 0.0
        yc = y - c
        s = float(np.sqrt(np.mean(yc ** 2)))
        if s <= 0:
            raise DataError("refit: the new response is constant")
        std = Standardization(std0.T, c, s, std0.icpt)
        yi = yc / s
        cp = with_response(self._cp, self._Xi, yi, self._re_terms, Zt=None if self._cp.block else self._zt)
        check_residual(cp, self._xtx_factor)
        rebind = getattr(self._kernel, "with_response", None)
        kernel = rebind(cp) if rebind is not None else make_kernel(self._re_terms, cp)
        lower, start = theta_layout(self._re_terms)
        # warm start, except a diagonal element on its zero bound: the criterion is flat in it there
        # (a stationary point), so it restarts from lme4's start as a fresh fit would
        theta0 = np.where(np.isfinite(lower) & (self._theta < 1e-3), start, self._theta)
        f, fg = objective(kernel, self.reml)
        H0 = self._refit_hessian
        trail: list = []
        opt = refine_theta(f, fg, theta0, lower, H0, trail=trail) if H0 is not None else None
        if opt is None:   # near a boundary: the full optimizer, from where the warm run got to
            opt = optimize_theta(f, trail[-1] if trail else theta0, lower, fg=fg, quick=not trail)
        sol = kernel.solve(opt.theta, self.reml)
        mf = dataclasses.replace(self._mf, y=y)
        new = MixedModel(model=self._model, mf=mf, fixed=self._fixed, X=self._X, terms=self._re_terms, std=std,
                         cp=cp, kernel=kernel, reml=self.reml, opt=opt, sol=sol, Xi=self._Xi, Z=self._Zi)
        # the hypothesis matrices depend on the coding and X'X only, not on y: reuse them
        old = getattr(self, "_inference_cache", None) or {}
        hyp = {k: v for k, v in old.items() if isinstance(k, tuple) and k[0] == "hyp"}
        if hyp:
            new._inference_cache = hyp
        return new

    def _refit_residual(self, y: np.ndarray) -> "MixedModel":
        """``refit`` of a residual-structure model (:func:`vcomp.mixed.residual_fit.refit_residual`)."""
        from .residual_fit import refit_residual
        if not np.all(np.isfinite(y)):
            raise DataError("refit: y has missing or infinite values")
        std0 = self._std
        c = float(np.mean(y)) if std0.icpt is not None else 0.0
        s = float(np.sqrt(np.mean((y - c) ** 2)))
        if s <= 0:
            raise DataError("refit: the new response is constant")
        std = Standardization(std0.T, c, s, std0.icpt)
        rfit, sol, opt = refit_residual(self._residual, self._Xi, (y - c) / s, self._Zi, self.reml, s)
        m = len(self.theta)
        opt_theta = type(opt)(opt.theta[:m], opt.fun, opt.converged, opt.nfev, opt.message)
        mf = dataclasses.replace(self._mf, y=y)
        return MixedModel(model=self._model, mf=mf, fixed=self._fixed, X=self._X, terms=self._re_terms, std=std,
                          cp=rfit.criterion.crossproducts(), kernel=rfit.criterion, reml=self.reml, opt=opt_theta,
                          sol=sol, Xi=self._Xi, Z=self._Zi, residual=rfit)

    # ------------------------------------------------------------------ inference (vcomp.inference)
    def coef_table(self, ddf="satterthwaite"):
        """Fixed effects with SE, df, t, p (``ddf``: "satterthwaite" or "kenward-roger")."""
        from ..inference import coef_table
        return coef_table(self, ddf)

    def anova(self, ddf="satterthwaite", type=3):
        """F tests of the fixed terms (type III by default)."""
        from ..inference import anova_table
        return anova_table(self, ddf, type)

    def contrast(self, L, ddf="satterthwaite"):
        """F test of ``L @ beta = 0``."""
        from ..inference import contrast_table
        return contrast_table(self, L, ddf)

    def vcov_kr(self):
        """Kenward-Roger adjusted covariance of the fixed effects."""
        from ..inference import vcov_kr
        return vcov_kr(self)

    def means(self, term, by=None, ddf="kenward-roger", level=0.95):
        """Estimated marginal means of a fixed term (``emmeans(fit, ~ term, lmer.df = ddf)``).

        Parameters
        ----------
        term : str
            Factors of the fixed part, e.g. ``"nitro"`` or ``"variety:nitro"``.
        by : str or list of str, optional
            Factors of ``term``: comparisons within each of their levels.
        ddf : {"kenward-roger", "satterthwaite"}
        level : float
            Confidence level.

        Returns
        -------
        Means
            ``table``, ``pairs(adjust=)``, ``letters()``, ``sed``, ``lsd()``, ``plot()``.
        """
        from ..means import mixed_means
        return mixed_means(self, term, by=by, ddf=ddf, level=level)

    def shrinkage(self, group=None):
        """Per-level own least-squares vs mixed-model coefficients."""
        from .shrinkage import shrinkage
        return shrinkage(self, group)

    # ------------------------------------------------------------------ variance components (issue 12)
    def confint(self, level: float = 0.95, method: str = "profile", parm=None) -> pd.DataFrame:
        """Profile (default) or Wald confidence intervals, lme4's ``confint`` (see :mod:`vcomp.mixed.profile`);
        ``parm``: ``"theta_"``, ``"beta_"`` or row names (default all rows)."""
        from .profile import confint
        return confint(self, level, method, parm)

    def heritability(self, group: str, method: str = "cullis") -> float:
        """Heritability of the random factor ``group``: "cullis", "piepho" or "standard"
        (see :mod:`vcomp.mixed.heritability`)."""
        from .heritability import heritability
        return heritability(self, group, method, fit=fit)

    def ranova(self) -> pd.DataFrame:
        """Likelihood-ratio tests of the random terms, lmerTest's ``ranova`` (see :mod:`vcomp.mixed.compare`)."""
        from .compare import ranova
        return ranova(self, fit=fit)

    # ------------------------------------------------------------------ printing
    def summary(self) -> str:
        """lmerTest-style summary text (fixed effects with Satterthwaite df and p values)."""
        return str(self)

    def _random_table(self) -> pd.DataFrame:
        """lme4's "Random effects" table as numbers: Groups, Name, Variance, Std.Dev. and the correlations
        (``Corr``, ``Corr.2``, ...: with the 1st, 2nd, ... coefficient of the term; NaN where none)."""
        rows = []
        kmax = max([t.k for t in self._re_terms] + [1])
        for t in self._re_terms:
            C = t.cov(self._theta[t.theta_slice], self.sigma)
            sd = np.sqrt(np.clip(np.diag(C), 0, None))
            for j in range(t.k):
                row = {"Groups": t.name if j == 0 else "", "Name": t.coef_names[j], "Variance": C[j, j],
                       "Std.Dev.": sd[j]}
                for l in range(kmax - 1):
                    row["Corr" if l == 0 else "Corr.%d" % (l + 1)] = (
                        C[j, l] / (sd[j] * sd[l]) if l < j and sd[j] > 0 and sd[l] > 0 else np.nan)
                rows.append(row)
        nug = self._residual.nugget if self._residual is not None else None
        if nug is not None:
            rows.append({"Groups": nug[0], "Name": "(Intercept)", "Variance": nug[1], "Std.Dev.": np.sqrt(nug[1])})
        rows.append({"Groups": "Residual", "Name": "", "Variance": self.sigma ** 2, "Std.Dev.": self.sigma})
        return pd.DataFrame(rows)

    def _blocks(self) -> list:
        method = "REML" if self.reml else "maximum likelihood"
        out = ["Linear mixed model fit by %s. t-tests use Satterthwaite's method" % method,
               "Formula: %s" % self.formula]
        if self.reml:
            out.append("REML criterion at convergence: %.4f" % self.reml_criterion)
        else:
            out.append(("Model fit:", pd.DataFrame([[self.aic, self.bic, self.loglik, -2 * self.loglik,
                                             self.nobs - len(self.fixef)]],
                                           columns=["AIC", "BIC", "logLik", "deviance", "df.resid"]),
                        {"index": False, "digits": 6, "formats": {"df.resid": "int"}}))
        if self._source is None:
            res = self.residuals() / self.sigma
            q = np.quantile(res, [0, .25, .5, .75, 1])
            cols = ["Min", "1Q", "Median", "3Q", "Max"]
            out.append(("Scaled residuals:", pd.DataFrame([q], columns=cols),
                        {"index": False, "formats": {c: "fixed4" for c in cols}}))
        else:
            out.append("Fitted to a Dask DataFrame (%d partitions): residuals() is a lazy Dask Series."
                       % self._source.npartitions)
        rt = self._random_table()
        corr = [c for c in rt.columns if c.startswith("Corr")]
        out.append(("Random effects:", rt, {"index": False,
                                            "formats": {"Groups": "text", "Name": "text", **{c: "fixed2" for c in corr}},
                                            "labels": {c: "" for c in corr[1:]}}))
        if self._residual is not None:
            out.append((self._residual.describe(), self.residual_params, {"index": False}))
        grp = {}
        for t in self._re_terms:
            grp.setdefault(t.group, t.nlev)
        out.append("Number of obs: %d" % self.nobs + (", groups: %s" % "; ".join("%s, %d" % kv for kv in grp.items())
                                                      if grp else ""))
        try:
            fe = pd.DataFrame(self.coef_table("satterthwaite"))
            labels = {"estimate": "Estimate", "se": "Std. Error", "df": "df", "t": "t value", "p": "Pr(>|t|)"}
        except (VcompError, np.linalg.LinAlgError) as exc:  # print the estimates even without df
            se = np.sqrt(np.diag(self.vcov.to_numpy()))
            fe = pd.DataFrame({"estimate": self.fixef.to_numpy(), "se": se, "t": self.fixef.to_numpy() / se},
                              index=self.fixef.index)
            labels = {"estimate": "Estimate", "se": "Std. Error", "t": "t value"}
            out.append("Satterthwaite df are not available for this fit (%s)." % exc)
        out.append(("Fixed effects:", fe, {"labels": labels}))
        if self.singular:
            out.append("boundary (singular) fit: a variance component or correlation is on its boundary (see .varcorr).")
        if self.n_dropped:
            out.append("%d row(s) with missing values dropped." % self.n_dropped)
        return out


def _formula_text(model: ModelFormula) -> str:
    fixed = " + ".join(t.name for t in model.fixed) or "1"
    if not model.intercept:
        fixed = "0 + " + fixed if model.fixed else "0"
    rand = ["(%s | %s)" % (r.expr, r.group.name) for r in model.random]
    return "%s ~ %s" % (model.response, " + ".join([fixed] + rand))


def _join_columns(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """Columns of two terms on the same factor side by side (a repeated name gets ``.1``)."""
    right = right.rename(columns={c: c + ".1" for c in right.columns if c in left.columns})
    return left.join(right)
