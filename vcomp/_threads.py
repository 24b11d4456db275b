"""BLAS thread policy: one thread for vcomp's many small products, the caller's setting for large ones.

A fit, an ANOVA or an inference table is a long run of small matrix products (per-level
``k x k`` blocks, ``p x p`` downdates).  Multi-threaded BLAS gains nothing there and, on a
busy machine, its threads thrash (the oats analysis: 0.1 s single-threaded, 0.3-3.7 s with
the default threading under load).  So every vcomp entry point runs under :func:`policy`,
which limits the BLAS libraries loaded in the process to one thread (through threadpoolctl,
the library scikit-learn uses) and restores the caller's limits on return; a step with a large
dense factorization (the trailing Schur block of a crossed fit) runs under :func:`large`,
which hands the caller's own setting back for its duration.  Outside a vcomp call nothing
changes: the caller's ``threadpool_info()`` limits are the same before and after.
"""
from __future__ import annotations

import functools
import os
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

__all__ = ["policy", "large", "LARGE_DIM", "entry_point", "discover"]

#: dense factorizations of at least this order may run with the caller's BLAS threads
LARGE_DIM = 1000

F = TypeVar("F", bound=Callable)

_lock = threading.RLock()
_state = {"depth": 0, "saved": None, "libs": None}


def _openblas_from_maps() -> list:
    """OpenBLAS controllers for the libraries mapped in this process (Linux; ~10 ms instead of the
    ~50 ms full scan of every shared library that ``ThreadpoolController()`` does)."""
    from threadpoolctl import OpenBLASController
    paths = set()
    with open("/proc/self/maps") as fh:
        for line in fh:
            path = line.rsplit(None, 1)[-1]
            if path.startswith("/") and ".so" in path:
                name = os.path.basename(path).lower()
                if "openblas" in name:
                    paths.add(path)
                elif "mkl_rt" in name or "blis" in name or "flexiblas" in name:
                    raise LookupError("not OpenBLAS only")
    out = []
    for path in sorted(paths):
        prefix = os.path.basename(path).split(".so")[0].split("-")[0]
        out.append(OpenBLASController(filepath=path, prefix=prefix))
    if not out:
        raise LookupError("no OpenBLAS mapped")
    return out


def discover() -> None:
    """Find the process's BLAS libraries now (``import vcomp`` does, once numpy and scipy are loaded:
    ~3 ms there instead of inside the first analysis)."""
    _libs()


def _libs() -> list:
    """The BLAS controllers of the process (discovered once; empty without threadpoolctl)."""
    if _state["libs"] is None:
        try:
            _state["libs"] = _openblas_from_maps()
        except Exception:
            try:
                from threadpoolctl import ThreadpoolController
                _state["libs"] = list(ThreadpoolController().select(user_api="blas").lib_controllers)
            except Exception:  # pragma: no cover - threadpoolctl missing or a BLAS it cannot drive
                _state["libs"] = []
    return _state["libs"]


@contextmanager
def policy() -> Iterator[None]:
    """Run the enclosed vcomp work with single-threaded BLAS; restore the caller's limits after.

    Re-entrant: only the outermost vcomp call changes and restores the setting.
    """
    with _lock:
        outer = _state["depth"] == 0
        _state["depth"] += 1
        if outer:
            libs = _libs()
            _state["saved"] = [lib.num_threads for lib in libs]
            for lib, n in zip(libs, _state["saved"]):
                if n != 1:
                    lib.set_num_threads(1)
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if outer:
                for lib, n in zip(_libs(), _state["saved"] or []):
                    if lib.num_threads != n:
                        lib.set_num_threads(n)
                _state["saved"] = None


_CPU: dict = {"last": None, "est": None}


def _cpu_sample() -> tuple[float, float, float] | None:
    """(monotonic time, busy CPU seconds of the machine, CPU seconds of this process), Linux only."""
    try:
        with open("/proc/stat") as fh:
            f = [float(v) for v in fh.readline().split()[1:]]
        with open("/proc/self/stat") as fh:
            st = fh.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    tck = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    busy = sum(f) - f[3] - (f[4] if len(f) > 4 else 0.0)            # all but idle and iowait
    own = float(st[11]) + float(st[12])                               # utime + stime (every thread)
    return time.monotonic(), busy / tck, own / tck


def others_busy() -> float | None:
    """Cores used by *other* processes since the previous call (None on the first call or without /proc).

    The 1-minute load average counts this process too, and lags: a long vcomp fit raises it by one
    and then declines a second thread that would be free.  Machine-wide busy time minus this
    process's own CPU time over the interval between two large factorizations measures the others.
    """
    now, last = _cpu_sample(), _CPU["last"]
    if now is None:
        return None
    if last is not None and now[0] - last[0] < 0.05:   # too short to measure: the last estimate
        return _CPU.get("est")
    _CPU["last"] = now
    if last is None or now[0] - last[0] > 30.0:
        _CPU["est"] = None
    else:
        _CPU["est"] = max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0]))
    return _CPU["est"]


def _free_cores() -> float:
    """Cores free for this process's extra threads, measured since the previous large factorization."""
    others = others_busy()
    if others is None:       # first sample (the load average lags and counts this process): stay single
        return 0.0
    return (os.cpu_count() or 1) - 1.0 - others


@contextmanager
def large(dim: int | None = None) -> Iterator[None]:
    """Inside :func:`policy`: give the caller's BLAS threads back to one large factorization.

    Only when it gains: the matrix has order ``dim >= LARGE_DIM`` (``None``: always) and the
    machine has an idle core (measured: a 1142 x 1142 Cholesky takes 0.05 s on one thread but
    0.3-4.5 s on two when the machine is already busy).  Other processes' use is measured between
    successive large factorizations (:func:`others_busy`); at most 0.3 of a core may be taken.
    """
    saved = _state["saved"]
    if (_state["depth"] == 0 or not saved or all(n == 1 for n in saved)
            or (dim is not None and (dim < LARGE_DIM or _free_cores() < 0.7))):
        yield
        return
    libs = _libs()
    for lib, n in zip(libs, saved):
        lib.set_num_threads(n)
    try:
        yield
    finally:
        if _state["depth"] > 0:
            for lib in libs:
                lib.set_num_threads(1)


def entry_point(fun: F) -> F:
    """Decorator: run a public vcomp function under :func:`policy`."""
    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        with policy():
            return fun(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
