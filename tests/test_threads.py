"""The BLAS thread policy: vcomp limits threads inside its calls and never changes the caller's setting."""
import os
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import vcomp
from vcomp import _threads


def _limits():
    return [(i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture(scope="module")
def oats():
    return vcomp.datasets.load("oats")


def _calls(oats):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vcomp.lmm("yield ~ nitro*variety + (1|block/variety)", oats)
        m.anova(ddf="kenward-roger")
        m.coef_table()
        m.contrast(np.eye(len(m.fixef))[1])
        d = vcomp.SplitPlot("variety", "nitro", "block")
        vcomp.anova(oats, "yield", d)
        vcomp.crosscheck(oats, "yield", d)
        m.refit(m.fitted() + 1.0)


@pytest.mark.parametrize("caller", [None, 1, 2])
def test_vcomp_calls_leave_the_callers_limits(oats, caller):
    if caller is None:
        before = _limits()
        _calls(oats)
        assert _limits() == before
    else:
        with threadpool_limits(limits=caller, user_api="blas"):
            before = _limits()
            _calls(oats)
            assert _limits() == before


def test_policy_is_single_threaded_inside_and_reentrant():
    before = _limits()
    with _threads.policy():
        inside = _limits()
        assert all(n == 1 for _, n in inside)
        with _threads.policy():
            assert _limits() == inside
        assert _limits() == inside
        with _threads.large():
            assert _limits() == before
        assert _limits() == inside
    assert _limits() == before


def test_policy_restores_after_an_error():
    before = _limits()
    with pytest.raises(vcomp.VcompError):
        vcomp.lmm("y ~ x", {"y": [1.0, 2.0, 3.0], "x": [1.0, 2.0, 4.0]})
    assert _limits() == before


def test_other_processes_are_measured_between_large_factorizations(monkeypatch):
    import time

    monkeypatch.setitem(_threads._CPU, "last", None)
    monkeypatch.setitem(_threads._CPU, "est", None)
    first = _threads.others_busy()
    assert first is None or first == 0.0  # nothing measured yet: no extra thread
    assert _threads._free_cores() <= (os.cpu_count() or 1) - 1.0
    time.sleep(0.12)
    est = _threads.others_busy()
    if est is not None:  # Linux: /proc is there
        assert 0.0 <= est <= (os.cpu_count() or 1) + 0.5
        assert _threads.others_busy() == est  # within 50 ms: the last estimate
