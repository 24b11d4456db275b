"""Every script in examples/ runs and prints something."""
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", VCOMP_EXAMPLES_OUTPUT=str(tmp_path))
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(out.stdout) > 200
    if script.name == "means_and_letters.py":  # the three split-plot SEDs and the saved plot
        assert "two varieties, same nitrogen level: 9.715" in out.stdout
        assert (tmp_path / "oats_means.png").stat().st_size > 10_000

