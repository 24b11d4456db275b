"""Numbers to text, Markdown, LaTeX and HTML (via tabulate).

Results keep plain numeric DataFrames; formatting happens only here, at print time.
Result classes inherit :class:`TableMixin` and implement ``_blocks()``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tabulate import tabulate

__all__ = ["fmt_number", "fmt_p", "render", "TableMixin", "TableFrame"]

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


def render(frame: pd.DataFrame, fmt: str = "text", digits: int = 5, index: bool = True,
           index_name: str | None = None, title: str | None = None) -> str:
    """Render a numeric DataFrame as a table in ``fmt`` (text, markdown, latex, html)."""
    cols = list(frame.columns)
    rows = []
    for idx, rec in zip(frame.index, frame.itertuples(index=False)):
        cells = [_cell(v, str(c), digits) for c, v in zip(cols, rec)]
        rows.append(([str(idx)] if index else []) + cells)
    headers = ([index_name or (frame.index.name or "")] if index else []) + [str(c) for c in cols]
    body = tabulate(rows, headers=headers, tablefmt=_FMT.get(fmt, fmt), disable_numparse=True)
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
    ``(title, DataFrame, dict_of_render_kwargs)``.
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
                kw = b[2] if len(b) > 2 else {}
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


class TableFrame(TableMixin, pd.DataFrame):
    """A result that *is* a numeric DataFrame and prints as a titled table.

    Used where the API returns a DataFrame (``components_ci``, ``confint``, ``compare``,
    ``ranova``): every pandas operation works and returns a plain DataFrame; ``str()``,
    ``to_markdown()``, ``to_latex()`` and ``_repr_html_()`` render the table with its
    title and notes (a plain-text line each).

    Parameters
    ----------
    data : DataFrame
        The numbers.
    title : str, optional
    notes : list of str, optional
    """

    _metadata = ["title", "notes"]

    def __init__(self, data=None, *args, title: str | None = None, notes=None, **kwargs) -> None:
        super().__init__(data, *args, **kwargs)
        self.title = title
        self.notes = list(notes or [])

    @property
    def _constructor(self):
        return pd.DataFrame

    def _blocks(self) -> list:
        return [(getattr(self, "title", None), pd.DataFrame(self))] + list(getattr(self, "notes", None) or [])

    def to_markdown(self, *args, **kwargs) -> str:  # type: ignore[override]
        """The table as Markdown (pandas' own arguments are not used)."""
        return self._render("markdown")

    def to_latex(self, *args, **kwargs) -> str:  # type: ignore[override]
        """The table as LaTeX (booktabs; pandas' own arguments are not used)."""
        return self._render("latex")
