"""Yates' (1935) oats split-plot: the textbook ANOVA with expected mean squares,
error terms and method-of-moments variance components.

Six blocks; three varieties on whole plots (tested against block:variety, the
whole-plot error); four nitrogen levels on sub-plots (tested against the residual).

Run: python examples/oats_split_plot.py
"""
import vcomp

oats = vcomp.datasets.load("oats")
design = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")

print(design)
print()
print("lme4 formula of the same model:", design.formula("yield"))
print()

result = design.anova(oats, "yield")  # SAS type III (= type I here: the data are balanced)
print(result)
print()

print("Error term of each test (coefficients of the mean squares in the denominator):")
for source, combo in result.error_terms.items():
    if combo:
        print("  %-14s %s" % (source, " + ".join("%g MS(%s)" % (c, s) for s, c in combo.items())))
