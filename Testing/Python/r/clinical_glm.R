# Reference numbers for her2radiomics.clinical (test_clinical.py): univariate and multivariate logistic
# regression with R's glm on the fixed table clinical_table.csv (made once with numpy, seed 15).
# Run:  Rscript Testing/Python/r/clinical_glm.R Testing/Python/r/clinical_table.csv > Testing/Python/r/clinical_glm.expected.txt
# Output: one line per term: model term coef se z p OR lo hi (Wald CI: exp(confint.default(fit))).
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], colClasses = c(case_id = "character", stage = "character"))
d$stage <- factor(d$stage, levels = c("1", "2", "3"))   # reference level "1"
# glm's default stop (relative deviance change 1e-8) leaves the SEs ~1e-5 from the maximum-likelihood values
# (its weights are one iteration old); a tight epsilon gives the converged MLE both sides compute
ctl <- glm.control(epsilon = 1e-14, maxit = 100)
show <- function(model, fit) {
  s <- summary(fit)$coefficients
  ci <- exp(confint.default(fit))
  for (t in rownames(s)) {
    cat(model, t, sprintf("%.10g", c(s[t, 1], s[t, 2], s[t, 3], s[t, 4], exp(s[t, 1]), ci[t, 1], ci[t, 2])), "\n")
  }
}
show("uni_age", glm(y ~ age, family = binomial, data = d, control = ctl))
show("uni_stage", glm(y ~ stage, family = binomial, data = d, control = ctl))
show("uni_pr", glm(y ~ pr, family = binomial, data = d, control = ctl))
show("multi", glm(y ~ age + stage + pr, family = binomial, data = d, control = ctl))
