"""Every script in examples/ runs and prints something."""
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(out.stdout) > 200


def test_repeated_measures_example_saves_the_grid_plot(tmp_path):
    pytest.importorskip("matplotlib")
    script = pathlib.Path(__file__).resolve().parents[1] / "examples" / "repeated_measures.py"
    png = script.parent / "output" / "spatial_residuals.png"
    if png.exists():
        png.unlink()
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=dict(os.environ, MPLBACKEND="Agg"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for word in ("CS", "AR(1)", "UN", "AIC", "trt:date", "rho:row"):
        assert word in out.stdout
    assert png.exists() and png.stat().st_size > 1000
