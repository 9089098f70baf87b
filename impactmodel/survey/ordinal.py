"""Survey-weighted proportional-odds (cumulative logit) regression, as R's ``svyolr``.

``logit P(Y <= k) = zeta_k - x'beta`` (R's sign convention; no intercept in ``x``). The
weighted log-likelihood is maximised with scipy's BFGS over ``(beta, theta)`` where
``zeta = cumsum(theta_1, exp(theta_2), ...)`` keeps the cut-points ordered; the
information ``H`` is the derivative of the analytic score in ``(beta, zeta)``, and the
covariance is the design covariance of the influence functions ``U_i H^-1``. Newton
steps on the analytic score polish the BFGS answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import optimize, stats
from scipy.special import expit

from impactmodel.survey.estimation import check_level
from impactmodel.survey.formula import FormulaError, model_matrix, parse_formula
from impactmodel.survey.regression import RegressionError
from impactmodel.survey.results import Estimates

if TYPE_CHECKING:
    from impactmodel.survey.design import SurveyDesign


def _density(z: NDArray[np.float64]) -> NDArray[np.float64]:
    p = expit(z)
    return p * (1 - p)


def _unit_scores(beta: NDArray[np.float64], zeta: NDArray[np.float64], x: NDArray[np.float64],
                 y: NDArray[np.integer]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-unit log-likelihood and its gradient in ``(beta, zeta)``, shape (n, p + q)."""
    bounds = np.concatenate([[-np.inf], zeta, [np.inf]])
    eta = x @ beta
    upper, lower = bounds[y + 1] - eta, bounds[y] - eta
    prob = np.clip(expit(upper) - expit(lower), 1e-300, None)
    f_up, f_low = _density(upper), _density(lower)
    grad_beta = -x * ((f_up - f_low) / prob)[:, None]
    q = len(zeta)
    grad_zeta = np.zeros((len(y), q))
    rows = np.arange(len(y))
    has_up, has_low = y < q, y > 0
    grad_zeta[rows[has_up], y[has_up]] = (f_up / prob)[has_up]
    grad_zeta[rows[has_low], y[has_low] - 1] -= (f_low / prob)[has_low]
    return np.log(prob), np.hstack([grad_beta, grad_zeta])


def survey_olr(design: SurveyDesign, formula: str, *, level: float = 0.95) -> Estimates:
    """Fit a proportional-odds model (see :meth:`SurveyDesign.olr`)."""
    parsed = parse_formula(formula)
    data = design.data
    if parsed.response not in data.columns:
        raise FormulaError(f"the formula names '{parsed.response}', which is not a column")
    response = data[parsed.response]
    if isinstance(response.dtype, pd.CategoricalDtype):
        levels = list(response.cat.categories)
        codes = response.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
    else:
        levels = sorted(response.dropna().unique())
        codes = response.map({v: k for k, v in enumerate(levels)}).to_numpy(dtype=float)
    check_level(level)
    if len(levels) < 3:
        raise RegressionError(f"'{parsed.response}' has {len(levels)} levels; an ordinal model "
                              "needs three or more (use a binomial GLM for two)")
    # R's svyolr: the model matrix is built with an intercept (so factors get a reference
    # level), then the intercept column is dropped in favour of the cut-points
    with_intercept = type(parsed)(parsed.response, parsed.terms, intercept=True)
    x, names, complete = model_matrix(with_intercept, data, usable=~np.isnan(codes))
    x, names = x[:, 1:], names[1:]
    use = complete & ~np.isnan(codes)
    xu, yu = x[use], codes[use].astype(int)
    observed = np.bincount(yu, minlength=len(levels))
    if (observed == 0).any():
        empty = [str(levels[k]) for k in np.flatnonzero(observed == 0)]
        raise RegressionError(f"no respondent in level(s) {empty} of '{parsed.response}'")
    w = design.weights[use]
    p, q = xu.shape[1], len(levels) - 1
    cumulative = np.cumsum(np.bincount(yu, weights=w))[:-1] / w.sum()
    zeta0 = np.log(cumulative / (1 - cumulative))
    start = np.concatenate([np.zeros(p), [zeta0[0]], np.log(np.diff(zeta0))])
    scale = w.mean()

    def unpack(par: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        theta = par[p:]
        return par[:p], np.cumsum(np.concatenate([theta[:1], np.exp(theta[1:])]))

    def negloglik(par: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        beta, zeta = unpack(par)
        ll, grad = _unit_scores(beta, zeta, xu, yu)
        g = (w / scale) @ grad
        # chain rule zeta -> theta: d zeta_j / d theta_1 = 1, d zeta_j / d theta_m = exp(theta_m)
        # for j >= m
        g_theta = np.array([g[p:].sum()] + [g[p + m:].sum() * np.exp(par[p + m])
                                            for m in range(1, q)])
        return -float((w / scale) @ ll), -np.concatenate([g[:p], g_theta])

    fit = optimize.minimize(negloglik, start, jac=True, method="BFGS",
                            options={"gtol": 1e-10, "maxiter": 5000})
    params = np.concatenate(unpack(fit.x))

    def total_score(par: NDArray[np.float64]) -> NDArray[np.float64]:
        return w @ _unit_scores(par[:p], par[p:], xu, yu)[1]

    def information(par: NDArray[np.float64]) -> NDArray[np.float64]:
        step = 1e-6 * np.maximum(1.0, np.abs(par))
        info = np.empty((p + q, p + q))
        for j in range(p + q):
            e = np.zeros(p + q)
            e[j] = step[j]
            info[:, j] = -(total_score(par + e) - total_score(par - e)) / (2 * step[j])
        return (info + info.T) / 2

    # polish BFGS's answer with Newton steps on the analytic score
    for _ in range(10):
        info = information(params)
        if not np.all(np.isfinite(info)) or np.linalg.matrix_rank(info) < p + q:
            raise RegressionError(f"the ordinal model {formula!r} is not identified (a constant "
                                  "or collinear predictor, or complete separation)")
        move = np.linalg.solve(info, total_score(params))
        params = params + move
        if np.max(np.abs(move) / np.maximum(1.0, np.abs(params))) < 1e-12:
            break
    converged = bool(np.max(np.abs(total_score(params))) < 1e-8 * w.sum())
    info = information(params)
    beta, zeta = params[:p], params[p:]
    _, unit = _unit_scores(beta, zeta, xu, yu)
    scores = unit * w[:, None]
    influence = np.zeros((len(design.data), p + q))
    influence[use] = scores @ np.linalg.inv(info)
    se = np.sqrt(design.covariance(influence, diagonal=True))
    df = design.degrees_of_freedom_among(use) - p
    statistic = params / se
    q_t = stats.t.ppf(0.5 + level / 2, df) if df > 0 else np.nan
    labels = [f"{levels[k]}|{levels[k + 1]}" for k in range(q)]
    table = pd.DataFrame({"estimate": params, "se": se, "statistic": statistic,
                          "p_value": 2 * stats.t.sf(np.abs(statistic), df) if df > 0
                          else np.nan,
                          "ci_low": params - q_t * se, "ci_high": params + q_t * se},
                         index=pd.Index([*names, *labels], name="term"))
    notes = (*design.notes(), f"proportional odds, logit P(Y <= k) = zeta_k - x'beta; "
             f"{int(use.sum())} respondents used, design df {df}")
    if not converged or np.any(np.diff(zeta) <= 0):
        notes = (*notes, f"warning: the fit did not converge ({fit.message})")
    return Estimates("ordinal logit", table, level, notes)
