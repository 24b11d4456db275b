"""Every script in examples/ runs and prints something."""
import os
import pathlib
import subprocess
import sys

import pytest

#: text an example must print (beyond running)
EXPECT = {"plan_and_power.py": ["v(r-1)(n-1)", "Field plan (seed 2024): 48 plots", "Exact power", "Blocks needed",
                                "simulated"]}
EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(out.stdout) > 200
    for text in EXPECT.get(script.name, []):
        assert text in out.stdout, text
