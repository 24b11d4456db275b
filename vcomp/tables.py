"""Numbers to text, Markdown, LaTeX and HTML: the listings an analyst pastes into a report.

Results keep plain numeric DataFrames; formatting happens only here, at print time.
Result classes inherit :class:`TableMixin` and implement ``_blocks()``; tables that
must stay DataFrames (the mixed-model ``anova``, ``coef_table``, ``contrast``) are
:class:`ResultFrame` objects made by :func:`titled`.

Rules (SAS PROC GLM and R print-outs as the model):

* one number of decimals per numeric column, chosen from the column's magnitudes
  (:func:`column_decimals`); rounding noise (``1e-30`` next to ``4``) prints as 0;
* degrees of freedom as integers where they are integers, otherwise (Satterthwaite,
  Kenward-Roger) with two decimals; p values as R prints them (``<2e-16``);
* numbers right-aligned in every format, text left-aligned;
* LaTeX with every special character escaped (column names, levels, notes) and
  the title as the table's ``\\caption``; HTML with the title as ``<caption>``.
"""
from __future__ import annotations

import html
import math
import textwrap
from typing import Any, Mapping

import numpy as np
import pandas as pd
from tabulate import LATEX_ESCAPE_RULES, tabulate

__all__ = ["fmt_number", "fmt_df", "fmt_p", "column_decimals", "format_column", "render", "render_text", "Notes",
           "TableMixin", "ResultFrame", "titled", "escape_latex"]

_FMT = {"text": "simple", "markdown": "pipe", "latex": "latex_booktabs", "html": "html"}
#: values this small relative to their column's largest are rounding noise and print as 0
NOISE = 1e-10
#: columns whose largest magnitude is outside [SCI_LOW, SCI_HIGH) print in scientific notation
SCI_LOW, SCI_HIGH = 1e-3, 1e9
#: width of wrapped notes in text output
WIDTH = 100


# ---------------------------------------------------------------- single numbers

def fmt_number(x, digits: int = 5) -> str:
    """A number with ``digits`` significant digits (for sentences); blank for NaN/None."""
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


def fmt_df(x) -> str:
    """Degrees of freedom: ``"45"`` where integral, else two decimals (``"6.98"``, Satterthwaite); blank for NaN."""
    return format_column([x], "df")[0]


def fmt_p(p) -> str:
    """A p-value as R prints it (``<2e-16`` for tiny ones)."""
    if p is None:
        return ""
    try:
        p = float(p)
    except (TypeError, ValueError):
        return str(p)
    if math.isnan(p):
        return ""
    if p < 2.2e-16:
        return "<2e-16"
    if p < 1e-4:
        return "%.2e" % p
    return "%.4f" % p


# ---------------------------------------------------------------- columns

def _needed(x: float, digits: int) -> int:
    """Decimals needed to show ``x`` with ``digits`` significant digits (fewer when ``x`` is exact with fewer)."""
    if x == 0:
        return 0
    d = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    while d > 0 and abs(round(x, d - 1) - x) <= 1e-9 * abs(x):
        d -= 1
    return d


def column_decimals(values, digits: int = 4) -> int | None:
    """The one number of decimals for a numeric column (``None``: scientific notation).

    Each value needs the decimals that show it with ``digits`` significant
    digits; the column takes the most any value needs, but at most one more
    than its largest value needs (so ``15875.3`` and ``321.8`` share one
    decimal, and a tiny entry cannot blow up the column).  Integer columns get
    none; values at most ``NOISE`` times the column's largest count as 0.

    Parameters
    ----------
    values : array_like of float
    digits : int

    Returns
    -------
    int or None
    """
    a = np.asarray(values, dtype=float)
    a = np.abs(a[np.isfinite(a)])
    if a.size == 0 or a.max() == 0:
        return 0
    big = float(a.max())
    a = a[a > NOISE * big]
    if big >= SCI_HIGH or big < SCI_LOW:
        return None
    cap = max(0, digits - 1 - int(math.floor(math.log10(big))))
    return int(min(max(_needed(float(x), digits) for x in a), cap + 1))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _blank(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def _zero_clean(s: str) -> str:
    """``-0.000`` -> ``0.000``."""
    if s.startswith("-") and not s.strip("-0.e+"):
        return s[1:]
    return s


def format_column(values, kind: str = "auto", digits: int = 4) -> list[str]:
    """Text of every cell of one column.

    Parameters
    ----------
    values : sequence
    kind : str
        ``"num"`` (one number of decimals for the column), ``"df"`` (integers where
        integral, else two decimals), ``"p"``, ``"int"``, ``"percent"`` (one decimal),
        ``"fixedN"`` (``N`` decimals), ``"text"``, or ``"auto"`` (numbers as ``"num"``,
        the rest as text).
    digits : int
        Significant digits for ``"num"``.

    Returns
    -------
    list of str
    """
    vals = list(values)
    if kind == "text":
        return ["" if _blank(v) else str(v) for v in vals]
    if kind == "p":
        return [fmt_p(v) if _is_number(v) or _blank(v) else str(v) for v in vals]
    nums = [float(v) for v in vals if _is_number(v) and np.isfinite(float(v))]
    big = max((abs(x) for x in nums), default=0.0)

    def one(v, spec):
        if _blank(v):
            return ""
        if not _is_number(v):
            return str(v)
        x = float(v)
        if math.isinf(x):
            return "Inf" if x > 0 else "-Inf"
        if abs(x) <= NOISE * big:
            x = 0.0
        if spec is None:
            return "0" if x == 0 else "%.*e" % (max(digits - 1, 1), x)
        return _zero_clean("%.*f" % (spec, x))

    if kind == "df":
        out = []
        for v in vals:
            if _is_number(v) and np.isfinite(float(v)):
                x = float(v)
                out.append("%d" % round(x) if abs(x - round(x)) < 1e-9 * max(1.0, abs(x)) else "%.2f" % x)
            else:
                out.append(one(v, 0))
        return out
    if kind == "int":
        return [one(v, 0) for v in vals]
    if kind == "percent":
        return [one(v, 1) for v in vals]
    if kind.startswith("fixed"):
        return [one(v, int(kind[5:])) for v in vals]
    d = column_decimals(nums, digits)
    return [one(v, d) for v in vals]


_P_NAMES = {"p", "p_value", "pr(>f)", "pr(>|t|)", "pr(>chisq)", "pr(>|z|)", "pvalue", "p-value"}
_DF_NAMES = {"df", "num_df", "den_df", "den df", "num df", "numdf", "dendf", "chi df", "npar"}


def _kind(name: str, values) -> str:
    low = str(name).lower()
    if low in _P_NAMES or low.startswith("p_") or low.startswith("pr("):
        return "p"
    if low in _DF_NAMES or low.startswith("df_") or low.startswith("den_df") or low.endswith("_df"):
        return "df"
    if low in ("percent", "%", "% of total"):
        return "percent"
    return "auto"


def _right(values, kind: str) -> bool:
    if kind == "text":
        return False
    if kind != "auto":
        return True
    return all(_is_number(v) or _blank(v) for v in values) and any(_is_number(v) for v in values)


# ---------------------------------------------------------------- tables

def escape_latex(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (``_ % & # $ { } ~ ^ \\ < >``)."""
    return "".join(LATEX_ESCAPE_RULES.get(ch, ch) for ch in str(text))


def _index_columns(frame: pd.DataFrame, index_name: str | None) -> tuple[list[str], list[list[str]]]:
    idx = frame.index
    if isinstance(idx, pd.MultiIndex):
        names = [str(n) if n is not None else "" for n in idx.names]
        cols = [["" if _blank(v) else str(v) for v in idx.get_level_values(k)] for k in range(idx.nlevels)]
        if index_name:
            names[0] = index_name
        return names, cols
    return [index_name if index_name is not None else (str(idx.name) if idx.name is not None else "")], \
        [["" if _blank(v) else str(v) for v in idx]]


def render(frame: pd.DataFrame, fmt: str = "text", digits: int = 4, index: bool = True,
           index_name: str | None = None, title: str | None = None, formats: Mapping[str, str] | None = None,
           labels: Mapping[str, str] | None = None, raw_latex: bool = False) -> str:
    """Render a numeric DataFrame as a report table.

    Parameters
    ----------
    frame : DataFrame
    fmt : {"text", "markdown", "latex", "html"}
    digits : int
        Significant digits behind each numeric column's decimals (:func:`column_decimals`).
    index : bool
        Show the index (a MultiIndex gives one column per level).
    index_name : str, optional
        Header of the (first) index column.
    title : str, optional
        Printed above (text, Markdown), as ``\\caption`` (LaTeX) or ``<caption>`` (HTML).
    formats : dict, optional
        Column -> kind (see :func:`format_column`); default from the column name
        (``p``, ``df``, ``den_df``, ... ) and its values.
    labels : dict, optional
        Column -> header shown.
    raw_latex : bool
        LaTeX cells written as given (LaTeX code such as ``$\\sigma^2$``), not escaped.

    Returns
    -------
    str
    """
    if fmt not in _FMT:
        raise ValueError("fmt must be one of %s, not %r" % (", ".join(_FMT), fmt))
    formats = dict(formats or {})
    labels = dict(labels or {})
    headers, columns, right = [], [], []
    if index:
        names, icols = _index_columns(frame, index_name)
        headers += names
        columns += icols
        right += [False] * len(icols)
    for j, c in enumerate(frame.columns):
        vals = list(frame.iloc[:, j])
        kind = formats.get(c) or _kind(c, vals)
        headers.append(labels.get(c, str(c)))
        columns.append(format_column(vals, kind, digits))
        right.append(_right(vals, kind))
    rows = [list(r) for r in zip(*columns)] if columns else []
    if fmt == "markdown":
        rows = [[x.replace("|", "\\|") for x in r] for r in rows]
        headers = [h.replace("|", "\\|") for h in headers]
    align = tuple("right" if r else "left" for r in right)
    raw = raw_latex and fmt == "latex"
    body = tabulate(rows, headers=headers, tablefmt="latex_raw" if raw else _FMT[fmt], disable_numparse=True,
                    colalign=align if rows else None)
    if raw:
        body = _booktabs(body)
    if fmt == "latex":
        head = "\\begin{table}[htbp]\n\\centering\n"
        if title:
            head += "\\caption{%s}\n" % escape_latex(title)
        return head + body + "\n\\end{table}"
    if fmt == "html":
        if title:
            body = body.replace("<table>", "<table>\n<caption>%s</caption>" % html.escape(title), 1)
        return body
    if not title:
        return body
    if fmt == "markdown":
        return "**%s**\n\n%s" % (title.replace("*", "\\*"), body)
    return "%s\n%s" % (title, body)


class Notes:
    """A titled list of sentences, rendered as bullets."""

    def __init__(self, items, title: str = "Notes"):
        self.items = [str(x) for x in items]
        self.title = title

    def render(self, fmt: str) -> str:
        if not self.items:
            return ""
        if fmt == "latex":
            return ("\\paragraph{%s}\n\\begin{itemize}\n" % escape_latex(self.title)
                    + "\n".join("\\item %s" % escape_latex(x) for x in self.items) + "\n\\end{itemize}")
        if fmt == "html":
            return ("<p><b>%s</b></p>\n<ul>\n" % html.escape(self.title)
                    + "\n".join("<li>%s</li>" % html.escape(x) for x in self.items) + "\n</ul>")
        if fmt == "markdown":
            return "**%s**\n\n" % self.title + "\n".join("- %s" % x.replace("*", "\\*") for x in self.items)
        return self.title + ":\n" + "\n".join(textwrap.fill(x, WIDTH, initial_indent="  - ", subsequent_indent="    ")
                                              for x in self.items)


def render_text(text: str, fmt: str) -> str:
    """A line of text in ``fmt`` (escaped for LaTeX and HTML)."""
    if fmt == "latex":
        return escape_latex(text) + "\n"
    if fmt == "html":
        return "<p>%s</p>" % html.escape(text)
    if fmt == "text":
        return "\n".join(textwrap.fill(line, WIDTH) if len(line) > WIDTH else line for line in text.split("\n"))
    return text


def _booktabs(body: str) -> str:
    """tabulate's ``latex_raw`` table with booktabs rules instead of ``\\hline``."""
    lines = body.split("\n")
    rules = [i for i, line in enumerate(lines) if line.strip() == "\\hline"]
    for i, rule in zip(rules[:2] + rules[-1:], ("\\toprule", "\\midrule", "\\bottomrule")):
        lines[i] = rule
    return "\n".join(lines)


def _render_block(b, fmt: str) -> str:
    if isinstance(b, str):
        return render_text(b, fmt)
    if isinstance(b, Notes):
        return b.render(fmt)
    title, frame = b[0], b[1]
    kw = dict(b[2]) if len(b) > 2 else {}
    latex_frame = kw.pop("latex_frame", None)  # LaTeX code (math mode) to print instead, unescaped
    if fmt == "latex" and latex_frame is not None:
        frame, kw["raw_latex"] = latex_frame, True
    return render(frame, fmt, title=title, **kw)


class TableMixin:
    """Give a result ``__str__``, ``to_markdown``, ``to_latex`` and ``_repr_html_``.

    Subclasses implement ``_blocks()`` returning a list of items, each a string
    (a line of text), a :class:`Notes`, or a tuple ``(title, DataFrame)`` or
    ``(title, DataFrame, dict_of_render_kwargs)`` (see :func:`render`).
    """

    def _blocks(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def _render(self, fmt: str) -> str:
        out = [_render_block(b, fmt) for b in self._blocks()]
        return "\n\n".join(x for x in out if x)

    def __str__(self) -> str:
        return self._render("text")

    def __repr__(self) -> str:
        return self._render("text")

    def to_markdown(self) -> str:
        """The result as Markdown tables."""
        return self._render("markdown")

    def to_latex(self) -> str:
        """The result as LaTeX (booktabs tables in ``table`` floats with captions; needs ``\\usepackage{booktabs}``)."""
        return self._render("latex")

    def _repr_html_(self) -> str:
        return self._render("html")


# ---------------------------------------------------------------- DataFrames that print as report tables

class ResultFrame(TableMixin, pd.DataFrame):
    """A DataFrame of results that prints as a titled report table.

    It is an ordinary numeric DataFrame (indexing, arithmetic and every pandas
    method work as usual and return plain DataFrames); only ``print``,
    ``str``, Jupyter's HTML view and ``to_markdown()`` / ``to_latex()``
    called without arguments use vcomp's report format, with the title and
    column labels given to :func:`titled`.  Pandas' own exporters are used
    when ``to_markdown`` / ``to_latex`` get arguments.
    """

    _metadata = ["_vc_title", "_vc_render", "_vc_notes"]

    @property
    def _constructor(self):
        return pd.DataFrame

    def _blocks(self) -> list:
        kw = dict(getattr(self, "_vc_render", None) or {})
        out = [(getattr(self, "_vc_title", None), pd.DataFrame(self), kw)]
        notes = getattr(self, "_vc_notes", None)
        if notes:
            out.append(Notes(notes))
        return out

    def _export(self, fmt: str, args: tuple, kwargs: dict) -> str:
        if args or kwargs:  # pandas' own exporter
            return getattr(pd.DataFrame(self), "to_" + fmt)(*args, **kwargs)
        return self._render(fmt)

    def to_markdown(self, *args: Any, **kwargs: Any) -> str:
        """The table as Markdown (pandas' ``DataFrame.to_markdown`` when given arguments)."""
        return self._export("markdown", args, kwargs)

    def to_latex(self, *args: Any, **kwargs: Any) -> str:
        """The table as LaTeX (pandas' ``DataFrame.to_latex`` when given arguments)."""
        return self._export("latex", args, kwargs)


def titled(frame: pd.DataFrame, title: str, *, labels: Mapping[str, str] | None = None,
           formats: Mapping[str, str] | None = None, index_name: str | None = None,
           notes: list[str] | None = None) -> ResultFrame:
    """``frame`` as a :class:`ResultFrame` that prints with ``title`` (the numbers are unchanged).

    Parameters
    ----------
    frame : DataFrame
    title : str
        E.g. ``"Type III Analysis of Variance Table with Satterthwaite's method"``.
    labels, formats, index_name
        Passed to :func:`render` at print time.
    notes : list of str, optional
        Sentences printed below the table.

    Returns
    -------
    ResultFrame
    """
    out = ResultFrame(frame)
    object.__setattr__(out, "_vc_title", title)
    object.__setattr__(out, "_vc_render", {"labels": dict(labels or {}), "formats": dict(formats or {}),
                                           "index_name": index_name})
    object.__setattr__(out, "_vc_notes", list(notes or []))
    return out
