"""Shrinkage in mixed-effects models: six simulated scenarios.

For each scenario: simulate ``y ~ x`` data with a random intercept and slope
per cluster, fit ``y ~ x + (x|cluster)`` by REML, print the summary and a
one-line measure of how much the clusters' own estimates were pulled towards
the population average, and (with matplotlib) save a shrinkage plot.

Run: python examples/shrinkage_scenarios.py
"""
from __future__ import annotations

import pathlib
import warnings

import numpy as np

import vcomp

SCENARIOS = {
    "baseline": {},
    "more_subject_variance": dict(sd_int=1, sd_slope=1),
    "more_slope_variance": dict(sd_int=0.25, sd_slope=1),
    "three_obs_per_cluster": dict(obs_per_cluster=3),
    "hundred_obs_per_cluster": dict(obs_per_cluster=100),
    "unbalanced": dict(balanced=0.5, sd_int=0.5, sd_slope=0.5, sigma=0.25),
}


def shrinkage_measure(sh) -> str:
    """How far the mixed estimates moved towards the centre, per coefficient.

    1 - var(mixed) / var(own fit) over clusters whose own fit exists: 0 means
    no pooling, 1 complete pooling.
    """
    parts = []
    for col in [c for c in sh.columns if c.startswith("ols_")]:
        name = col[4:]
        ok = np.isfinite(sh[col])
        pooled = 1 - np.var(sh.loc[ok, "mixed_" + name]) / np.var(sh.loc[ok, col])
        parts.append("%s %.0f%%" % (name, 100 * pooled))
    return "shrinkage towards the population average: " + ", ".join(parts)


def main(outdir: pathlib.Path | None = None) -> None:
    outdir = outdir or pathlib.Path(__file__).resolve().parent / "output"
    try:
        import matplotlib
        matplotlib.use("Agg")
        from vcomp import plot
    except ImportError:
        plot = None
    for name, kw in SCENARIOS.items():
        data = vcomp.simulate.random_slopes(**kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", vcomp.SingularFitWarning)
            fit = vcomp.lmm("y ~ x + (x|cluster)", data)
        print("=" * 78)
        print("Scenario: %s %s" % (name, kw or "(obs_per_cluster=10, n_cluster=100, sd_int=.5, sd_slope=.25)"))
        print("=" * 78)
        print(fit)  # lmerTest-style summary
        sh = fit.shrinkage()
        print(shrinkage_measure(sh))
        if plot is not None:
            outdir.mkdir(parents=True, exist_ok=True)
            fig = plot.shrinkage(fit, title="Shrinkage: %s" % name.replace("_", " "))
            path = outdir / ("shrinkage_%s.png" % name)
            fig.savefig(path, dpi=110)
            import matplotlib.pyplot as plt
            plt.close(fig)
            print("plot saved to %s" % path)
        print()


if __name__ == "__main__":
    main()
