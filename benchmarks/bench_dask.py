"""Out-of-core REML fit from multi-file Parquet: Dask against pandas (in memory), separate processes.

Case: ``y ~ x + (x|g)``, 10,000,000 rows, 10,000 clusters, written as 20 Parquet files of
500,000 rows (a temporary directory, removed afterwards; never committed).

* in memory: ``pd.read_parquet(dir)`` + ``vcomp.lmm``;
* out of core: ``dd.read_parquet(dir)`` + ``vcomp.lmm`` (Dask's default threaded scheduler).

Each runs in its own Python process; the peak resident memory (``ru_maxrss``) and the wall
time of the whole job (imports excluded) are compared.  Targets: Dask peak RSS <= 1/3 of the
in-memory one, Dask time <= 1.5x.  The REML criterion, fixed effects and variance components
of the two fits are compared too (relative 1e-6).

Usage: ``python benchmarks/bench_dask.py [--quick] [--rows N] [--files K] [--dir PATH] [--keep]``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

FORMULA = "y ~ x + (x|g)"


def write_parquet(path: str, rows: int, files: int, clusters: int, seed: int = 1) -> None:
    """``files`` Parquet files of ``rows / files`` rows each; cluster effects shared across files."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    b0 = rng.normal(0, 0.5, clusters)
    b1 = rng.normal(0, 0.25, clusters)
    os.makedirs(path, exist_ok=True)
    per = rows // files
    for k in range(files):
        g = rng.integers(0, clusters, per)
        x = rng.normal(size=per)
        y = 1 + 0.5 * x + b0[g] + b1[g] * x + rng.normal(size=per)
        pd.DataFrame({"y": y, "x": x, "g": g}).to_parquet(os.path.join(path, "part-%03d.parquet" % k), index=False)


def run_child(mode: str, path: str) -> dict:
    """One fit in this process: time and peak RSS."""
    import resource
    import warnings

    import pandas as pd

    import vcomp

    t0 = time.perf_counter()
    if mode == "memory":
        data = pd.read_parquet(path)
    else:
        import dask
        import dask.dataframe as dd

        dask.config.set({"vcomp.progress": False})
        data = dd.read_parquet(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = vcomp.lmm(FORMULA, data)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # MB (Linux: kB)
    return {"mode": mode, "seconds": elapsed, "peak_mb": peak, "nobs": fit.nobs,
            "reml": fit.reml_criterion, "fixef": fit.fixef.tolist(), "vcov": fit.varcorr["vcov"].tolist()}


def child(mode: str, path: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--dir", path], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000,000 rows, 10 files")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--clusters", type=int, default=10_000)
    ap.add_argument("--dir", default=None, help="where to write the Parquet files (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the Parquet files")
    ap.add_argument("--child", choices=["memory", "dask"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.dir)))
        return
    rows, files = (1_000_000, 10) if args.quick else (args.rows, args.files)
    tmp = args.dir or tempfile.mkdtemp(prefix="vcomp-bench-dask-")
    try:
        if not os.path.exists(os.path.join(tmp, "part-000.parquet")):
            print("writing %d rows in %d Parquet files to %s ..." % (rows, files, tmp), flush=True)
            write_parquet(tmp, rows, files, args.clusters)
        mem = child("memory", tmp)
        dsk = child("dask", tmp)
        print("%-28s %10s %12s" % ("", "seconds", "peak RSS MB"))
        for r in (mem, dsk):
            label = "pandas read_parquet + lmm" if r["mode"] == "memory" else "dask read_parquet + lmm"
            print("%-28s %10.2f %12.0f" % (label, r["seconds"], r["peak_mb"]))
        tr, mr = dsk["seconds"] / mem["seconds"], dsk["peak_mb"] / mem["peak_mb"]
        print("ratio dask / memory: time %.2f (target <= 1.5), peak memory %.2f (target <= 0.333)" % (tr, mr))
        print("agreement: REML criterion %.2e (abs), fixed effects %.2e, variance components %.2e (rel)"
              % (abs(mem["reml"] - dsk["reml"]), _rel(mem["fixef"], dsk["fixef"]), _rel(mem["vcov"], dsk["vcov"])))
        ok = tr <= 1.5 and mr <= 1 / 3
        print("targets %s" % ("met" if ok else "NOT met"))
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
