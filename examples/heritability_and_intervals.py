"""Genotypes in an alpha lattice (John & Williams' 24 oat genotypes, 3 replicates of 6 incomplete
blocks): heritability three ways, intervals for the variance components, and likelihood-ratio
tests of the random terms.

* The classical analysis (genotypes fixed, incomplete blocks random, type III) gives the
  method-of-moments block variance with Satterthwaite and modified large-sample (SAS PROC
  VARCOMP ``CL``) intervals.
* The REML fit with genotypes random gives the genotypic variance, its profile interval, and
  broad-sense heritability: Cullis (mean PEV of BLUP differences, ASReml's 0.8091), Piepho
  (mean variance of BLUE differences) and the standard ratio.
* ``ranova`` tests each random term (lmerTest); ``vcomp.compare`` tests the blocks by an
  ML likelihood-ratio test of two fits (lme4's ``anova``).

Run: python examples/heritability_and_intervals.py
"""
import vcomp

alpha = vcomp.datasets.load("john_alpha")

# --- classical: genotypes fixed, incomplete blocks random --------------------------------------
design = vcomp.Design(fixed="rep + gen", random=["rep:block"])
res = design.anova(alpha, "yield", ss_type=3)
print(res)
print()
print(res.components_ci(level=0.95, method="satterthwaite"))
print()
print(res.components_ci(level=0.95, method="mls"))
print()

# --- REML: genotypes random ----------------------------------------------------------------------
fit = vcomp.lmm("yield ~ rep + (1|gen) + (1|rep:block)", alpha)
print(fit)
print()
print("Broad-sense heritability of the genotypes:")
for method in ("cullis", "piepho", "standard"):
    print("  %-9s %.4f" % (method, fit.heritability("gen", method=method)))
print()
print(fit.confint(level=0.95))          # profile intervals on the sd scale, fixed effects by the ML profile
print()
print(fit.confint(method="wald"))       # lme4's Wald intervals (fixed effects only)
print()
print(fit.ranova())                     # each random term removed in turn (REML likelihood-ratio tests)
print()

# --- are the incomplete blocks worth it? an ML comparison of two fits ----------------------------
no_blocks = vcomp.lmm("yield ~ rep + (1|gen)", alpha)
print(vcomp.compare(no_blocks, fit))
