"""Numbers to text, Markdown, LaTeX and HTML (via tabulate).

Results keep plain numeric DataFrames; formatting happens only here, at print time.
Result classes inherit :class:`TableMixin` and implement ``_blocks()``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tabulate import tabulate

__all__ = ["fmt_number", "fmt_p", "render", "TableMixin"]

_FMT = {"text": "simple", "markdown": "pipe", "latex": "latex_booktabs", "html": "html"}


def fmt_number(x, digits: int = 5) -> str:
    """A number with ``digits`` significant digits; blank for NaN/None."""
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(xf):
        return ""
    if math.isinf(xf):
        return "Inf" if xf > 0 else "-Inf"
    if float(xf).is_integer() and abs(xf) < 1e12:
        return "%d" % xf
    if xf != 0 and (abs(xf) >= 1e6 or abs(xf) < 1e-4):
        return "%.*e" % (max(digits - 1, 1), xf)
    if abs(xf) < 10 ** (digits - 1):
        return "%.*g" % (digits, xf)
    return "%.1f" % xf  # large sums of squares keep one decimal, as textbooks print them


def fmt_p(p) -> str:
    """A p-value as R prints it (``<2e-16`` for tiny ones)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    p = float(p)
    if p < 2.2e-16:
        return "<2e-16"
    if p < 1e-4:
        return "%.2e" % p
    return "%.4f" % p


def _cell(v, col: str, digits: int) -> str:
    if col.lower() in ("p", "pr(>f)", "p_value") or col.lower().startswith("p_") or col.lower() == "pr(>|t|)":
        return fmt_p(v)
    if isinstance(v, (float, np.floating, int, np.integer)) and not isinstance(v, bool):
        return fmt_number(v, digits)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _booktabs(body: str) -> str:
    """tabulate's ``latex_raw`` table with booktabs rules instead of ``\\hline``."""
    lines = body.split("\n")
    rules = [i for i, line in enumerate(lines) if line.strip() == "\\hline"]
    for i, rule in zip(rules[:2] + rules[-1:], ("\\toprule", "\\midrule", "\\bottomrule")):
        lines[i] = rule
    return "\n".join(lines)


def render(frame: pd.DataFrame, fmt: str = "text", digits: int = 5, index: bool = True,
           index_name: str | None = None, title: str | None = None, raw_latex: bool = False) -> str:
    """Render a numeric DataFrame as a table in ``fmt`` (text, markdown, latex, html).

    With ``raw_latex`` the LaTeX cells are written as given (LaTeX code such
    as ``$\\sigma^2$``), not escaped.
    """
    cols = list(frame.columns)
    rows = []
    for idx, rec in zip(frame.index, frame.itertuples(index=False)):
        cells = [_cell(v, str(c), digits) for c, v in zip(cols, rec)]
        rows.append(([str(idx)] if index else []) + cells)
    headers = ([index_name or (frame.index.name or "")] if index else []) + [str(c) for c in cols]
    raw = raw_latex and fmt == "latex"
    body = tabulate(rows, headers=headers, tablefmt="latex_raw" if raw else _FMT.get(fmt, fmt), disable_numparse=True)
    if raw:
        body = _booktabs(body)
    if title:
        if fmt == "html":
            return "<p><b>%s</b></p>\n%s" % (title, body)
        if fmt == "latex":
            return "%% %s\n%s" % (title, body)
        if fmt == "markdown":
            return "**%s**\n\n%s" % (title, body)
        return "%s\n%s" % (title, body)
    return body


class TableMixin:
    """Give a result ``__str__``, ``to_markdown``, ``to_latex`` and ``_repr_html_``.

    Subclasses implement ``_blocks()`` returning a list of items, each either a
    string (a line of text) or a tuple ``(title, DataFrame)`` or
    ``(title, DataFrame, dict_of_render_kwargs)``.  The kwargs may hold
    ``latex_frame``: the table to print instead in LaTeX, its cells LaTeX
    code (e.g. math mode), written unescaped.
    """

    def _blocks(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def _render(self, fmt: str) -> str:
        out = []
        for b in self._blocks():
            if isinstance(b, str):
                out.append("<p>%s</p>" % b if fmt == "html" else b)
            else:
                title, frame = b[0], b[1]
                kw = dict(b[2]) if len(b) > 2 else {}
                latex_frame = kw.pop("latex_frame", None)
                if fmt == "latex" and latex_frame is not None:
                    frame, kw["raw_latex"] = latex_frame, True
                out.append(render(frame, fmt, title=title, **kw))
        return "\n\n".join(out)

    def __str__(self) -> str:
        return self._render("text")

    def __repr__(self) -> str:
        return self._render("text")

    def to_markdown(self) -> str:
        """The result as Markdown tables."""
        return self._render("markdown")

    def to_latex(self) -> str:
        """The result as LaTeX (booktabs) tables."""
        return self._render("latex")

    def _repr_html_(self) -> str:
        return self._render("html")
