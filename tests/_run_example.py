"""Run one example script as ``__main__`` and keep every vcomp result it prints, rendered four ways.

Usage: python tests/_run_example.py SCRIPT OUT.json.  The script's own output goes to stdout as usual; OUT.json
gets one entry per printed vcomp result (``type``, ``text``, ``markdown``, ``latex``, ``html``).
"""
import builtins
import json
import runpy
import sys


def main(script: str, out: str) -> None:
    found = []
    original = builtins.print

    def capture(*args, **kwargs):
        for a in args:
            if type(a).__module__.startswith("vcomp") and all(hasattr(a, m) for m in ("to_latex", "to_markdown",
                                                                                      "_repr_html_")):
                found.append({"type": type(a).__name__, "text": str(a), "markdown": a.to_markdown(),
                              "latex": a.to_latex(), "html": a._repr_html_()})
        original(*args, **kwargs)

    builtins.print = capture
    sys.argv = [script]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        builtins.print = original
        with open(out, "w") as fh:
            json.dump(found, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
