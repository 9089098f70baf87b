"""Means, totals, proportions and ratios, overall and by domain, with linearised SEs.

Each table also gives Kish's design effect of unequal weighting within the domain.
Domains use the full design (scores are zero outside the domain, as R's ``svyby`` on a
``survey.design2`` subset), never subset-then-estimate. Design effects follow R's
``deff=TRUE``: the design variance over the variance of simple random sampling without
replacement of the same size, ``s^2 (N_d - n_d) / (N_d n_d)`` for a mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy import stats

from impactmodel.errors import ImpactModelError
from impactmodel.survey.results import Estimates
from impactmodel.vocabulary import closest

if TYPE_CHECKING:
    from impactmodel.survey.design import SurveyDesign


class HasData(Protocol):
    """Anything holding a respondent table (linearisation or replicate design)."""

    @property
    def data(self) -> pd.DataFrame:
        """The respondent table."""
        ...


class EstimationError(ImpactModelError):
    """An estimate cannot be computed from the given variables."""


@dataclass(frozen=True)
class Domains:
    """Each row's domain code (-1 outside every domain) and the domains' labels."""

    code: NDArray[np.integer]
    labels: pd.DataFrame  # one row per domain code, one column per `by` variable

    @property
    def count(self) -> int:
        """Number of domains."""
        return len(self.labels)


def column(design: HasData, name: str) -> pd.Series:
    """Return a data column, or raise naming the closest column."""
    if name not in design.data.columns:
        guess = closest(name, [str(c) for c in design.data.columns])
        raise EstimationError(f"no column '{name}' in the design's data"
                              + (f"; did you mean '{guess}'?" if guess else ""))
    return design.data[name]


def domains(design: HasData, by: str | Sequence[str] | None) -> Domains:
    """Cross the ``by`` columns into domain codes (all rows in one domain when ``None``)."""
    names = [by] if isinstance(by, str) else list(by or [])
    n = len(design.data)
    if not names:
        return Domains(np.zeros(n, dtype=int), pd.DataFrame(index=[0]))
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise EstimationError(f"domain variables named more than once: {repeated}")
    keys = pd.DataFrame({name: column(design, name) for name in names})
    grouped = keys.groupby(names, sort=True, observed=True, dropna=True)
    # rows with a missing domain value belong to no domain (R drops them)
    code = grouped.ngroup().fillna(-1).to_numpy().astype(int)
    code = np.where(keys.isna().any(axis=1).to_numpy(), -1, code)
    labels = grouped.size().reset_index()[names]
    return Domains(code, labels)


def _numeric(design: HasData, name: str) -> tuple[str, NDArray[np.float64]] | None:
    series = column(design, name)
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return name, series.to_numpy(dtype=float, na_value=np.nan)
    return None


def expand_variables(design: HasData, variables: str | Sequence[str]
                     ) -> list[tuple[str, NDArray[np.float64]]]:
    """Numeric columns as they are; categorical ones as one 0/1 column per level (R's naming)."""
    names = [variables] if isinstance(variables, str) else list(variables)
    if not names:
        raise EstimationError("give at least one variable to estimate")
    out = []
    for name in names:
        numeric = _numeric(design, name)
        if numeric is not None:
            out.append(numeric)
            continue
        series = column(design, name)
        categorical = series.astype("category")
        missing = series.isna().to_numpy()
        if not len(categorical.cat.categories):
            raise EstimationError(f"column '{name}' has no value to estimate")
        for level in categorical.cat.categories:
            values = (categorical == level).to_numpy(dtype=float)
            values[missing] = np.nan
            out.append((f"{name}{level}", values))
    return out


def check_level(level: float) -> None:
    """Refuse a confidence level outside (0, 1)."""
    if not isinstance(level, int | float) or not 0 < level < 1:
        raise EstimationError(f"level must be in (0, 1), got {level!r}")


def _scores_matrix(rows: NDArray[np.int_], cols: NDArray[np.int_], values: NDArray[np.float64],
                   n: int, k: int) -> sp.csr_matrix:
    return sp.csr_matrix((values, (rows, cols)), shape=(n, k))


def linear_estimates(design: SurveyDesign, statistic: Literal["mean", "total"],
                     variables: str | Sequence[str], by: str | Sequence[str] | None = None,
                     *, na_rm: bool = False, level: float = 0.95) -> Estimates:
    """Estimate means or totals of ``variables`` in each domain of ``by``.

    Parameters
    ----------
    design : SurveyDesign
    statistic : {"mean", "total"}
    variables : str or sequence of str
        Numeric columns, or categorical ones (estimated per level: proportions / counts).
    by : str or sequence of str, optional
        Domain variables; their crossing defines the domains.
    na_rm : bool
        Drop respondents with a missing value from the estimate (they stay in the design).
    level : float
        Confidence level of the normal-theory intervals (as R's ``confint``).

    Returns
    -------
    Estimates
    """
    check_level(level)
    dom = domains(design, by)
    w = design.weights
    n = len(w)
    blocks = []
    for name, y in expand_variables(design, variables):
        missing = np.isnan(y)
        in_domain = dom.code >= 0
        if (missing & in_domain).any() and not na_rm:
            rows = np.flatnonzero(missing & in_domain)[:5] + 1
            raise EstimationError(
                f"column '{name}' has {int((missing & in_domain).sum())} missing values "
                f"(rows {', '.join(map(str, rows))}, ...); pass na_rm=True to leave them out")
        use = in_domain & ~missing
        g = np.where(use, dom.code, 0)
        wy = np.where(use, w * np.nan_to_num(y), 0.0)
        ww = np.where(use, w, 0.0)
        weighted_n = np.bincount(g, weights=ww, minlength=dom.count)
        count = np.bincount(g, weights=use.astype(float), minlength=dom.count)
        total = np.bincount(g, weights=wy, minlength=dom.count)
        idx = np.flatnonzero(use)
        yv = y[idx]
        if statistic == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                estimate = total / weighted_n
            resid = yv - estimate[g[idx]]
            values = w[idx] * resid / weighted_n[g[idx]]
        else:
            estimate = total
            resid = yv - (total / np.where(weighted_n > 0, weighted_n, 1))[g[idx]]
            values = w[idx] * yv
        scores = _scores_matrix(idx, g[idx], values, n, dom.count)
        variance = design.covariance(scores, diagonal=True)
        # variance of simple random sampling without replacement, as R's deff=TRUE
        with np.errstate(invalid="ignore", divide="ignore"):
            s2 = (np.bincount(g[idx], weights=w[idx] * resid**2, minlength=dom.count)
                  / weighted_n * count / (count - 1))
            srs = s2 * (weighted_n - count) / (weighted_n * count)
            if statistic == "total":
                srs = srs * weighted_n**2
            deff = variance / srs
        sum_w2 = np.bincount(g[idx], weights=w[idx] ** 2, minlength=dom.count)
        with np.errstate(invalid="ignore", divide="ignore"):
            kish = count * sum_w2 / weighted_n**2
        blocks.append(domain_block(dom, name, estimate, np.sqrt(variance), level, deff=deff,
                                   n=count, weighted_n=weighted_n, deff_kish=kish))
    return Estimates(statistic, stack_blocks(blocks, dom), level, design.notes())


def domain_block(dom: Domains, name: str, estimate: NDArray[np.float64],
                 se: NDArray[np.float64], level: float, *, deff: NDArray[np.float64] | None,
                 n: NDArray[np.float64], weighted_n: NDArray[np.float64],
                 deff_kish: NDArray[np.float64] | None = None) -> pd.DataFrame:
    """One variable's rows of an estimate table: estimate, se, normal CI, deff, n.

    ``deff`` is the design-based design effect (R's ``deff=TRUE``); ``deff_kish`` the
    design effect of unequal weighting alone, ``n sum(w^2) / sum(w)^2`` (Kish 1965).
    """
    z = stats.norm.ppf(0.5 + level / 2)
    block = dom.labels.copy()
    block.insert(0, "variable", name)
    block["estimate"] = estimate
    block["se"] = se
    block["ci_low"] = estimate - z * se
    block["ci_high"] = estimate + z * se
    block["deff"] = np.nan if deff is None else deff
    block["deff_kish"] = np.nan if deff_kish is None else deff_kish
    block["n"] = np.asarray(n).astype(int)
    block["weighted_n"] = weighted_n
    return block


def stack_blocks(blocks: list[pd.DataFrame], dom: Domains) -> pd.DataFrame:
    """Index the table by variable (when several or no domains) and the domain columns."""
    table = pd.concat(blocks, ignore_index=True)
    index_cols = (["variable"] if table["variable"].nunique() > 1 or dom.labels.empty
                  else []) + list(dom.labels.columns)
    table = table.set_index(index_cols or ["variable"])
    if "variable" in table.columns:
        table = table.drop(columns="variable")
    return table


def ratio_estimates(design: SurveyDesign, numerator: str, denominator: str,
                    by: str | Sequence[str] | None = None, *, na_rm: bool = False,
                    level: float = 0.95) -> Estimates:
    """Estimate the ratio of totals ``sum(w y) / sum(w x)`` in each domain.

    Parameters
    ----------
    design : SurveyDesign
    numerator, denominator : str
        Numeric columns.
    by : str or sequence of str, optional
    na_rm : bool
        Leave out respondents missing either variable (they stay in the design).
    level : float

    Returns
    -------
    Estimates
    """
    check_level(level)
    dom = domains(design, by)
    num, den = _numeric(design, numerator), _numeric(design, denominator)
    if num is None or den is None:
        raise EstimationError("a ratio needs numeric numerator and denominator columns")
    y, x = num[1], den[1]
    use = (dom.code >= 0) & ~np.isnan(y) & ~np.isnan(x)
    if (~use & (dom.code >= 0)).any() and not na_rm:
        raise EstimationError(f"missing values in '{numerator}' or '{denominator}'; pass "
                              "na_rm=True to leave them out")
    w, g = design.weights, np.where(use, dom.code, 0)
    ty = np.bincount(g, weights=np.where(use, w * y, 0), minlength=dom.count)
    tx = np.bincount(g, weights=np.where(use, w * x, 0), minlength=dom.count)
    estimate = ty / tx
    idx = np.flatnonzero(use)
    values = w[idx] * (y[idx] - estimate[g[idx]] * x[idx]) / tx[g[idx]]
    scores = _scores_matrix(idx, g[idx], values, len(w), dom.count)
    se = np.sqrt(design.covariance(scores, diagonal=True))
    z = stats.norm.ppf(0.5 + level / 2)
    table = dom.labels.copy()
    table["estimate"], table["se"] = estimate, se
    table["ci_low"], table["ci_high"] = estimate - z * se, estimate + z * se
    table["n"] = np.bincount(g[idx], minlength=dom.count)
    if dom.labels.empty:
        table.index = pd.Index([f"{numerator}/{denominator}"], name="ratio")
    else:
        table = table.set_index(list(dom.labels.columns))
    return Estimates("ratio", table, level, design.notes())
