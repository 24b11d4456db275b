"""Every script in examples/ runs and prints something."""
import os
import pathlib
import subprocess
import sys

import pytest

FOLDER = pathlib.Path(__file__).resolve().parents[1] / "examples"
OUT_OF_CORE = FOLDER / "out_of_core.py"  # needs the dask extra: its own test below
EXAMPLES = sorted(p for p in FOLDER.glob("*.py") if p != OUT_OF_CORE)


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(out.stdout) > 200


def test_out_of_core_example_matches_in_memory(tmp_path):
    """examples/out_of_core.py (Parquet -> Dask -> lmm, anova) reports the in-memory numbers."""
    pytest.importorskip("dask")
    pytest.importorskip("pyarrow")
    out = subprocess.run([sys.executable, str(OUT_OF_CORE)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("in memory vs Dask"))
    assert float(line.rsplit(" ", 1)[1]) < 1e-6
    assert "residuals(): Series" in out.stdout and "Variance components (method of moments)" in out.stdout
