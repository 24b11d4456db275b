"""``vcomp.lmm`` and the fitted :class:`MixedModel`."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._errors import ConvergenceWarning, SingularFitWarning
from ..formula import fixed_matrix_new, parse_formula, parse_residual
from ..tables import TableMixin, fmt_number
from ._core import make_kernel
from ._optim import optimize_theta
from ._terms import (ReTerm, build_fixed, build_re_terms, make_Lambda, make_Z, model_frame, new_term_matrix,
                     term_lambda, theta_lower, theta_start)

__all__ = ["lmm", "MixedModel"]

SINGULAR_TOL = 1e-4


def lmm(formula: str, data: pd.DataFrame, reml: bool = True, residual: str | None = None,
        **options: Any) -> "MixedModel":
    """Fit a linear mixed model by REML (default) or ML, in lme4 formula syntax.

    Parameters
    ----------
    formula : str
        lme4 formula: ``"y ~ x + (x|g)"``, ``"y ~ A*B + (1|block/A)"``, ``"y ~ x + (x||g)"``,
        crossed ``"(1|plate) + (1|sample)"``.
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
        ``(1 | plot)`` with one level per observation is a nugget.
    **options
        ``theta0`` (starting theta).

    Returns
    -------
    MixedModel

    Examples
    --------
    >>> fit = vcomp.lmm("yield ~ variety*nitro + (1|block/variety)", oats)  # doctest: +SKIP
    >>> fit.varcorr                                                          # doctest: +SKIP
    """
    parsed = parse_formula(formula)
    spec = parse_residual(residual) if residual is not None else None
    if spec is not None:
        from .residual import check_spec_columns
        check_spec_columns(spec, data)
    frame, y, ndrop = model_frame(parsed, data, extra=spec.columns if spec else ())
    fixed, dropped_cols = build_fixed(parsed, frame)
    X = fixed.X
    if X.shape[0] <= X.shape[1]:
        from .._errors import DataError
        raise DataError("%d observations for %d fixed effects: no residual degrees of freedom." % X.shape)
    if spec is not None:
        return _lmm_residual(formula, parsed, spec, frame, y, ndrop, fixed, dropped_cols, reml, options)
    terms = build_re_terms(parsed.random, frame)
    if not terms:
        from .._errors import FormulaError
        raise FormulaError("formula %r has no random-effects term like (1|g); use vcomp.anova or an "
                           "ordinary least-squares fit for a purely fixed model." % formula)
    n = len(y)
    Z = make_Z(terms, n) if len({t.group for t in terms}) > 1 else None  # lazy for one factor
    kernel = make_kernel(terms, X, y, Z)
    lower = theta_lower(terms)
    theta0 = np.asarray(options.get("theta0", theta_start(terms)), dtype=float)
    opt = optimize_theta(lambda th: kernel(th, reml), theta0, lower)
    sol = kernel.solve(opt.theta, reml)
    return MixedModel(formula=formula, parsed=parsed, frame=frame, y=y, fixed=fixed, terms=terms, Z=Z,
                      reml=reml, theta=opt.theta, sol=sol, opt=opt, n_dropped=ndrop,
                      dropped_columns=[c for c in dropped_cols])


def _lmm_residual(formula, parsed, spec, frame, y, ndrop, fixed, dropped_cols, reml, options) -> "MixedModel":
    """``lmm`` with a ``residual=`` structure: the engine of :mod:`vcomp.mixed.residual_fit`."""
    from .residual_fit import fit_residual, split_nugget
    random, nugget = split_nugget(parsed.random, frame)
    terms = build_re_terms(random, frame)
    Z = make_Z(terms, len(y)) if terms else None
    rfit, sol, opt = fit_residual(spec, frame, fixed.X, y, terms, Z, nugget, reml, options.get("theta0"))
    ntheta = sum(t.ntheta for t in terms)
    return MixedModel(formula=formula, parsed=parsed, frame=frame, y=y, fixed=fixed, terms=terms, Z=Z,
                      reml=reml, theta=opt.theta[:ntheta], sol=sol, opt=opt, n_dropped=ndrop,
                      dropped_columns=list(dropped_cols), residual=rfit)


class MixedModel(TableMixin):
    """A fitted linear mixed model (REML or ML), with lme4's results.

    Public members: ``fixef``, ``vcov``, ``sigma``, ``nobs``, ``reml_criterion``, ``loglik``,
    ``aic``, ``bic``, ``singular``, ``varcorr``, ``ranef``, ``ranef_var`` (conditional
    variances of the BLUPs), ``theta``, ``reml``, ``formula``, ``data``, ``fitted()``,
    ``residuals()``, ``predict(newdata)``, ``summary()``, and the inference methods
    ``coef_table``, ``anova``, ``contrast``, ``vcov_kr``, ``shrinkage``.

    Private attributes for the inference code (stable names)
    --------------------------------------------------------
    _X : ndarray (n, p)
        Fixed-effects matrix actually fitted (rank-deficient columns removed).
    _y : ndarray (n,)
        Response.
    _fixed : vcomp.formula.FixedMatrix
        ``X``, ``column_names``, ``term_names``, ``assign`` (-1 intercept), ``rhs`` (fixed formula).
    _re_terms : list of ReTerm
        In lme4 order; each has ``.group``, ``.name``, ``.codes`` (n ints), ``.levels``,
        ``.Xi`` (n x k), ``.coef_names``, ``.k``, ``.nlev``, ``.q``, ``.theta_slice``, ``.offset``
        (first column in Z).
    _frame : DataFrame
        Cleaned copy of the data used for the fit (same rows as ``_X``).
    _Z : scipy.sparse.csr_matrix (n, q)
        Random-effects model matrix, lme4 column order (term by term, level-major,
        coefficients within level). Also ``Z`` (property).
    _Lambda(theta=None) : method
        Sparse q x q relative covariance factor for ``theta`` (default: the fitted one).
    _kernel
        The criterion object: ``_kernel(theta, reml)`` returns the profiled criterion
        (lme4's REMLcrit/deviance) for any theta, cost independent of n.
    theta, sigma, reml
        As fitted. The covariance of the random effects is ``sigma**2 * Lambda Lambda'``.
    """

    def __init__(self, *, formula, parsed, frame, y, fixed, terms, Z, reml, theta, sol, opt,
                 n_dropped=0, dropped_columns=(), residual=None):
        self.formula: str = formula
        #: the fitted residual structure (:class:`vcomp.mixed.residual_fit.ResidualFit`) or None
        self._residual = residual
        self.reml: bool = bool(reml)
        self.theta: np.ndarray = np.asarray(theta, dtype=float)
        self._parsed = parsed
        self._frame: pd.DataFrame = frame
        self._y: np.ndarray = y
        self._fixed = fixed
        self._X: np.ndarray = fixed.X
        self._re_terms: list[ReTerm] = terms
        self._Zm = Z
        self._sol = sol
        self._opt = opt
        self._kernel = None
        self.n_dropped: int = int(n_dropped)
        self.dropped_columns = list(dropped_columns)
        self.nobs: int = len(y)
        self.sigma: float = float(sol["sigma"])
        names = list(fixed.column_names)
        self.fixef: pd.Series = pd.Series(sol["beta"], index=names, name="estimate")
        self.vcov: pd.DataFrame = pd.DataFrame(sol["vcov"], index=names, columns=names)
        crit = float(sol["criterion"])
        self.reml_criterion: float = crit if self.reml else float("nan")
        self.deviance: float = float("nan") if self.reml else crit
        self.loglik: float = -crit / 2.0
        self.npar: int = len(names) + len(self.theta) + 1 + (residual.n_params if residual is not None else 0)
        self.aic: float = -2 * self.loglik + 2 * self.npar
        self.bic: float = -2 * self.loglik + np.log(self.nobs) * self.npar
        diag = np.isfinite(theta_lower(terms))
        self.singular: bool = bool(np.any(self.theta[diag] < SINGULAR_TOL)) or bool(
            residual is not None and residual.singular)
        self.converged: bool = bool(opt.converged)
        if self.singular:
            warnings.warn("boundary (singular) fit: a variance component or covariance factor is on its "
                          "boundary (see .varcorr); consider simplifying the random effects.",
                          SingularFitWarning, stacklevel=3 + (residual is not None))
        elif not opt.converged:
            warnings.warn("the optimizer did not report convergence (%s); check the fit." % opt.message,
                          ConvergenceWarning, stacklevel=3 + (residual is not None))
        self._build_random()

    # ------------------------------------------------------------------ random effects
    def _build_random(self) -> None:
        s2 = self.sigma ** 2
        rows = []
        for t in self._re_terms:
            Lt = term_lambda(self.theta[t.theta_slice], t.k)
            C = s2 * (Lt @ Lt.T)
            sd = np.sqrt(np.diag(C))
            for j in range(t.k):
                rows.append((t.name, t.coef_names[j], None, C[j, j], sd[j]))
            for j in range(t.k):
                for l in range(j + 1, t.k):
                    cor = C[j, l] / (sd[j] * sd[l]) if sd[j] > 0 and sd[l] > 0 else np.nan
                    rows.append((t.name, t.coef_names[j], t.coef_names[l], C[j, l], cor))
        if self._residual is not None:
            rows += self._residual.varcorr_rows()
        else:
            rows.append(("Residual", None, None, s2, self.sigma))
        self.varcorr: pd.DataFrame = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        ranef: dict = {}
        rvar: dict = {}
        for t, b, cv in zip(self._re_terms, self._sol["b_terms"], self._sol["condvar_terms"]):
            df = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=t.ranef_names)
            cvd = pd.DataFrame(np.stack([cv[:, j, j] for j in range(t.k)], axis=1),
                               index=pd.Index(t.levels, name=t.group), columns=t.ranef_names)
            if t.group in ranef:
                ranef[t.group] = _join_columns(ranef[t.group], df)
                rvar[t.group] = _join_columns(rvar[t.group], cvd)
            else:
                ranef[t.group], rvar[t.group] = df, cvd
        self.ranef: dict = ranef
        #: conditional variances of the BLUPs (diagonal of lme4's condVar), same layout as ``ranef``
        self.ranef_var: dict = rvar
        #: full conditional covariance blocks per term (nlev x k x k), lme4 order
        self._condvar = list(self._sol["condvar_terms"])
        self._b = np.concatenate([np.zeros(0)] + [b.reshape(-1) for b in self._sol["b_terms"]])

    # ------------------------------------------------------------------ accessors
    @property
    def data(self) -> pd.DataFrame:
        """The cleaned copy of the data the model was fitted to."""
        return self._frame

    @property
    def _Z(self) -> sp.csr_matrix:
        """Sparse random-effects model matrix (n x q, lme4 column order), built on first use."""
        if self._Zm is None:
            self._Zm = make_Z(self._re_terms, self.nobs)
        return self._Zm

    @property
    def Z(self) -> sp.csr_matrix:
        """Sparse random-effects model matrix (n x q, lme4 column order)."""
        return self._Z

    def _Lambda(self, theta: np.ndarray | None = None) -> sp.csc_matrix:
        """Sparse q x q relative covariance factor Lambda(theta)."""
        return make_Lambda(self._re_terms, self.theta if theta is None else np.asarray(theta, dtype=float))

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
        return residual_pieces(self._residual, self._re_terms, self.theta, self.fixef.to_numpy())

    def _criterion(self, theta: np.ndarray, reml: bool | None = None) -> float:
        """lme4's profiled criterion at any theta (REML or ML); with a residual structure, theta is
        followed by the structure's parameters."""
        if self._residual is not None:
            return self._residual.criterion(np.asarray(theta, dtype=float), self.reml if reml is None else reml)
        if self._kernel is None:
            self._kernel = make_kernel(self._re_terms, self._X, self._y, self._Z)
        return self._kernel(np.asarray(theta, dtype=float), self.reml if reml is None else reml)

    @property
    def b(self) -> np.ndarray:
        """Conditional modes of the random effects as one vector (Z's column order)."""
        return self._b

    @property
    def random_cov(self) -> dict:
        """Covariance matrix of each term's random effects (DataFrame per lme4 VarCorr name)."""
        out = {}
        for t in self._re_terms:
            Lt = term_lambda(self.theta[t.theta_slice], t.k)
            out[t.name] = pd.DataFrame(self.sigma ** 2 * Lt @ Lt.T, index=t.coef_names, columns=t.coef_names)
        return out

    def fitted(self) -> np.ndarray:
        """Conditional fitted values X beta + Z b."""
        return self._X @ self.fixef.to_numpy() + self._Z @ self._b

    def residuals(self) -> np.ndarray:
        """Response minus conditional fitted values."""
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
        if newdata is None:
            return self.fitted() if re else self._X @ self.fixef.to_numpy()
        X = fixed_matrix_new(self._fixed, newdata)
        out = X @ self.fixef.to_numpy()
        if re:
            for t, b in zip(self._re_terms, self._sol["b_terms"]):
                codes, Xi = new_term_matrix(t, newdata)
                ok = codes >= 0
                out[ok] += np.sum(Xi[ok] * b[codes[ok]], axis=1)
        return out

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

    def shrinkage(self, group=None):
        """Per-level own least-squares vs mixed-model coefficients."""
        from .shrinkage import shrinkage
        return shrinkage(self, group)

    # ------------------------------------------------------------------ printing
    def summary(self) -> str:
        """lme4-style summary text."""
        return str(self)

    def _random_table(self) -> pd.DataFrame:
        rows = []
        for t in self._re_terms:
            Lt = term_lambda(self.theta[t.theta_slice], t.k)
            C = self.sigma ** 2 * (Lt @ Lt.T)
            sd = np.sqrt(np.diag(C))
            for j in range(t.k):
                cors = []
                for l in range(j):
                    cors.append(fmt_number(C[j, l] / (sd[j] * sd[l]), 3) if sd[j] > 0 and sd[l] > 0 else "NaN")
                rows.append({"Groups": t.name if j == 0 else "", "Name": t.coef_names[j],
                             "Variance": C[j, j], "Std.Dev.": sd[j], "Corr": " ".join(cors)})
        nug = self._residual.nugget if self._residual is not None else None
        if nug is not None:
            rows.append({"Groups": nug[0], "Name": "(Intercept)", "Variance": nug[1], "Std.Dev.": np.sqrt(nug[1]),
                         "Corr": ""})
        rows.append({"Groups": "Residual", "Name": "", "Variance": self.sigma ** 2, "Std.Dev.": self.sigma,
                     "Corr": ""})
        df = pd.DataFrame(rows)
        if not any(df["Corr"]):
            df = df.drop(columns="Corr")
        return df

    def _blocks(self) -> list:
        method = "REML" if self.reml else "maximum likelihood"
        out = ["Linear mixed model fit by %s" % method, "Formula: %s" % self.formula]
        if self.reml:
            out.append("REML criterion at convergence: %.4f" % self.reml_criterion)
        else:
            out.append("AIC %.4f  BIC %.4f  logLik %.4f  deviance %.4f"
                       % (self.aic, self.bic, self.loglik, -2 * self.loglik))
        res = self.residuals() / self.sigma
        q = np.quantile(res, [0, .25, .5, .75, 1])
        out.append(("Scaled residuals:", pd.DataFrame([q], columns=["Min", "1Q", "Median", "3Q", "Max"]),
                    {"index": False}))
        out.append(("Random effects:", self._random_table(), {"index": False}))
        if self._residual is not None:
            out.append((self._residual.describe(), self.residual_params, {"index": False}))
        grp = {}
        for t in self._re_terms:
            grp.setdefault(t.group, t.nlev)
        out.append("Number of obs: %d" % self.nobs + (", groups: %s" % ", ".join("%s, %d" % kv for kv in grp.items())
                                                      if grp else ""))
        se = np.sqrt(np.diag(self.vcov.to_numpy()))
        fe = pd.DataFrame({"Estimate": self.fixef.to_numpy(), "Std. Error": se,
                           "t value": self.fixef.to_numpy() / se}, index=self.fixef.index)
        out.append(("Fixed effects:", fe))
        if self.singular:
            out.append("boundary (singular) fit: see help('isSingular')")
        if self.n_dropped:
            out.append("%d row(s) with missing values dropped." % self.n_dropped)
        return out


def _join_columns(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """Columns of two terms on the same factor side by side (a repeated name gets ``.1``)."""
    right = right.rename(columns={c: c + ".1" for c in right.columns if c in left.columns})
    return left.join(right)
