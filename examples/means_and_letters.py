"""Yates' oats split-plot, end to end: the ANOVA table, then the variety x nitrogen means with
the textbook's three standard errors of differences, Tukey letters within each variety, and a plot.

The classical means use the stratum mean squares (the SE of a cell mean carries the block and
whole-plot strata); the comparisons of two varieties at the same nitrogen level mix the whole-plot
and sub-plot strata, so their SED uses the combined error with Satterthwaite's df. The mixed model
(REML + Kenward-Roger, as emmeans) gives the same numbers here because every method-of-moments
component is positive.

Run: python examples/means_and_letters.py   (the plot goes to examples/output/oats_means.png;
set VCOMP_EXAMPLES_OUTPUT to write it elsewhere)
"""
import os
import pathlib

import vcomp

oats = vcomp.datasets.load("oats")
design = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")

result = design.anova(oats, "yield")
print(result)
print()

# all twelve cell means with the three SEDs of a split-plot
cells = result.means("variety:nitro")
print(cells)
print()
sed = cells.sed
print("The three standard errors of a difference:")
print("  two nitrogen levels, same variety:  %.3f (df %.0f)" % (sed.loc["nitro", "mean"], sed.loc["nitro", "df"]))
print("  two varieties, same nitrogen level: %.3f (df %.2f, combined error)"
      % (sed.loc["variety", "mean"], sed.loc["variety", "df"]))
print("  two cells differing in both:        %.3f (df %.2f)"
      % (sed.loc["variety:nitro", "mean"], sed.loc["variety:nitro", "df"]))
print()

# nitrogen compared within each variety: Tukey letters per variety ("a" = highest yield)
within = result.means("variety:nitro", by="variety")
table = within.table[["mean", "se"]].assign(letters=within.letters())
print("Nitrogen levels within each variety (Tukey, 5%):")
print(table)
print()
print("Pairwise comparisons within Golden.rain (Tukey-adjusted):")
pairs = within.pairs(adjust="tukey")
print(pairs[pairs["variety"] == "Golden.rain"][["level1", "level2", "estimate", "se", "df", "p"]].round(4))
print()

# the same means from the mixed model (emmeans with Kenward-Roger df)
fit = design.lmm(oats, "yield")
kr = fit.means("variety:nitro", ddf="kenward-roger")
print("Largest difference from the mixed model (REML + Kenward-Roger): mean %.2g, se %.2g"
      % ((kr.table["mean"] - cells.table["mean"]).abs().max(), (kr.table["se"] - cells.table["se"]).abs().max()))

out = pathlib.Path(os.environ.get("VCOMP_EXAMPLES_OUTPUT", pathlib.Path(__file__).resolve().parent / "output"))
out.mkdir(parents=True, exist_ok=True)
fig = within.plot()
fig.savefig(out / "oats_means.png", dpi=120)
print("plot saved to", out / "oats_means.png")
