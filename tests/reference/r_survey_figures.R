# Reference figures from R's survey package for impactmodel's design-based tests.
# Run from this folder: Rscript r_survey_figures.R  (writes r_survey_figures.json)
# Data: R survey's own api example data, copied into api/ (see README.md).
suppressMessages(library(survey))
api <- "api"
rd <- function(f) read.csv(file.path(api, f), stringsAsFactors = TRUE)
apistrat <- rd("apistrat.csv"); apiclus1 <- rd("apiclus1.csv"); apiclus2 <- rd("apiclus2.csv")
out <- list(r_version = R.version.string, survey_version = as.character(packageVersion("survey")))
stat <- function(x, deff = FALSE) {
  r <- list(estimate = unname(coef(x)), se = unname(SE(x)))
  if (deff) r$deff <- unname(deff(x))
  ci <- confint(x); r$ci_low <- unname(ci[, 1]); r$ci_high <- unname(ci[, 2])
  r
}
byres <- function(x, deff = FALSE) {
  r <- list(domain = as.character(x[[1]]), estimate = unname(coef(x)), se = unname(SE(x)))
  if (deff) r$deff <- unname(deff(x))
  r
}
dstrat <- svydesign(id = ~1, strata = ~stype, weights = ~pw, data = apistrat, fpc = ~fpc)
dclus1 <- svydesign(id = ~dnum, weights = ~pw, data = apiclus1, fpc = ~fpc)
dclus2 <- svydesign(id = ~dnum + snum, fpc = ~fpc1 + fpc2, data = apiclus2)
dclus1_wr <- svydesign(id = ~dnum, weights = ~pw, data = apiclus1)

out$strat_mean_api00_deff <- stat(svymean(~api00, dstrat, deff = TRUE), deff = TRUE)
out$strat_total_enroll_deff <- stat(svytotal(~enroll, dstrat, deff = TRUE), deff = TRUE)
out$strat_mean_stype <- stat(svymean(~stype, dstrat))
out$strat_mean_two <- stat(svymean(~api00 + api99, dstrat))
out$clus1_by_stype_mean <- byres(svyby(~api00, ~stype, dclus1, svymean, deff = TRUE), deff = TRUE)
out$clus1_by_stype_total <- byres(svyby(~enroll, ~stype, dclus1, svytotal))
x <- svyby(~api00, ~stype + sch.wide, dclus1, svymean)
out$clus1_by_stype_sch_wide <- c(byres(x), list(sch_wide = as.character(x[[2]])))
out$clus1_ratio <- list(estimate = unname(coef(svyratio(~api.stu, ~enroll, dclus1))),
                        se = unname(SE(svyratio(~api.stu, ~enroll, dclus1))))
out$clus1_wr_mean <- stat(svymean(~api00, dclus1_wr, deff = TRUE), deff = TRUE)
out$clus2_mean_api00 <- stat(svymean(~api00, dclus2, deff = TRUE), deff = TRUE)
out$clus2_total_enroll <- stat(svytotal(~enroll, dclus2, na.rm = TRUE))
out$clus2_by_stype <- byres(svyby(~api00, ~stype, dclus2, svymean))
out$degf <- list(strat = degf(dstrat), clus1 = degf(dclus1), clus2 = degf(dclus2))

# strata with a single PSU: keep one high school in apistrat
lone <- apistrat[apistrat$stype != "H" | apistrat$snum == apistrat$snum[apistrat$stype == "H"][1], ]
for (rule in c("certainty", "remove", "adjust", "average")) {
  options(survey.lonely.psu = rule)
  d <- svydesign(id = ~1, strata = ~stype, weights = ~pw, data = lone)
  out[[paste0("lonely_", rule)]] <- stat(svymean(~api00, d))
}
options(survey.lonely.psu = "average")
d_avg <- svydesign(id = ~1, strata = ~stype, weights = ~pw, data = lone)
out$lonely_average_by_stype <- byres(svyby(~api00, ~stype, d_avg, svymean))
out$lonely_average_by_schwide <- byres(svyby(~api00, ~sch.wide, d_avg, svymean))
out$lonely_average_acs_narm <- rstat0 <- list(
  estimate = unname(coef(svymean(~acs.k3, d_avg, na.rm = TRUE))),
  se = unname(SE(svymean(~acs.k3, d_avg, na.rm = TRUE))))
options(survey.lonely.psu = "fail")
d_fail <- svydesign(id = ~1, strata = ~stype, weights = ~pw, data = lone)
# the lonely high school has no acs.k3 value: R's subset leaves the stratum out
out$lonely_fail_acs_narm <- list(
  estimate = unname(coef(svymean(~acs.k3, d_fail, na.rm = TRUE))),
  se = unname(SE(svymean(~acs.k3, d_fail, na.rm = TRUE))))
# a domain variable with missing values: those rows belong to no domain
na_by <- apiclus1; na_by$stype2 <- na_by$stype; na_by$stype2[seq(1, 40, by = 4)] <- NA
out$clus1_by_with_na <- byres(svyby(~api00, ~stype2,
                                    svydesign(id = ~dnum, weights = ~pw, data = na_by,
                                              fpc = ~fpc), svymean))

# weighting: population counts from apipop (R's own population file)
apipop <- rd("apipop.csv")
pop.types <- as.data.frame(table(stype = apipop$stype))
pop.schwide <- as.data.frame(table(sch.wide = apipop$sch.wide))
out$pop_counts <- list(stype = setNames(as.list(pop.types$Freq), as.character(pop.types$stype)),
                       sch_wide = setNames(as.list(pop.schwide$Freq), as.character(pop.schwide$sch.wide)),
                       api99 = sum(apipop$api99))
dclus1p <- postStratify(dclus1, ~stype, pop.types)
out$clus1_poststrat_mean <- stat(svymean(~api00, dclus1p))
out$clus1_poststrat_total <- stat(svytotal(~enroll, dclus1p))
out$clus1_poststrat_by_schwide <- byres(svyby(~api00, ~sch.wide, dclus1p, svymean))
dclus1r <- rake(dclus1, list(~stype, ~sch.wide), list(pop.types, pop.schwide),
                control = list(maxit = 100, epsilon = 1e-12))
out$clus1_rake_mean <- stat(svymean(~api00, dclus1r))
out$clus1_rake_total <- stat(svytotal(~enroll, dclus1r))
dclus1g <- calibrate(dclus1, ~stype + api99,
                     c(`(Intercept)` = sum(pop.types$Freq), stypeH = pop.types$Freq[2],
                       stypeM = pop.types$Freq[3], api99 = sum(apipop$api99)))
out$clus1_greg_mean <- stat(svymean(~api00, dclus1g))
out$clus1_greg_total <- stat(svytotal(~enroll, dclus1g))
out$clus1_greg_glm <- NULL
out$strat_trim_mean <- stat(svymean(~api00, trimWeights(dstrat, upper = 40)))
out$strat_trim_weights_sum <- sum(weights(trimWeights(dstrat, upper = 40)))

# replicate weights from the linearisation designs (JK1: unstratified; JKn: stratified)
rstat <- function(x) list(estimate = unname(coef(x)), se = unname(SE(x)))
jk1 <- as.svrepdesign(dclus1, type = "JK1")
jkn <- as.svrepdesign(dstrat, type = "JKn")
jk1_nofpc <- as.svrepdesign(dclus1_wr, type = "JK1")
out$jk1_mean <- rstat(svymean(~api00, jk1))
out$jk1_total <- rstat(svytotal(~enroll, jk1))
out$jk1_by_stype <- byres(svyby(~api00, ~stype, jk1, svymean))
out$jk1_ratio <- rstat(svyratio(~api.stu, ~enroll, jk1))
out$jk1_nofpc_mean <- rstat(svymean(~api00, jk1_nofpc))
out$jkn_mean <- rstat(svymean(~api00, jkn))
out$jkn_total <- rstat(svytotal(~enroll, jkn))
out$jk1_glm <- list(estimate = unname(coef(svyglm(api00 ~ ell + meals, design = jk1))),
                    se = unname(SE(svyglm(api00 ~ ell + meals, design = jk1))))
jk1_glm_fit <- svyglm(api00 ~ ell + meals + mobility, design = jk1)
out$jk1_glm_t <- list(p_value = unname(summary(jk1_glm_fit)$coefficients[, 4]),
                      ci_low = unname(confint(jk1_glm_fit)[, 1]),
                      ci_high = unname(confint(jk1_glm_fit)[, 2]),
                      df = jk1_glm_fit$df.residual)
out$jk1_by_cname <- byres(svyby(~api00, ~cname, jk1, svymean))
out$jk1_scale <- list(scale = jk1$scale, rscales = unname(jk1$rscales[1]))

# proportional odds: api00 cut at 600 and 700; tight optim control and small Hessian steps
# so the figures are the exact MLE and information (defaults: reltol 1e-8, ndeps 1e-3)
olr_fit <- function(design) {
  m <- svyolr(api_cat ~ meals + ell, design = design,
              control = list(reltol = 1e-15, maxit = 2000, ndeps = rep(1e-6, 4)))
  list(terms = c(names(coef(m))), estimate = unname(coef(m)), se = unname(SE(m)))
}
cut_api <- function(d) { d$api_cat <- cut(d$api00, c(-Inf, 600, 700, Inf),
                                          labels = c("low", "mid", "high")); d }
out$clus1_olr <- olr_fit(svydesign(id = ~dnum, weights = ~pw, data = cut_api(apiclus1),
                                   fpc = ~fpc))
out$strat_olr <- olr_fit(svydesign(id = ~1, strata = ~stype, weights = ~pw,
                                   data = cut_api(apistrat), fpc = ~fpc))

# GLMs converge tightly (R's default epsilon 1e-8 leaves ~1e-7 relative error in the
# coefficients, visible in p-values at 1e-6): the figures are those of the exact MLE.
tight <- glm.control(epsilon = 1e-14, maxit = 100)
glmres <- function(m) {
  s <- summary(m)$coefficients
  ci <- confint(m)
  list(terms = rownames(s), estimate = unname(s[, 1]), se = unname(s[, 2]),
       statistic = unname(s[, 3]), p_value = unname(s[, 4]),
       ci_low = unname(ci[, 1]), ci_high = unname(ci[, 2]), df_residual = m$df.residual)
}
out$strat_glm_gaussian <- glmres(svyglm(api00 ~ ell + meals + mobility, design = dstrat, control = tight))
out$clus1_glm_quasibinomial <- glmres(svyglm(sch.wide ~ ell + meals, design = dclus1,
                                             family = quasibinomial(), control = tight))
out$clus1_glm_binomial <- glmres(suppressWarnings(svyglm(sch.wide ~ ell + meals, design = dclus1,
                                                         family = binomial(), control = tight)))
out$clus2_glm_poisson <- glmres(svyglm(enroll ~ meals + ell, design = dclus2, family = poisson(), control = tight))
out$clus1_glm_factor <- glmres(svyglm(api00 ~ stype + meals, design = dclus1, control = tight))

writeLines(jsonlite::toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "r_survey_figures.json")
