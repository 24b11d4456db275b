# Copy of /work/shared/oracle/cases.R (the visible oracle cases), used by oracle_type2.R.
# Reference cases: dataset, response, design (as a vcomp builder call and as
# fixed/random term lists in model order), and the lme4 formula of the same model.
# set = "dev" goes to shared/refdata for the developers; "hidden" stays here.
case <- function(name, csv, response, terms, fixed, random, builder, lmer, set, type3 = TRUE) {
  list(name = name, csv = csv, response = response, terms = terms, fixed = fixed, random = random,
       builder = builder, lmer = lmer, set = set, type3 = type3)
}
# terms are listed in the textbook (stratum) order used for type I sums of squares
CASES <- list(
  case("yates_oats", "yates_oats", "yield", c("block", "variety", "block:variety", "nitro", "variety:nitro"),
       c("variety", "nitro", "variety:nitro"), c("block", "block:variety"),
       'vcomp.SplitPlot(whole="variety", sub="nitro", block="block")',
       "yield ~ variety*nitro + (1|block) + (1|block:variety)", "dev"),
  case("stroup_splitplot", "stroup_splitplot", "y", c("rep", "a", "rep:a", "b", "a:b"),
       c("a", "b", "a:b"), c("rep", "rep:a"),
       'vcomp.SplitPlot(whole="a", sub="b", block="rep")',
       "y ~ a*b + (1|rep) + (1|rep:a)", "dev"),
  case("gomez_splitsplit", "gomez_splitsplit", "yield", c("rep", "nitro", "rep:nitro", "management", "nitro:management", "rep:nitro:management", "gen", "nitro:gen", "management:gen", "nitro:management:gen"),
       c("nitro", "management", "nitro:management", "gen", "nitro:gen", "management:gen", "nitro:management:gen"),
       c("rep", "rep:nitro", "rep:nitro:management"),
       'vcomp.SplitSplitPlot(whole="nitro", sub="management", subsub="gen", block="rep")',
       "yield ~ nitro*management*gen + (1|rep) + (1|rep:nitro) + (1|rep:nitro:management)", "dev"),
  case("ergostool_rcbd", "ergostool_rcbd", "effort", c("subject", "type"),
       c("type"), c("subject"),
       'vcomp.RCBD(treatment="type", block="subject")',
       "effort ~ type + (1|subject)", "dev"),
  case("dyestuff", "dyestuff", "yield", c("batch"),
       character(0), c("batch"),
       'vcomp.Nested(["batch"])',
       "yield ~ 1 + (1|batch)", "dev"),
  case("pastes_nested", "pastes_nested", "strength", c("batch", "batch:cask"),
       character(0), c("batch", "batch:cask"),
       'vcomp.Nested(["batch", "cask"])',
       "strength ~ 1 + (1|batch) + (1|batch:cask)", "dev"),
  case("machines_gauge", "machines_gauge", "score", c("worker", "machine", "worker:machine"),
       c("machine"), c("worker", "worker:machine"),
       'vcomp.Design(fixed="machine", random=["worker", "worker:machine"])',
       "score ~ machine + (1|worker) + (1|worker:machine)", "dev"),
  case("john_alpha", "john_alpha", "yield", c("rep", "rep:block", "gen"),
       c("rep", "gen"), c("rep:block"),
       'vcomp.Design(fixed="rep + gen", random=["rep:block"])',
       "yield ~ rep + gen + (1|rep:block)", "dev"),
  case("sas_varcomp1", "sas_varcomp1", "y", c("a", "b", "a:b"),
       c("a"), c("b", "a:b"),
       'vcomp.Design(fixed="a", random=["b", "a:b"])',
       "y ~ a + (1|b) + (1|a:b)", "dev"),
  case("shrink_base", "shrink_base", "y", character(0), character(0), character(0),
       NA, "y ~ x + (x|cluster)", "dev"),
  case("shrink_few_obs", "shrink_few_obs", "y", character(0), character(0), character(0),
       NA, "y ~ x + (x|cluster)", "dev"),
  case("sim_splitplot_missing_whole", "sim_splitplot_missing_whole", "y", c("block", "A", "block:A", "B", "A:B"),
       c("A", "B", "A:B"), c("block", "block:A"),
       'vcomp.SplitPlot(whole="A", sub="B", block="block")',
       "y ~ A*B + (1|block) + (1|block:A)", "dev")
)
