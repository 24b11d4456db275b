"""Small trials in the default environment: the oats split-plot analysis, side by side with R and glmm.

* ``oats x5``: five times REML (``yield ~ nitro*variety + (1|block/variety)``) + Kenward-Roger type III
  anova + the classical split-plot ANOVA (EMS, MoM, F tests), against R's lmerTest
  ``lmer`` + ``anova(ddf = "Kenward-Roger")`` + ``aov(yield ~ nitro*variety + Error(block/variety))``
  five times in one R session.  Target: vcomp <= 0.25 x R.
* ``one fit``: a single oats REML fit against glmm's (medians of 21 fits, the two tools alternating).
  Target: within 5x.
* ``import`` and ``first call`` (a fresh interpreter: ``import vcomp`` and the first analysis,
  lazy imports included).

Nothing here sets ``OPENBLAS_NUM_THREADS``: this is the default environment; vcomp chooses its
BLAS threads itself (vcomp/_threads.py).  ``--busy 2`` runs the same with two busy-looping
processes on the machine.  Each line prints the 1-minute load average.

Usage: ``python benchmarks/bench_small.py [--busy N] [--no-r] [--no-glmm]``.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

FORMULA = "yield ~ nitro*variety + (1|block/variety)"


def _busy(stop):  # pragma: no cover - a load generator
    x = 0
    while not stop.is_set():
        for i in range(100000):
            x += i * i


def load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def fresh_first_call() -> tuple[float, float]:
    """Import time and first analysis (REML + KR + classical) in a fresh interpreter."""
    code = ("import time,warnings;warnings.simplefilter('ignore');t0=time.perf_counter();import vcomp;"
            "t1=time.perf_counter();d=vcomp.datasets.load('oats');m=vcomp.lmm(%r,d);m.anova(ddf='kenward-roger');"
            "vcomp.anova(d,'yield',vcomp.SplitPlot('variety','nitro','block'));t2=time.perf_counter();"
            "print(t1-t0,t2-t1)" % FORMULA)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def vcomp_x5() -> float:
    import vcomp
    d = vcomp.datasets.load("oats")
    design = vcomp.SplitPlot("variety", "nitro", "block")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        for _ in range(5):
            m = vcomp.lmm(FORMULA, d)
            m.anova(ddf="kenward-roger")
            vcomp.anova(d, "yield", design)
        return time.perf_counter() - t0


def one_fits(use_glmm: bool = True, n: int = 21) -> tuple[float, int, int, float | None]:
    """Single oats REML fits, vcomp and glmm alternating (``n`` each, after a warm-up of both): the
    medians, so that a stretch of other load on the machine reaches both tools alike."""
    import vcomp
    try:
        import glmm
    except ImportError:
        glmm = None
    glmm = glmm if use_glmm else None
    d = vcomp.datasets.load("oats")
    tv, tg = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm(FORMULA, d)
        if glmm is not None:
            glmm.fit(d, FORMULA, reml=True, satterthwaite=False)
        for _ in range(n):
            t0 = time.perf_counter()
            m = vcomp.lmm(FORMULA, d)
            tv.append(time.perf_counter() - t0)
            if glmm is not None:
                t0 = time.perf_counter()
                glmm.fit(d, FORMULA, reml=True, satterthwaite=False)
                tg.append(time.perf_counter() - t0)
    return sorted(tv)[n // 2], m._opt.nfev, m._opt.ngev, (sorted(tg)[n // 2] if tg else None)


R_CODE = r"""
suppressMessages({library(lmerTest); library(pbkrtest)})
d <- read.csv("%s", stringsAsFactors = TRUE)
m <- lmer(yield ~ nitro*variety + (1|block/variety), d); a <- anova(m, ddf = "Kenward-Roger")  # warm-up
t <- system.time(for (i in 1:5) {
  m <- lmer(yield ~ nitro*variety + (1|block/variety), d)
  a <- anova(m, ddf = "Kenward-Roger")
  c <- summary(aov(yield ~ nitro*variety + Error(block/variety), d))
})[["elapsed"]]
cat("TIME", t, "\n")
"""


def r_x5() -> float | None:
    if shutil.which("Rscript") is None:
        return None
    import vcomp
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "oats.csv")
        vcomp.datasets.load("oats").to_csv(csv, index=False)
        code = os.path.join(tmp, "b.R")
        with open(code, "w") as fh:
            fh.write(R_CODE % csv)
        out = subprocess.run(["Rscript", code], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("TIME"):
            return float(line.split()[1])
    print("  R failed:", out.stderr.strip().splitlines()[-1:])
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, default=0, help="busy-looping processes to start first")
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--no-glmm", action="store_true")
    a = ap.parse_args()
    stop = mp.Event()
    procs = [mp.Process(target=_busy, args=(stop,), daemon=True) for _ in range(a.busy)]
    for p in procs:
        p.start()
    try:
        print("oats split-plot, default environment, %d busy process(es)  [%s]" % (a.busy, load()))
        imp, first = fresh_first_call()
        print("  import vcomp %.3f s; first call (REML + KR + classical) %.3f s" % (imp, first), flush=True)
        tv = vcomp_x5()
        line = "  x5 REML + KR anova + classical: vcomp %.3f s" % tv
        tr = None if a.no_r else r_x5()
        if tr is not None:
            line += "  | R lmerTest + KR + aov %.3f s  ratio %.3f (target <= 0.25: %s)" % (
                tr, tv / tr, "ok" if tv / tr <= 0.25 else "MISSED")
        print(line + "  [%s]" % load(), flush=True)
        t1, nfev, ngev, tg = one_fits(not a.no_glmm)
        line = "  one REML fit (medians of 21, alternating): vcomp %.2f ms (%d evaluations, %d gradients)" % (
            1e3 * t1, nfev, ngev)
        if tg is not None:
            line += "  | glmm %.2f ms  ratio %.1f (target <= 5)" % (1e3 * tg, t1 / tg)
        print(line + "  [%s]" % load(), flush=True)
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=5)


if __name__ == "__main__":
    main()
