"""Repeated measures and a spatial field trial: residual covariance structures.

1. The same RCBD (4 blocks x 6 treatments) measured on six dates. The dates of one plot are
   correlated; which structure? Fit compound symmetry (CS), AR(1) and unstructured (UN)
   residual matrices within each plot, compare them by AIC (REML, same fixed effects), and look
   at the Kenward-Roger test of treatment x date under each (SAS PROC MIXED REPEATED / nlme gls).
2. A field trial on a 15 x 12 grid: 45 genotypes in 4 complete replicates (3 adjacent columns
   each). Neighbouring plots are alike: compare independent errors with a separable
   AR(1) x AR(1) residual (ASReml's ``ar1(row):ar1(col)``) and plot the residuals on the grid
   (examples/output/spatial_residuals.png): the raw residuals of the independent-errors fit show
   the field's pattern; the normalized residuals of the spatial fit do not.

Run: python examples/repeated_measures.py
"""
from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pandas as pd

import vcomp

OUT = pathlib.Path(__file__).resolve().parent / "output"


def rcbd_on_six_dates(seed: int = 7) -> pd.DataFrame:
    """4 blocks x 6 treatments, plant height on six dates; errors AR(1)-like with growing variance."""
    rng = np.random.default_rng(seed)
    dates = ["d%d" % (j + 1) for j in range(6)]
    lag = np.abs(np.subtract.outer(np.arange(6), np.arange(6)))
    sd = np.linspace(1.0, 2.2, 6)
    cov = 0.75 ** lag * np.outer(sd, sd)
    growth = np.array([0.0, 4.0, 9.0, 15.0, 20.0, 23.0])
    trt_slope = np.array([1.0, 1.1, 0.9, 1.25, 1.0, 0.8])
    rows = []
    for b in range(4):
        beff = rng.normal(0, 1.5)
        for t in range(6):
            e = rng.multivariate_normal(np.zeros(6), cov)
            for j, dname in enumerate(dates):
                rows.append({"block": "B%d" % (b + 1), "trt": "T%d" % (t + 1), "plot": "B%dT%d" % (b + 1, t + 1),
                             "date": dname, "height": 10 + beff + trt_slope[t] * growth[j] + e[j]})
    return pd.DataFrame(rows)


def field_grid(seed: int = 3, nrow: int = 15, ncol: int = 12) -> pd.DataFrame:
    """45 genotypes in 4 complete replicates of 3 adjacent columns; AR(1) x AR(1) errors and a trend."""
    rng = np.random.default_rng(seed)
    lr = np.abs(np.subtract.outer(np.arange(nrow), np.arange(nrow)))
    lc = np.abs(np.subtract.outer(np.arange(ncol), np.arange(ncol)))
    e = rng.multivariate_normal(np.zeros(nrow * ncol), 4.0 * np.kron(0.5 ** lc, 0.7 ** lr))
    trend = np.add.outer(np.linspace(0, 3, nrow), np.zeros(ncol)).T.ravel()      # a fertility gradient
    geff = rng.normal(0, 1.5, 45)
    rows = []
    for c in range(ncol):
        rep = c // 3                                       # replicate = 3 adjacent columns (45 plots)
        for r in range(nrow):
            rows.append({"row": r + 1, "col": c + 1, "rep": "R%d" % (rep + 1), "k": (c % 3) * nrow + r})
    d = pd.DataFrame(rows)
    perm = {rep: rng.permutation(45) for rep in d["rep"].unique()}
    d["gen"] = ["G%02d" % (perm[rp][kk] + 1) for rp, kk in zip(d["rep"], d["k"])]
    d["yield"] = 50 + trend + geff[d["gen"].str[1:].astype(int) - 1] + e
    return d.drop(columns="k")


def repeated_measures() -> None:
    d = rcbd_on_six_dates()
    formula = "height ~ block + trt*date"
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, res in (("CS", "cs(date | plot)"), ("AR(1)", "ar1(date | plot)"), ("UN", "us(date | plot)")):
            fits[name] = vcomp.lmm(formula, d, residual=res)
    print("RCBD on six dates: %s, one residual matrix per plot" % formula)
    rows = []
    for name, f in fits.items():
        kr = f.anova(ddf="kenward-roger").loc["trt:date"]
        rows.append({"structure": name, "parameters": f.residual_params.shape[0], "REML logLik": f.loglik,
                     "AIC": f.aic, "trt:date F (KR)": kr["F"], "den df": kr["den_df"], "p": kr["p"]})
    table = pd.DataFrame(rows).set_index("structure")
    print(table.to_string(float_format=lambda v: "%.4g" % v))
    best = table["AIC"].idxmin()
    print("\nSmallest AIC: %s. Its residual parameters:" % best)
    print(fits[best].residual_params.to_string(index=False, float_format=lambda v: "%.4g" % v))
    print("\nKenward-Roger type III tests under %s:" % best)
    print(fits[best].anova(ddf="kenward-roger"))
    print("\nThe CS fit is the split-plot-in-time model (1|plot): same REML criterion?",
          "%.6f vs %.6f" % (fits["CS"].reml_criterion,
                            vcomp.lmm("height ~ block + trt*date + (1|plot)", d).reml_criterion))


def spatial() -> None:
    d = field_grid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        indep = vcomp.lmm("yield ~ rep + gen", d, residual="diag(1 | rep)")
        sp = vcomp.lmm("yield ~ rep + gen", d, residual="ar1(row):ar1(col)")
    print("\nField trial, %d plots on a %d x %d grid, yield ~ rep + gen" % (len(d), d["row"].max(), d["col"].max()))
    for name, f in (("independent errors (variance per rep)", indep), ("AR(1) x AR(1)", sp)):
        an = f.anova(ddf="kenward-roger").loc["gen"]
        print("  %-40s AIC %8.2f   gen: F = %6.3f on (%d, %.1f) df, p = %.3g"
              % (name, f.aic, an["F"], an["num_df"], an["den_df"], an["p"]))
    print(sp.residual_params.to_string(index=False, float_format=lambda v: "%.4g" % v))
    sed = [np.sqrt(np.mean(np.diag(f.vcov.loc[gen, gen].to_numpy())))
           for f in (indep, sp) for gen in [[c for c in f.fixef.index if c.startswith("gen[")]]]
    print("  mean SE of a genotype difference from G01: %.3f (independent) vs %.3f (spatial)" % tuple(sed))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the optional extra "plot"
        print("  (matplotlib not installed: no plot)")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    # normalized residuals of the spatial fit (nlme's residuals(type = "normalized")): whiten the
    # raw residuals with the Cholesky factor of the fitted V = sigma2 * R_col (x) R_row
    p = dict(zip(sp.residual_params["name"], sp.residual_params["estimate"]))
    r, c = d["row"].to_numpy() - 1, d["col"].to_numpy() - 1
    V = p["sigma2"] * p["rho:row"] ** np.abs(np.subtract.outer(r, r)) * p["rho:col"] ** np.abs(np.subtract.outer(c, c))
    normalized = np.linalg.solve(np.linalg.cholesky(V), sp.residuals()) * np.sqrt(p["sigma2"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), constrained_layout=True)
    panels = (("independent errors: raw", indep.residuals()), ("AR(1) x AR(1): normalized", normalized))
    for ax, (name, res) in zip(axes, panels):
        grid = np.full((d["row"].max(), d["col"].max()), np.nan)
        grid[r, c] = res
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-6, vmax=6, origin="lower",
                       extent=(0.5, grid.shape[1] + 0.5, 0.5, grid.shape[0] + 0.5))
        ax.set_title("residuals, %s" % name)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    fig.colorbar(im, ax=axes, shrink=0.8)
    path = OUT / "spatial_residuals.png"
    fig.savefig(path, dpi=100)
    print("  residuals on the grid saved to %s" % path)


def main() -> None:
    repeated_measures()
    spatial()


if __name__ == "__main__":
    main()
