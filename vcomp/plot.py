"""Plots (optional: needs matplotlib, ``pip install "vcomp[plot]"``)."""
from __future__ import annotations

import numpy as np

__all__ = ["shrinkage", "means"]


def _pyplot():
    try:
        import matplotlib
        if matplotlib.get_backend().lower() not in ("agg",) and not _has_display():
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("vcomp.plot needs matplotlib; install it with: pip install \"vcomp[plot]\"") from exc
    return plt


def _has_display() -> bool:
    import os
    return bool(os.environ.get("DISPLAY") or os.environ.get("MPLBACKEND"))


def shrinkage(fit, group: str | None = None, ax=None, title: str | None = None):
    """Each group's own estimate moving to its mixed-model estimate.

    For a term with two coefficients (intercept and slope) the plot is the
    coefficient plane: an arrow from each group's own least-squares fit to
    its mixed-model fit (fixed effect + BLUP), the population average (the
    fixed effects) marked with a cross, point size proportional to group
    size. With one coefficient, each group's own and mixed estimates are
    drawn side by side and joined.

    Parameters
    ----------
    fit : MixedModel
        A fitted mixed model.
    group : str, optional
        Grouping factor; defaults to the first one of the model.
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made otherwise.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not hasattr(fit, "shrinkage"):
        from ._errors import VcompError
        raise VcompError("plot.shrinkage needs a fitted vcomp.MixedModel (vcomp.lmm(...)), got %r" % type(fit).__name__)
    plt = _pyplot()
    sh = fit.shrinkage(group)
    coefs = [c[4:] for c in sh.columns if c.startswith("ols_")]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 5))
    else:
        fig = ax.figure
    n = sh["n"].to_numpy(float)
    size = 12 + 60 * n / max(n.max(), 1)
    fixef = {("Intercept" if k in ("(Intercept)", "Intercept") else k): v for k, v in fit.fixef.items()}
    if len(coefs) >= 2:
        a, b = coefs[0], coefs[1]
        ox, oy = sh["ols_" + a].to_numpy(float), sh["ols_" + b].to_numpy(float)
        mx, my = sh["mixed_" + a].to_numpy(float), sh["mixed_" + b].to_numpy(float)
        ok = np.isfinite(ox) & np.isfinite(oy)
        ax.scatter(ox[ok], oy[ok], s=size[ok], facecolors="none", edgecolors="tab:blue", label="own fit (OLS)")
        ax.scatter(mx, my, s=size, color="tab:orange", alpha=0.8, label="mixed model (fixed + BLUP)")
        for i in np.flatnonzero(ok):
            ax.annotate("", xy=(mx[i], my[i]), xytext=(ox[i], oy[i]),
                        arrowprops=dict(arrowstyle="->", color="0.5", lw=0.6, alpha=0.7))
        ax.scatter([fixef.get(a, 0.0)], [fixef.get(b, 0.0)], marker="X", s=160, color="black",
                   label="population average", zorder=5)
        ax.set_xlabel(a)
        ax.set_ylabel(b)
    else:
        a = coefs[0]
        o, m = sh["ols_" + a].to_numpy(float), sh["mixed_" + a].to_numpy(float)
        ok = np.isfinite(o)
        for i in np.flatnonzero(ok):
            ax.plot([0, 1], [o[i], m[i]], color="0.6", lw=0.6)
        ax.scatter(np.zeros(ok.sum()), o[ok], s=size[ok], facecolors="none", edgecolors="tab:blue", label="own fit")
        ax.scatter(np.ones(len(m)), m, s=size, color="tab:orange", label="mixed model")
        ax.axhline(fixef.get(a, 0.0), color="black", ls="--", label="population average")
        ax.set_xticks([0, 1], ["own fit", "mixed model"])
        ax.set_ylabel(a)
    ax.set_title(title or "Shrinkage of %s estimates" % (group or sh.index.name or "group"))
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def means(m, ax=None, letters: bool = True, title: str | None = None):
    """Estimated means with their confidence intervals and compact letters.

    One factor: a dot per level with its interval. Two or more factors: the levels of the
    last factor along the x axis, one series (dodged) per combination of the others. Letters
    (Tukey, 5%, within each ``by`` slice) are written above each interval.

    Parameters
    ----------
    m : Means
        From ``MixedModel.means`` or ``AnovaResult.means``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made otherwise.
    letters : bool
        Write the letter display.
    title : str, optional
        Axes title (default: the term and the method).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    tab = m.table
    facs = list(m.factors)
    if ax is None:
        width = min(12.0, 3.0 + 0.45 * len(tab))
        fig, ax = plt.subplots(figsize=(max(width, 5.0), 4.5))
    else:
        fig = ax.figure
    lab = m.letters() if letters and len(tab) > 1 else None
    xf = facs[-1]
    xlev = list(dict.fromkeys(tab.index.get_level_values(xf) if len(facs) > 1 else tab.index))
    if len(facs) > 1:
        series = list(dict.fromkeys(tuple(i[:-1]) for i in tab.index))
    else:
        series = [()]
    span = 0.7
    step = span / len(series)
    for k, sv in enumerate(series):
        rows = [i for i in tab.index if tuple(i[:-1]) == sv] if sv else list(tab.index)
        xs = np.array([xlev.index(i[-1] if sv else i) for i in rows], dtype=float)
        xs = xs - span / 2 + step * (k + 0.5) if len(series) > 1 else xs
        sub = tab.loc[rows]
        mean, lo, up = (sub[c].to_numpy(float) for c in ("mean", "lower", "upper"))
        err = np.vstack([mean - lo, up - mean])
        name = " ".join(map(str, sv)) if sv else None
        ax.errorbar(xs, mean, yerr=err, fmt="o", capsize=3, lw=1.2, label=name)
        if lab is not None:
            for x, u, i in zip(xs, up, rows):
                if np.isfinite(u):
                    ax.annotate(str(lab.loc[i]).strip(), (x, u), xytext=(0, 3), textcoords="offset points",
                                ha="center", va="bottom", fontsize="small")
    ax.set_xticks(range(len(xlev)), [str(v) for v in xlev])
    ax.set_xlabel(xf)
    ax.set_ylabel("mean" + (" of " + m.response if m.response else ""))
    if len(series) > 1:
        ax.legend(title=":".join(facs[:-1]), fontsize="small", loc="best")
    lvl = int(round(100 * m.level))
    within = (" within " + ":".join(m.by)) if m.by else ""
    extra = (", Tukey letters" + within) if lab is not None else ""
    ax.set_title(title or "%s means, %d%% intervals%s" % (m.term, lvl, extra))
    ax.margins(y=0.12)
    fig.tight_layout()
    return fig
