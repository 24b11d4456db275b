"""Out of core: fit a mixed model and a classical ANOVA straight from a multi-file Parquet data set.

vcomp needs the rows only through sums (factor levels, column means and scales, the blocked
cross-products of the mixed model, the cells' counts and sums of the ANOVA).  Given a Dask
DataFrame, each sum is computed partition by partition and summed by Dask, so memory is bounded
by the partition size and the number of random effects, not by the number of rows, and the
numbers are the in-memory ones.

This script writes a small Parquet data set (8 files) to a temporary directory, fits it with
Dask's local scheduler, and checks the numbers against the in-memory fit.

Run: python examples/out_of_core.py        (needs: pip install "vcomp[dask]")

The same calls run on a cluster: start a scheduler and workers (``dask scheduler``,
``dask worker tcp://scheduler:8786``), connect once, and point Dask at storage the workers can
read; vcomp's passes then run on the workers::

    from distributed import Client
    client = Client("tcp://scheduler:8786")          # every dask computation now runs there
    trials = dd.read_parquet("s3://archive/variety-trials/*.parquet")
    fit = vcomp.lmm("yield_t ~ nitrogen + (nitrogen | farm)", trials)
    fit.anova(ddf="kenward-roger")                   # from the reduced sums: no further pass

Progress: passes longer than a couple of seconds show Dask's progress bar on a local scheduler
(``dask.config.set({"vcomp.progress": False})`` turns it off); on a cluster, watch the
dashboard or use ``distributed.progress``.
"""
from __future__ import annotations

import pathlib
import tempfile
import warnings

import numpy as np
import pandas as pd

import vcomp


def write_trials(folder: pathlib.Path, files: int = 8, rows_per_file: int = 25_000, farms: int = 400,
                 seed: int = 1) -> None:
    """Yield-monitor style data: farms with their own response to nitrogen, one file per season batch."""
    rng = np.random.default_rng(seed)
    b0, b1 = rng.normal(0, 0.6, farms), rng.normal(0, 0.15, farms)
    for k in range(files):
        farm = rng.integers(0, farms, rows_per_file)
        n = rng.uniform(0, 2, rows_per_file)
        y = 6 + 0.8 * n + b0[farm] + b1[farm] * n + rng.normal(0, 0.5, rows_per_file)
        pd.DataFrame({"yield_t": y, "nitrogen": n, "farm": pd.Series(farm).map("farm{:04d}".format)}).to_parquet(
            folder / ("trials-%02d.parquet" % k), index=False)


def write_split_plot(folder: pathlib.Path, blocks: int = 60, seed: int = 2) -> None:
    """A large balanced split-plot trial (varieties on whole plots, nitrogen on sub-plots), in 4 files."""
    design = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")
    d = design.simulate({"variety": 4, "nitro": 5, "block": blocks}, {"block": 4.0, "block:variety": 1.0},
                        effects={"variety": 1.0, "nitro": 2.0}, seed=seed, reps=3, mean=50.0)
    d = d.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    for k, rows in enumerate(np.array_split(np.arange(len(d)), 4)):
        d.iloc[rows].to_parquet(folder / ("split-%d.parquet" % k), index=False)


def main() -> None:
    import dask
    import dask.dataframe as dd

    dask.config.set(scheduler="threads")   # the local default; a distributed.Client replaces it
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        (folder / "trials").mkdir()
        (folder / "split").mkdir()
        write_trials(folder / "trials")
        write_split_plot(folder / "split")

        # ---- mixed model: random intercept and slope per farm, straight from Parquet
        trials = dd.read_parquet(str(folder / "trials"))
        print("Dask DataFrame: %d partitions (one per file)\n" % trials.npartitions)
        fit = vcomp.lmm("yield_t ~ nitrogen + (nitrogen | farm)", trials)
        print(fit)
        print("\nKenward-Roger tests (from the reduced cross-products, no further pass):")
        print(fit.coef_table(ddf="kenward-roger"))
        sh = fit.shrinkage()   # each farm's own fit from per-farm sums (one pass)
        print("\nShrinkage, first farms:")
        print(sh.head().round(3))
        res = fit.residuals()  # lazy: a Dask Series, one value per row
        print("\nresiduals(): %s; mean %.2e, sd %.4f" % (type(res).__name__, res.mean().compute(),
                                                          res.std().compute()))

        # ---- the same numbers as in memory (this data set is small enough to check)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mem = vcomp.lmm("yield_t ~ nitrogen + (nitrogen | farm)", pd.read_parquet(folder / "trials"))
        rel = np.max(np.abs(mem.varcorr["vcov"].to_numpy() - fit.varcorr["vcov"].to_numpy())
                     / np.abs(mem.varcorr["vcov"].to_numpy()))
        print("\nin memory vs Dask: REML criterion %.4f vs %.4f; largest relative difference of the "
              "variance components %.1e" % (mem.reml_criterion, fit.reml_criterion, rel))

        # ---- classical ANOVA of a large split-plot, from per-cell counts and sums
        split = dd.read_parquet(str(folder / "split"))
        design = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")
        res = design.anova(split, "y")
        print("\n%s" % res)
        print("\ncross-check, method of moments vs REML:")
        print(design.crosscheck(split, "y").components.round(4))


if __name__ == "__main__":
    main()
