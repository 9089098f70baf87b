"""Replicate-weight variance: jackknife (JK1, JKn), Rao–Wu bootstrap, BRR and Fay's BRR.

Replicate weights are made from a linearisation design (:meth:`SurveyDesign.replicate`)
or read from supplied columns (:class:`ReplicateDesign`). The variance of an estimate is
``scale * sum_r rscales_r (theta_r - centre)^2`` with ``centre`` the mean of the replicate
estimates, or the full-sample estimate when ``mse=True`` (R ``survey``'s ``svrVar``).

* JK1 (unstratified): drop one PSU, multiply the others by ``n / (n - 1)``;
  ``scale = (1 - f)(n - 1) / n``.
* JKn (stratified): drop one PSU of stratum ``h``, multiply the rest of ``h`` by
  ``n_h / (n_h - 1)``; ``rscales = (1 - f_h)(n_h - 1) / n_h``.
* Bootstrap (Rao & Wu 1988, rescaled, ``m_h = n_h - 1``): PSU multipliers
  ``1 - l_h + l_h (n_h / m_h) r_hi`` with ``r_hi`` the times drawn and
  ``l_h = sqrt(m_h (1 - f_h) / (n_h - 1))``; ``scale = 1 / (R - 1)``.
* BRR / Fay (two PSUs per stratum; Hadamard matrix of Sylvester type): half-samples get
  ``2 - rho`` and ``rho`` (BRR: ``rho = 0``); ``scale = 1 / (R (1 - rho)^2)``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
import statsmodels.api as sm
from numpy.typing import NDArray
from scipy import stats
from scipy.linalg import hadamard

from impactmodel.errors import ImpactModelError
from impactmodel.survey.estimation import (
    Domains,
    check_level,
    domain_block,
    domains,
    expand_variables,
    stack_blocks,
)
from impactmodel.survey.formula import model_matrix, parse_formula, response_vector
from impactmodel.survey.regression import FAMILIES, RegressionError
from impactmodel.survey.results import Estimates
from impactmodel.survey.variance import Stage

if TYPE_CHECKING:
    from impactmodel.survey.design import SurveyDesign

REPLICATE_KINDS = ("JK1", "JKn", "bootstrap", "BRR", "Fay")


class ReplicateError(ImpactModelError):
    """Replicate weights cannot be built for this design, or are malformed."""


@dataclass(frozen=True)
class ReplicateWeights:
    """Replicate weights (n x R) with the constants of their variance formula."""

    kind: str
    weights: NDArray[np.float64]
    scale: float
    rscales: NDArray[np.float64]
    mse: bool = False


def _first_stage(design: SurveyDesign) -> tuple[NDArray[np.integer], NDArray[np.integer],
                                                  NDArray[np.float64]]:
    """PSU code, stratum code per row, and the sampling fraction per stratum code."""
    stage: Stage = design.stages[0]
    fraction = stage.sampling_fraction  # 0 without fpc
    return stage.cluster, stage.stratum, fraction


def jackknife(design: SurveyDesign, kind: str) -> ReplicateWeights:
    """JK1 or JKn replicate weights of a linearisation design."""
    psu, stratum, fraction = _first_stage(design)
    w = design.weights
    strata = np.unique(stratum)
    if kind == "JK1" and len(strata) > 1:
        raise ReplicateError("JK1 is for unstratified designs; use 'JKn' for a stratified one")
    columns, rscales = [], []
    for h in strata:
        in_h = stratum == h
        psus = np.unique(psu[in_h])
        n_h = len(psus)
        if n_h < 2:
            if design.lonely_psu == "fail":
                raise ReplicateError(f"stratum {design.stages[0].stratum_labels[h]!r} has one "
                                     "PSU: no jackknife replicate can drop it")
            continue
        for c in psus:
            multiplier = np.ones(len(w))
            multiplier[in_h] = n_h / (n_h - 1)
            multiplier[psu == c] = 0.0
            columns.append(w * multiplier)
            rscales.append((1 - fraction[h]) * (n_h - 1) / n_h)
    if not columns:
        raise ReplicateError("no stratum has two or more PSUs: no jackknife replicate exists")
    weights = np.column_stack(columns)
    if kind == "JK1":
        return ReplicateWeights(kind, weights, float(rscales[0]), np.ones(len(rscales)))
    return ReplicateWeights(kind, weights, 1.0, np.asarray(rscales))


def bootstrap(design: SurveyDesign, replicates: int, seed: int | None) -> ReplicateWeights:
    """Rao–Wu rescaled bootstrap replicate weights (see the module docstring)."""
    if replicates < 2:
        raise ReplicateError(f"replicates must be >= 2, got {replicates}")
    rng = np.random.default_rng(seed)
    psu, stratum, fraction = _first_stage(design)
    w = design.weights
    weights = np.empty((len(w), replicates))
    groups = [(h, np.unique(psu[stratum == h])) for h in np.unique(stratum)]
    for h, psus in groups:
        if len(psus) < 2:
            raise ReplicateError(f"stratum {design.stages[0].stratum_labels[h]!r} has one PSU: "
                                 "the bootstrap needs two or more per stratum")
    for r in range(replicates):
        multiplier = np.ones(len(w))
        for h, psus in groups:
            n_h = len(psus)
            m_h = n_h - 1
            drawn = np.bincount(rng.integers(0, n_h, m_h), minlength=n_h)
            lam = np.sqrt(m_h * (1 - fraction[h]) / (n_h - 1))
            per_psu = 1 - lam + lam * (n_h / m_h) * drawn
            position = np.searchsorted(psus, psu[stratum == h])
            multiplier[stratum == h] = per_psu[position]
        weights[:, r] = w * multiplier
    return ReplicateWeights("bootstrap", weights, 1.0 / (replicates - 1), np.ones(replicates))


def balanced_half_samples(design: SurveyDesign, rho: float) -> ReplicateWeights:
    """BRR (``rho = 0``) or Fay's BRR replicate weights; two PSUs per stratum."""
    if not 0 <= rho < 1:
        raise ReplicateError(f"Fay's rho must be in [0, 1), got {rho}")
    psu, stratum, _ = _first_stage(design)
    strata = np.unique(stratum)
    pairs = []
    for h in strata:
        psus = np.unique(psu[stratum == h])
        if len(psus) != 2:
            raise ReplicateError(f"BRR needs exactly two PSUs per stratum; stratum "
                                 f"{design.stages[0].stratum_labels[h]!r} has {len(psus)}")
        pairs.append(psus)
    order = 4
    while order < len(strata) + 1:
        order *= 2
    signs = hadamard(order)[:, 1:len(strata) + 1]
    w = design.weights
    weights = np.empty((len(w), order))
    for r in range(order):
        multiplier = np.ones(len(w))
        for k, (first, second) in enumerate(pairs):
            up, down = (first, second) if signs[r, k] > 0 else (second, first)
            multiplier[psu == up] = 2 - rho
            multiplier[psu == down] = rho
        weights[:, r] = w * multiplier
    kind = "Fay" if rho > 0 else "BRR"
    return ReplicateWeights(kind, weights, 1.0 / (order * (1 - rho) ** 2), np.ones(order))


class ReplicateDesign:
    """A sample with full-sample and replicate weights.

    Parameters
    ----------
    data : pandas.DataFrame
    weights : str
        Full-sample weight column.
    repweights : sequence of str or str
        Replicate-weight columns, or a regular expression their names fully match
        (e.g. ``"repw[0-9]+"``).
    kind : {"JK1", "JKn", "bootstrap", "BRR", "Fay", "other"}
    scale : float, optional
        Overall constant; defaults by kind: JK1 ``(R-1)/R``, bootstrap ``1/(R-1)``,
        BRR ``1/R``, Fay ``1/(R (1-rho)^2)``; required for ``JKn`` and ``other``.
    rscales : sequence of float, optional
        Per-replicate constants (default 1).
    fay_rho : float
        Fay's coefficient (kind ``"Fay"``).
    mse : bool
        Centre the replicates at the full-sample estimate instead of their mean.
    """

    def __init__(self, data: pd.DataFrame, *, weights: str, repweights: Sequence[str] | str,
                 kind: str, scale: float | None = None,
                 rscales: Sequence[float] | None = None, fay_rho: float = 0.0,
                 mse: bool = False) -> None:
        frame = data.reset_index(drop=True)
        if isinstance(repweights, str):
            try:
                pattern = re.compile(repweights)
            except re.error as exc:
                raise ReplicateError(f"repweights {repweights!r} is not a valid regular "
                                     f"expression: {exc}") from None
            columns = [c for c in frame.columns if pattern.fullmatch(str(c))]
        else:
            columns = list(repweights)
        missing = [c for c in [weights, *columns] if c not in frame.columns]
        if missing or not columns:
            raise ReplicateError(f"replicate-weight columns not found: {missing or repweights}")
        try:
            rep = frame[columns].apply(pd.to_numeric).to_numpy(dtype=float)
            full = pd.to_numeric(frame[weights]).to_numpy(dtype=float)
        except (ValueError, TypeError):
            raise ReplicateError("replicate and full-sample weights must be numbers") from None
        if np.isnan(rep).any() or (rep < 0).any():
            raise ReplicateError("replicate weights must be present and >= 0")
        if not np.all(np.isfinite(full)) or (full <= 0).any():
            raise ReplicateError(f"full-sample weights '{weights}' must be finite and > 0")
        n_rep = rep.shape[1]
        defaults = {"JK1": (n_rep - 1) / n_rep, "bootstrap": 1 / max(n_rep - 1, 1),
                    "BRR": 1 / n_rep, "Fay": 1 / (n_rep * (1 - fay_rho) ** 2)}
        if scale is None:
            if kind not in defaults:
                raise ReplicateError(f"give scale (and rscales) for replicate kind {kind!r}")
            scale = defaults[kind]
        rs = np.ones(n_rep) if rscales is None else np.asarray(rscales, dtype=float)
        if len(rs) != n_rep:
            raise ReplicateError(f"rscales has {len(rs)} values for {n_rep} replicates")
        self._data = frame
        self._weights = full
        self._replicates = ReplicateWeights(kind, rep, float(scale), rs, mse)

    @classmethod
    def from_weights(cls, data: pd.DataFrame, weights: NDArray[np.float64],
                     replicates: ReplicateWeights) -> ReplicateDesign:
        """Build from arrays (what :meth:`SurveyDesign.replicate` uses)."""
        new = cls.__new__(cls)
        new._data = data
        new._weights = weights
        new._replicates = replicates
        return new

    @property
    def data(self) -> pd.DataFrame:
        """The respondent table."""
        return self._data

    @property
    def weights(self) -> NDArray[np.float64]:
        """Full-sample weights (a copy)."""
        return self._weights.copy()

    @property
    def replicate_weights(self) -> ReplicateWeights:
        """The replicate weights and their variance constants."""
        return self._replicates

    def notes(self) -> tuple[str, ...]:
        """One-line description, printed under results."""
        r = self._replicates
        return (f"Replicate design: {r.kind}, {r.weights.shape[1]} replicates, "
                f"scale {r.scale:.6g}{', mse' if r.mse else ''}",)

    def __repr__(self) -> str:
        return self.notes()[0]

    def variance(self, full: NDArray[np.float64], replicated: NDArray[np.float64]
                 ) -> NDArray[np.float64]:
        """Replicate variance of ``full`` (k,) from ``replicated`` (R, k).

        Replicates where an estimate is undefined (a domain emptied by dropping its only
        PSU) are left out of that estimate's variance, as R's ``svrVar`` does.
        """
        r = self._replicates
        ok = np.isfinite(replicated)
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = full if r.mse else (np.where(ok, replicated, 0).sum(axis=0)
                                         / ok.sum(axis=0))
            squares = np.where(ok, (replicated - centre) ** 2, 0.0)
        return r.scale * np.sum(r.rscales[:, None] * squares, axis=0)

    @property
    def degrees_of_freedom(self) -> int:
        """Rank of the replicate weights minus one (R's ``degf`` of a replicate design)."""
        return int(np.linalg.matrix_rank(self._replicates.weights)) - 1

    def _estimate(self, statistic: str, variables: str | Sequence[str],
                  by: str | Sequence[str] | None, na_rm: bool, level: float) -> Estimates:
        check_level(level)
        dom = domains(self, by)
        all_w = np.column_stack([self._weights, self._replicates.weights])
        blocks = []
        for name, y in expand_variables(self, variables):
            use = (dom.code >= 0) & ~np.isnan(y)
            if ((dom.code >= 0) & np.isnan(y)).any() and not na_rm:
                raise ReplicateError(f"column '{name}' has missing values; pass na_rm=True")
            g = sp.csr_matrix((np.ones(use.sum()), (np.flatnonzero(use), dom.code[use])),
                              shape=(len(y), dom.count))
            totals = np.asarray((g.T @ (all_w * np.nan_to_num(y)[:, None])).T)
            sizes = np.asarray((g.T @ all_w).T)
            with np.errstate(invalid="ignore", divide="ignore"):
                values = totals / sizes if statistic == "mean" else totals
            variance = self.variance(values[0], values[1:])
            blocks.append(domain_block(dom, name, values[0], np.sqrt(variance), level,
                                       deff=None, n=np.asarray(g.sum(axis=0)).ravel(),
                                       weighted_n=sizes[0]))
        return Estimates(statistic, stack_blocks(blocks, dom), level, self.notes())

    def mean(self, variables: str | Sequence[str], by: str | Sequence[str] | None = None, *,
             na_rm: bool = False, level: float = 0.95) -> Estimates:
        """Weighted means by domain with replicate SEs (see :meth:`SurveyDesign.mean`)."""
        return self._estimate("mean", variables, by, na_rm, level)

    def total(self, variables: str | Sequence[str], by: str | Sequence[str] | None = None, *,
              na_rm: bool = False, level: float = 0.95) -> Estimates:
        """Weighted totals by domain with replicate SEs."""
        return self._estimate("total", variables, by, na_rm, level)

    def ratio(self, numerator: str, denominator: str, *, level: float = 0.95) -> Estimates:
        """Ratio of weighted totals with a replicate SE."""
        check_level(level)
        all_w = np.column_stack([self._weights, self._replicates.weights])
        pair = [expand_variables(self, name) for name in (numerator, denominator)]
        if any(len(p) != 1 or p[0][0] != name for p, name in
               zip(pair, (numerator, denominator), strict=True)):
            raise ReplicateError("a ratio needs numeric numerator and denominator columns")
        y, x = pair[0][0][1], pair[1][0][1]
        if np.isnan(y).any() or np.isnan(x).any():
            raise ReplicateError(f"missing values in '{numerator}' or '{denominator}'")
        values = (all_w.T @ y) / (all_w.T @ x)
        se = np.sqrt(self.variance(values[:1], values[1:, None]))
        dom = Domains(np.zeros(len(y), dtype=int), pd.DataFrame(index=[0]))
        block = domain_block(dom, f"{numerator}/{denominator}", values[:1], se, level,
                             deff=None, n=np.array([len(y)]), weighted_n=all_w[:, :1].sum(0))
        return Estimates("ratio", stack_blocks([block], dom), level, self.notes())

    def glm(self, formula: str, family: str = "gaussian", *, level: float = 0.95) -> Estimates:
        """Survey-weighted GLM refitted on every replicate; normal-theory intervals."""
        if family not in FAMILIES:
            raise RegressionError(f"unknown family {family!r}; choose one of "
                                  f"{', '.join(FAMILIES)}")
        parsed = parse_formula(formula)
        x, names, complete = model_matrix(parsed, self._data)
        y = response_vector(parsed, self._data, binary=family.endswith("binomial"))
        use = complete & ~np.isnan(y)
        all_w = np.column_stack([self._weights, self._replicates.weights])[use]
        fits = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = None
            for r in range(all_w.shape[1]):
                model = sm.GLM(y[use], x[use], family=FAMILIES[family](), var_weights=all_w[:, r])
                params = np.asarray(model.fit(start_params=start, tol=1e-12, maxiter=200).params)
                start = params if start is None else start
                fits.append(params)
        values = np.asarray(fits)
        se = np.sqrt(self.variance(values[0], values[1:]))
        df = self.degrees_of_freedom + 1 - len(names)  # as R's svyglm on replicate designs
        q = stats.t.ppf(0.5 + level / 2, df) if df > 0 else np.nan
        statistic = values[0] / se
        table = pd.DataFrame({"estimate": values[0], "se": se, "statistic": statistic,
                              "p_value": 2 * stats.t.sf(np.abs(statistic), df) if df > 0
                              else np.nan,
                              "ci_low": values[0] - q * se, "ci_high": values[0] + q * se},
                             index=pd.Index(names, name="term"))
        return Estimates(f"glm ({family})", table, level, self.notes())
