"""Every script in examples/ runs, prints something, and every vcomp result it prints renders as a table a
reviewer would accept: text, Markdown, LaTeX (parsed, and compiled with pdflatex when installed) and HTML."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from _listings import compile_latex, html_problems, latex_problems, markdown_problems, right_aligned_numbers

#: text an example must print (beyond running)
EXPECT = {"plan_and_power.py": ["v(r-1)(n-1)", "Field plan (seed 2024): 48 plots", "Exact power", "Blocks needed",
                                "simulated"],
          "means_and_letters.py": ["two varieties, same nitrogen level: 9.715", "plot saved to"],
          "repeated_measures.py": ["AR(1)", "UN", "AIC", "trt:date F (KR)", "rho:row", "spatial_residuals.png"]}
FOLDER = pathlib.Path(__file__).resolve().parents[1] / "examples"
OUT_OF_CORE = FOLDER / "out_of_core.py"  # needs the dask extra: its own test below
EXAMPLES = sorted(p for p in FOLDER.glob("*.py") if p != OUT_OF_CORE)
HARNESS = pathlib.Path(__file__).resolve().parent / "_run_example.py"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_and_renders(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", VCOMP_EXAMPLES_OUTPUT=str(tmp_path))
    out_json = tmp_path / "results.json"
    out = subprocess.run([sys.executable, str(HARNESS), str(script), str(out_json)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(out.stdout) > 200
    for text in EXPECT.get(script.name, []):
        assert text in out.stdout, text
    if script.name == "means_and_letters.py":
        assert (tmp_path / "oats_means.png").stat().st_size > 10_000
    results = json.loads(out_json.read_text())
    assert results, "the example prints no vcomp result"
    probs = []
    for k, r in enumerate(results):
        where = "%s #%d (%s)" % (script.name, k, r["type"])
        probs += ["%s LaTeX: %s" % (where, p) for p in latex_problems(r["latex"])]
        probs += ["%s Markdown: %s" % (where, p) for p in markdown_problems(r["markdown"])]
        probs += ["%s HTML: %s" % (where, p) for p in html_problems(r["html"])]
        if "\\caption{" not in r["latex"] or "<caption>" not in r["html"]:
            probs.append("%s: a table without a caption" % where)
        if "%" in r["latex"].replace("\\%", ""):
            probs.append("%s: a LaTeX comment (titles belong in \\caption)" % where)
        if not right_aligned_numbers(r["text"]):
            probs.append("%s: numbers not right-aligned in text" % where)
    assert not probs, "\n".join(probs[:20])
    log = compile_latex([r["latex"] for r in results])
    assert log is None, log


def test_out_of_core_example_matches_in_memory(tmp_path):
    """examples/out_of_core.py (Parquet -> Dask -> lmm, anova) reports the in-memory numbers."""
    pytest.importorskip("dask")
    pytest.importorskip("pyarrow")
    out = subprocess.run([sys.executable, str(OUT_OF_CORE)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("in memory vs Dask"))
    assert float(line.rsplit(" ", 1)[1]) < 1e-6
    assert "residuals(): Series" in out.stdout and "Variance components (method of moments)" in out.stdout

