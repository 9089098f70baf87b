"""Survey-weighted GLMs: statsmodels fits the point estimates, the design gives the SEs.

The sandwich of R ``survey``'s ``svyglm`` (Binder 1983): with estimating-function
contributions ``U_i = w_i x_i (y_i - mu_i) / (V(mu_i) g'(mu_i))`` and
``A = sum_i w_i x_i x_i' / (V(mu_i) g'(mu_i)^2)``, the covariance is the design covariance
of the totals of ``U_i A^-1``. Tests use t quantiles on ``degf + 1 - p`` degrees of freedom.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from impactmodel.errors import ImpactModelError
from impactmodel.survey.estimation import check_level
from impactmodel.survey.formula import model_matrix, parse_formula, response_vector
from impactmodel.survey.results import Estimates

if TYPE_CHECKING:
    from impactmodel.survey.design import SurveyDesign

FAMILIES = {
    "gaussian": sm.families.Gaussian,
    "binomial": sm.families.Binomial,
    "quasibinomial": sm.families.Binomial,
    "poisson": sm.families.Poisson,
    "quasipoisson": sm.families.Poisson,
}


class RegressionError(ImpactModelError):
    """The model cannot be fitted as specified."""


def check_response(y: np.ndarray, family: str, name: str) -> None:
    """Refuse responses outside the family's support (as R's glm does)."""
    if family.endswith("binomial") and ((y < 0) | (y > 1)).any():
        raise RegressionError(f"a {family} response must lie in [0, 1]; '{name}' has values "
                              f"{sorted(set(y[(y < 0) | (y > 1)]))[:5]}")
    if family.endswith("poisson") and (y < 0).any():
        raise RegressionError(f"a {family} response must be >= 0; '{name}' has negative values")


def survey_glm(design: SurveyDesign, formula: str, family: str = "gaussian", *,
               level: float = 0.95) -> Estimates:
    """Fit a survey-weighted GLM (see :meth:`SurveyDesign.glm`)."""
    if family not in FAMILIES:
        raise RegressionError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    check_level(level)
    parsed = parse_formula(formula)
    y = response_vector(parsed, design.data, binary=family.endswith("binomial"))
    x, names, complete = model_matrix(parsed, design.data, usable=~np.isnan(y))
    use = complete & ~np.isnan(y)
    if not names:
        raise RegressionError(f"the formula {formula!r} has no term and no intercept")
    if not use.any():
        raise RegressionError(f"no respondent has every variable of {formula!r}")
    check_response(y[use], family, parsed.response)
    w = design.weights
    xu, yu, wu = x[use], y[use], w[use]
    if np.linalg.matrix_rank(xu) < xu.shape[1]:
        raise RegressionError(f"the model matrix of {formula!r} is rank deficient "
                              "(collinear terms or an empty category)")
    fam = FAMILIES[family]()
    with warnings.catch_warnings():
        # non-integer weights in binomial / poisson are expected with survey weights
        warnings.simplefilter("ignore")
        fit = sm.GLM(yu, xu, family=fam, var_weights=wu).fit(tol=1e-12, maxiter=200)
    beta = np.asarray(fit.params)
    mu = fam.link.inverse(xu @ beta)
    deta = fam.link.deriv(mu)
    var_mu = fam.variance(mu)
    working_w = wu / (var_mu * deta**2)
    a_inv = np.linalg.inv((xu * working_w[:, None]).T @ xu)
    scores = np.zeros_like(x)
    scores[use] = (xu * (wu * (yu - mu) / (var_mu * deta))[:, None]) @ a_inv
    cov = design.covariance(scores)
    se = np.sqrt(np.diag(cov))
    df = design.degrees_of_freedom_among(use) + 1 - len(beta)
    statistic = beta / se
    if df > 0:
        p_value = 2 * stats.t.sf(np.abs(statistic), df)
        q = stats.t.ppf(0.5 + level / 2, df)
    else:
        p_value = np.full_like(beta, np.nan)
        q = np.nan
    table = pd.DataFrame({"estimate": beta, "se": se, "statistic": statistic,
                          "p_value": p_value, "ci_low": beta - q * se, "ci_high": beta + q * se},
                         index=pd.Index(names, name="term"))
    notes = (*design.notes(), f"{family} GLM, {int(use.sum())} respondents used, "
             f"residual design df {df}")
    return Estimates(f"glm ({family})", table, level, notes)
