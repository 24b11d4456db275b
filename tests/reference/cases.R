# Extra reference cases: dataset, response, design (as a vcomp builder call and as fixed/random term
# lists in textbook order), and the lme4 formula of the same model (NA: lmer cannot fit it).
# Same structure as /work/shared/oracle/cases.R; `factors` lists factor columns not named in `terms`
# (mixed-model-only cases), `note` says what the case is for.
case <- function(name, csv, response, terms, fixed, random, builder, lmer, note, factors = character(0)) {
  list(name = name, csv = csv, response = response, terms = terms, fixed = fixed, random = random,
       builder = builder, lmer = lmer, set = "extra", note = note, factors = factors)
}
SP_TERMS <- c("block", "A", "block:A", "B", "A:B")
CASES <- list(
  case("sim_splitplot_drop10", "sim_splitplot_drop10", "y", SP_TERMS, c("A", "B", "A:B"), c("block", "block:A"),
       'vcomp.SplitPlot(whole="A", sub="B", block="block")', "y ~ A*B + (1|block) + (1|block:A)",
       "split-plot (oracle sims.R splitplot(21, drop_frac=0.1)): 10% of sub-plots lost; synthesized denominators"),
  case("sim_splitplot_drop25", "sim_splitplot_drop25", "y", SP_TERMS, c("A", "B", "A:B"), c("block", "block:A"),
       'vcomp.SplitPlot(whole="A", sub="B", block="block")', "y ~ A*B + (1|block) + (1|block:A)",
       "split-plot (oracle sims.R splitplot(22, drop_frac=0.25)): 25% of sub-plots lost"),
  case("sim_rcbd_unbal", "sim_rcbd_unbal", "y", c("block", "trt"), c("trt"), c("block"),
       'vcomp.RCBD(treatment="trt", block="block")', "y ~ trt + (1|block)",
       "RCBD, 5 treatments x 6 blocks, 4 plots lost (type I != II/III)"),
  case("sim_latin_square", "sim_latin_square", "y", c("row", "col", "trt"), c("trt"), c("row", "col"),
       'vcomp.LatinSquare(treatment="trt", row="row", col="col")', "y ~ trt + (1|row) + (1|col)",
       "5 x 5 Latin square, random rows and columns (balanced: types I/II/III agree)"),
  case("sim_strip_plot", "sim_strip_plot", "y", c("block", "H", "block:H", "V", "block:V", "H:V"),
       c("H", "V", "H:V"), c("block", "block:H", "block:V"),
       'vcomp.StripPlot(horizontal="H", vertical="V", block="block")',
       "y ~ H*V + (1|block) + (1|block:H) + (1|block:V)",
       "strip-plot (balanced), 4 blocks, H 3 x V 4; three error strata, H:V tested against block:H:V = Residual"),
  case("sim_splitsplit_unbal", "sim_splitsplit_unbal", "y",
       c("block", "A", "block:A", "B", "A:B", "block:A:B", "C", "A:C", "B:C", "A:B:C"),
       c("A", "B", "A:B", "C", "A:C", "B:C", "A:B:C"), c("block", "block:A", "block:A:B"),
       'vcomp.SplitSplitPlot(whole="A", sub="B", subsub="C", block="block")',
       "y ~ A*B*C + (1|block) + (1|block:A) + (1|block:A:B)",
       "split-split-plot, 3 blocks, A 3 / B 2 / C 3, 4 sub-sub-plots lost"),
  case("sim_nested_unbal", "sim_nested_unbal", "y", c("batch", "batch:sample"), character(0), c("batch", "batch:sample"),
       'vcomp.Nested(["batch", "sample"])', "y ~ 1 + (1|batch) + (1|batch:sample)",
       "two-stage nested random, unbalanced (2-4 samples per batch, 1-3 determinations per sample); the all-fixed sum-coded model is rank deficient, so no type III (as the oracle)"),
  case("sim_nested_unbal_reps", "sim_nested_unbal_reps", "y", c("lot", "lot:bag"), character(0), c("lot", "lot:bag"),
       'vcomp.Nested(["lot", "bag"])', "y ~ 1 + (1|lot) + (1|lot:bag)",
       "two-stage nested random, 5 lots x 3 bags, 1-4 determinations per bag (type III defined)"),
  case("sim_crd_factorial", "sim_crd_factorial", "y", c("A", "B", "A:B"), c("A", "B", "A:B"), character(0),
       'vcomp.CRD(["A", "B"])', NA,
       "classical-only: completely randomized 3 x 2 factorial, unequal replication; no random term, so lmer cannot fit it (no reml/ml keys). Type II SS cross-checked against car::Anova(type=2)"),
  # mixed-model-only cases (no builder, no classical part)
  case("mm_uncorr_slopes", "mm_uncorr_slopes", "y", character(0), character(0), character(0), NA,
       "y ~ x + (x||cluster)", "uncorrelated random intercept and slope (x||cluster); lme4 names the parts cluster, cluster.1",
       factors = "cluster"),
  case("mm_slope_only", "mm_slope_only", "y", character(0), character(0), character(0), NA,
       "y ~ x + (0 + x|g)", "random slope without random intercept (0+x|g)", factors = "g"),
  case("mm_nested_shorthand", "mm_nested_shorthand", "y", character(0), character(0), character(0), NA,
       "y ~ trt + (1|farm/field)", "nested shorthand (1|farm/field) = (1|farm) + (1|farm:field); field labels reused across farms; 6 rows lost",
       factors = c("farm", "field", "trt")),
  case("mm_crossed", "mm_crossed", "diameter", character(0), character(0), character(0), NA,
       "diameter ~ 1 + (1|plate) + (1|sample)", "crossed random effects (Penicillin-like), 8 cells missing",
       factors = c("plate", "sample")),
  case("mm_covariate_factor", "mm_covariate_factor", "y", character(0), character(0), character(0), NA,
       "y ~ x + trt + (1|block)", "numeric covariate and a factor in the fixed part; random blocks",
       factors = c("block", "trt")),
  case("mm_unbal_slopes", "mm_unbal_slopes", "y", character(0), character(0), character(0), NA,
       "y ~ x + (x|cluster)", "correlated random slopes, unbalanced (create_data(balanced=.5), 2-9 rows per cluster); shrinkage",
       factors = "cluster"),
  case("mm_boundary", "mm_boundary", "y", character(0), character(0), character(0), NA,
       "y ~ trt + (1|block)", "boundary fit: block variance estimated as 0 (singular); df tolerance 5e-2",
       factors = c("block", "trt"))
)
