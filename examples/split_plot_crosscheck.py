"""A split-plot analysed two ways, side by side.

Classically (SAS PROC GLM style): the ANOVA table with expected mean
squares, the right error term for each test and method-of-moments variance
components. By REML: the mixed model with Kenward-Roger and Satterthwaite
tests. Then the cross-check explains where and why the two differ.

Run: python examples/split_plot_crosscheck.py
"""
from __future__ import annotations

import vcomp


def main() -> None:
    oats = vcomp.datasets.load("oats")
    design = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")

    print("Balanced: Yates' oats")
    print(design.crosscheck(oats, "yield"))
    print()

    # An unbalanced split-plot: one whole plot missing, a few sub-plots lost.
    d = vcomp.datasets.load("splitplot_missing_whole")
    d = d.drop(index=[3, 17, 40]).reset_index(drop=True)
    design = vcomp.SplitPlot(whole="A", sub="B", block="block")
    print("Unbalanced: simulated split-plot with a missing whole plot and three lost sub-plots")
    print("Classical analysis (type I sums of squares, strata in textbook order):")
    print(design.anova(d, "y", ss_type=1))
    print()
    fit = design.lmm(d, "y")
    print("REML fit, Kenward-Roger type III tests:")
    print(fit.anova(ddf="kenward-roger"))
    print()
    print(design.crosscheck(d, "y"))


if __name__ == "__main__":
    main()
