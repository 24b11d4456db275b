"""Checks of rendered listings: LaTeX that parses (balanced braces, escaped specials, matched environments,
consistent column counts) and compiles (pdflatex, when installed), Markdown tables with consistent columns,
HTML with balanced tags.  Shared by tests/test_tables.py and tests/test_examples.py."""
from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
import tempfile

_ESCAPED = re.compile(r"\\[{}_%&#$^~]")
_COMMAND = re.compile(r"\\[A-Za-z]+\*?")


def latex_problems(tex: str) -> list[str]:
    """Why ``tex`` would not be valid LaTeX for a booktabs table (empty list: fine)."""
    probs = []
    body = _ESCAPED.sub("", tex.replace("\\\\", "\n"))
    depth = 0
    for ch in body:
        depth += ch == "{"
        depth -= ch == "}"
        if depth < 0:
            probs.append("unbalanced '}'")
            break
    if depth > 0:
        probs.append("unbalanced '{'")
    plain = _COMMAND.sub("", re.sub(r"(?<!\\)\$[^$]*(?<!\\)\$", "", body))  # math mode may use _ and ^
    if plain.count("$") - plain.count("\\$"):
        probs.append("unbalanced '$' (math mode)")
    for ch in "_%#^~":
        if ch in plain:
            probs.append("unescaped %r in %r" % (ch, plain[plain.index(ch) - 30:plain.index(ch) + 30]))
    envs = re.findall(r"\\(begin|end)\{([^}]*)\}", tex)
    stack = []
    for kind, name in envs:
        if kind == "begin":
            stack.append(name)
        elif not stack or stack.pop() != name:
            probs.append("\\end{%s} without its \\begin" % name)
    if stack:
        probs.append("unclosed environment(s) %s" % stack)
    # every row of every tabular has the column count of its spec
    for spec, inner in re.findall(r"\\begin\{tabular\}\{([a-z|]*)\}(.*?)\\end\{tabular\}", tex, re.S):
        ncol = len(spec.replace("|", ""))
        for line in inner.split("\n"):
            line = line.strip()
            if not line.endswith("\\\\"):
                continue
            amps = len(re.findall(r"(?<!\\)&", line))
            if amps != ncol - 1:
                probs.append("row with %d columns in a %d-column tabular: %r" % (amps + 1, ncol, line[:80]))
    return probs


def markdown_problems(md: str) -> list[str]:
    probs = []
    block: list[str] = []
    for line in md.split("\n") + [""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            counts = {len(re.findall(r"(?<!\\)\|", x)) for x in block}
            if len(counts) != 1:
                probs.append("Markdown table with rows of different widths: %s" % block[:3])
            if len(block) < 2 or not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", block[1].replace(" ", "")):
                probs.append("Markdown table without a header rule: %s" % block[:2])
            block = []
    return probs


class _TagChecker(html.parser.HTMLParser):
    VOID = {"br", "hr", "img", "meta", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.probs = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.probs.append("unbalanced </%s>" % tag)


def html_problems(text: str) -> list[str]:
    p = _TagChecker()
    p.feed(text)
    p.close()
    return p.probs + (["unclosed tags %s" % p.stack] if p.stack else [])


def right_aligned_numbers(text: str) -> bool:
    """In every text table of ``text``, each cell that is a number ends at its column's right edge."""
    lines = text.split("\n")
    for i, rule in enumerate(lines):
        if not re.fullmatch(r"-+( +-+)*", rule.strip() or "x") or rule.startswith(" "):
            continue
        spans = [(m.start(), m.end()) for m in re.finditer(r"-+", rule)]
        for line in lines[i + 1:]:
            if not line.strip():
                break
            for a, b in spans:
                cell = line[a:b]
                if cell.strip() and re.fullmatch(r"-?[0-9][0-9.e+-]*", cell.strip()) and not cell.endswith(cell.strip()):
                    return False
    return True


PREAMBLE = ("\\documentclass{article}\n\\usepackage{booktabs}\n"
            "\\usepackage[margin=1cm,landscape]{geometry}\n\\begin{document}\n")


def compile_latex(pieces: list[str]) -> str | None:
    """Compile the pieces in one article with pdflatex; ``None`` if it worked or pdflatex is missing,
    else the end of its log."""
    exe = shutil.which("pdflatex")
    if exe is None:
        return None
    doc = PREAMBLE + "\n\\clearpage\n".join(pieces) + "\n\\end{document}\n"
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "doc.tex"), "w") as fh:
            fh.write(doc)
        out = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            return out.stdout[-3000:]
    return None
