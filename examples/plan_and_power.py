"""Plan a split-plot trial before planting: the skeleton ANOVA, a randomized field plan,
and the power to detect a nitrogen effect against the number of blocks.

Design: three varieties on whole plots, four nitrogen rates on sub-plots, in
randomized complete blocks (the oats trial's layout).  Assumed variances, from
an earlier trial: blocks 1.0, whole plots (block:variety) 0.6, sub-plots 0.5.
The nitrogen effect to detect: +0.4, +0.7 and +0.9 over the control.

Prints the textbook ANOVA table in symbols and its numbers for 4 blocks, the
field map of a 4-block plan (one line of plots per whole plot), the exact
power of the variety, nitrogen and interaction tests for 2 to 8 blocks, and
one simulated check of an exact value; saves the power curve to
examples/output/plan_and_power.png (when matplotlib is installed).

Run: python examples/plan_and_power.py
"""
import pathlib

import pandas as pd

import vcomp

design = vcomp.SplitPlot(whole="variety", sub="nitro", block="block")
levels = {"variety": ["Golden", "Marvel", "Victory"], "nitro": ["N0", "N1", "N2", "N3"], "block": 4}
components = {"block": 1.0, "block:variety": 0.6, "Residual": 0.5}
effects = {"nitro": {"N1": 0.4, "N2": 0.7, "N3": 0.9}}

# ---- the skeleton: what the analysis will look like, before any data
skeleton = design.skeleton()
print(skeleton)
print()
print("The same table in numbers for 3 varieties x 4 nitrogen rates x 4 blocks (df and EMS coefficients):")
print(skeleton.evaluate({"variety": 3, "nitro": 4, "block": 4}))
print()

# ---- the randomized field plan, as a field map: one row of the map per whole plot
plan = design.layout(levels, seed=2024)
print("Field plan (seed 2024): %d plots; each line is one whole plot, its sub-plots left to right" % len(plan))
for (block, variety), wp in plan.groupby(["block", "variety"], sort=False):
    cells = "  ".join("%3d:%s" % (p, n) for p, n in zip(wp["plot"], wp["nitro"]))
    print("  %-7s %-8s | %s" % (block, variety, cells))
print()

# ---- exact power against the number of blocks
rows = []
for r in range(2, 9):
    pw = design.power(dict(levels, block=r), effects, components)
    rows.append(pw["power"].rename(r))
curve = pd.DataFrame(rows)
curve.index.name = "blocks"
print("Exact power (noncentral F, alpha = 0.05) of each test for the nitrogen effect %s:" % effects["nitro"])
print(curve.round(4).to_string())
enough = curve.index[curve["nitro"] >= 0.8]
print("Blocks needed for 80%% power on nitrogen: %s" % (enough[0] if len(enough) else "more than 8"))
print()

# ---- one simulated check of an exact value (REML fits, Kenward-Roger F tests)
exact = design.power(levels, effects, components)
sim = design.power(levels, effects, components, nsim=200, seed=1)
check = pd.DataFrame({"exact": exact["power"], "simulated": sim["power"], "mc_se": sim["mc_se"]})
print("4 blocks: exact power and 200 simulated trials (refitted by REML, Kenward-Roger tests):")
print(check.round(4).to_string())
print()

# ---- the power curve as a figure
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # the optional 'plot' extra
    plt = None
if plt is not None:
    out = pathlib.Path(__file__).resolve().parent / "output"
    out.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(curve.index, curve["nitro"], marker="o", label="nitro (sub-plot test)")
    ax.axhline(0.8, color="grey", lw=0.8, ls="--", label="80% power")
    ax.axhline(0.05, color="grey", lw=0.8, ls=":", label="alpha (no effect: variety, variety:nitro)")
    ax.set_xlabel("number of blocks")
    ax.set_ylabel("power (alpha = 0.05)")
    ax.set_ylim(0, 1)
    ax.legend(loc="center right", fontsize=8)
    ax.set_title("Split-plot: power against blocks")
    fig.tight_layout()
    fig.savefig(out / "plan_and_power.png", dpi=120)
    print("Power curve saved to %s" % (out / "plan_and_power.png"))
