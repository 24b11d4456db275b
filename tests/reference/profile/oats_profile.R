# Frozen exact profile intervals (tests/mixed/test_profile.py) for the oats split plot
#   yield ~ nitro*variety + (1|block/variety)
# with the exact-root profile functions of ../vcinfer/vcinfer.R (lme4's own deviance function, every
# other parameter re-minimised by bobyqa, uniroot to 1e-12): REML and ML variance parameters on the
# sdcor scale, fixed coefficients on the ML deviance.
#
# Run from this folder:  LC_ALL=C Rscript oats_profile.R   (R 4.2, lme4 1.1-31; writes oats_profile.json)

exprs <- parse("../vcinfer/vcinfer.R")
owd <- setwd("../vcinfer")
for (e in exprs) {   # the libraries, constants and functions, not the cases
  if (is.call(e) && identical(e[[1]], as.name("<-")) && identical(e[[2]], as.name("profile_cases"))) break
  eval(e, globalenv())
}
setwd(owd)
d <- read.csv("../../../vcomp/datasets/data/yates_oats.csv", stringsAsFactors = TRUE)
d$nitro <- factor(d$nitro)
f <- yield ~ nitro * variety + (1 | block/variety)
out <- list(case = "oats", generated_by = "tests/reference/profile/oats_profile.R", level = LEVEL,
            lmer = "yield ~ nitro*variety + (1|block/variety)",
            confint = list(profile = list(reml = list(varcomp = profile_vc(f, d, TRUE)),
                                          ml = list(varcomp = profile_vc(f, d, FALSE)),
                                          fixed = profile_fixed(f, d))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE), "oats_profile.json")
