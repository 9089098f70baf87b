"""Weight adjustments and the variance that accounts for them (as R ``survey`` does).

* Post-stratification and linear (GREG) calibration: new weights ``w g`` with
  ``g = 1 + x' (X'WX)^-1 (T - t_hat)`` (Deville & Särndal 1992); linearised scores are
  replaced by their residuals from the weighted regression on the calibration variables
  (``qr.resid`` in R's ``svyrecvar``). Post-stratification is the case of cell dummies.
* Raking: weights from iterative proportional fitting; scores adjusted by R's rule
  (ten rounds of removing, per margin, the category means of ``score / weight``).
* Trimming (R's ``trimWeights``): weights capped at bounds, the trimmed amount shared
  equally among the untrimmed weights; the variance treats the result as design weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from impactmodel.errors import ImpactModelError
from impactmodel.vocabulary import closest
from impactmodel.weighting.raking import RakingError, rake

Targets = Mapping[str, Mapping[object, float] | float]


class CalibrationError(ImpactModelError):
    """Calibration targets that cannot be met or do not fit the sample."""


@dataclass(frozen=True)
class RegressionAdjustment:
    """GREG / post-stratification: residualise scores on ``basis`` (orthonormal columns)."""

    basis: NDArray[np.float64]  # Q of the QR of X * sqrt(w0), shape (n, p)
    scale: NDArray[np.float64]  # g * sqrt(w0), shape (n,)

    def apply(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return the calibrated scores."""
        u = scores / self.scale[:, None]
        return (u - self.basis @ (self.basis.T @ u)) * self.scale[:, None]


@dataclass(frozen=True)
class RakingAdjustment:
    """Raking: per margin, category codes and the weights after that margin's step."""

    codes: tuple[NDArray[np.integer], ...]
    weights: tuple[NDArray[np.float64], ...]
    rounds: int = 10

    def apply(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return the calibrated scores (R's ten rounds of margin-mean removal)."""
        x = scores.copy()
        for _ in range(self.rounds):
            for codes, w in zip(self.codes, self.weights, strict=True):
                e = x / w[:, None]
                k = int(codes.max()) + 1
                sums = np.zeros((k, x.shape[1]))
                np.add.at(sums, codes, e)
                means = sums / np.bincount(codes, minlength=k)[:, None]
                x = x - w[:, None] * means[codes]
        return x


Adjustment = RegressionAdjustment | RakingAdjustment


def adjust_scores(scores: NDArray[np.float64] | sp.spmatrix,
                  adjustments: tuple[Adjustment, ...]) -> NDArray[np.float64] | sp.spmatrix:
    """Apply every calibration adjustment, in the order the weights were adjusted."""
    if not adjustments:
        return scores
    dense = scores.toarray() if isinstance(scores, sp.spmatrix | sp.sparray) else np.asarray(scores)
    for adjustment in adjustments:
        dense = adjustment.apply(dense)
    return dense


def _total(value: object, where: str) -> float:
    """Return a population total, refusing anything but a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise CalibrationError(f"the target for {where} must be a number, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise CalibrationError(f"the target for {where} must be finite and >= 0, got {value!r}")
    return float(value)


def _level_codes(series: pd.Series, totals: Mapping[object, float], name: str
                 ) -> tuple[NDArray[np.integer], NDArray[np.float64]]:
    """Codes of each row's level in ``totals`` (keys matched as text) and the totals."""
    if not isinstance(totals, Mapping) or not totals:
        raise CalibrationError(f"the targets of '{name}' must map each level to its population "
                               f"total, e.g. {{'A': 120, 'B': 80}}; got {totals!r}")
    if series.isna().any():
        raise CalibrationError(f"'{name}' is missing for {int(series.isna().sum())} "
                               "respondents; a calibration variable must be known for everyone")
    level_totals = [_total(v, f"'{name}' = {k!r}") for k, v in totals.items()]
    keys = [str(k) for k in totals]
    values = series.astype(str).to_numpy()
    present = set(values)
    unknown = sorted(present - set(keys))
    if unknown:
        guess = closest(unknown[0], keys)
        raise CalibrationError(
            f"'{name}' has levels {unknown[:5]} in the sample but no target for them; targets "
            f"are given for {keys}" + (f" (did you mean '{guess}'?)" if guess else ""))
    absent = [k for k, t in zip(keys, totals.values(), strict=True)
              if k not in present and t > 0]
    if absent:
        raise CalibrationError(f"calibration target for level(s) {absent} of '{name}', which "
                               "no respondent has: collapse them with a neighbouring level")
    codes = pd.Categorical(values, categories=keys).codes.astype(int)
    return codes, np.asarray(level_totals, dtype=float)


def calibration_matrix(data: pd.DataFrame, targets: Targets
                       ) -> tuple[NDArray[np.float64], NDArray[np.float64], list[str]]:
    """Model matrix and population totals of ``targets``.

    ``{"stype": {"E": 4421, ...}}`` gives one indicator column per level;
    ``{"api99": 3914069}`` gives the numeric column and its total.
    """
    if not targets:
        raise CalibrationError("no calibration target given")
    columns, totals, names = [], [], []
    for name, target in targets.items():
        if name not in data.columns:
            guess = closest(name, [str(c) for c in data.columns])
            raise CalibrationError(f"no column '{name}' for the calibration target"
                                   + (f"; did you mean '{guess}'?" if guess else ""))
        if isinstance(target, Mapping):
            codes, level_totals = _level_codes(data[name], target, name)
            for k, key in enumerate(target):
                columns.append((codes == k).astype(float))
                totals.append(level_totals[k])
                names.append(f"{name}{key}")
        else:
            values = pd.to_numeric(data[name], errors="coerce").to_numpy(dtype=float)
            if np.isnan(values).any():
                raise CalibrationError(f"'{name}' has missing or non-numeric values; a "
                                       "calibration variable must be known for everyone")
            columns.append(values)
            totals.append(_total(target, f"'{name}'"))
            names.append(name)
    return np.column_stack(columns), np.asarray(totals), names


def linear_calibration(weights: NDArray[np.float64], x: NDArray[np.float64],
                       totals: NDArray[np.float64]) -> tuple[NDArray[np.float64],
                                                             RegressionAdjustment]:
    """GREG weights meeting ``totals`` exactly, and the matching variance adjustment."""
    sqrt_w = np.sqrt(weights)
    xw = x * sqrt_w[:, None]
    if np.linalg.matrix_rank(xw) < x.shape[1]:
        raise CalibrationError("calibration variables are collinear (e.g. the totals of two "
                               "variables' levels both include everyone plus an intercept)")
    t_hat = weights @ x
    lam = np.linalg.solve(xw.T @ xw, totals - t_hat)
    g = 1.0 + x @ lam
    q, _ = np.linalg.qr(xw)
    return weights * g, RegressionAdjustment(q, g * sqrt_w)


def raking_calibration(weights: NDArray[np.float64], data: pd.DataFrame,
                       margins: Mapping[str, Mapping[object, float]], max_iter: int, tol: float
                       ) -> tuple[NDArray[np.float64], RakingAdjustment]:
    """Rake to ``margins`` with :func:`impactmodel.weighting.rake`."""
    if not margins:
        raise CalibrationError("no raking margin given")
    coded = []
    for name, totals in margins.items():
        if name not in data.columns:
            guess = closest(name, [str(c) for c in data.columns])
            raise CalibrationError(f"no column '{name}' for the raking margin"
                                   + (f"; did you mean '{guess}'?" if guess else ""))
        coded.append(_level_codes(data[name], totals, name))
    sums = {round(float(t.sum()), 6) for _, t in coded}
    if len(sums) > 1:
        raise CalibrationError(f"raking margins have different totals: {sorted(sums)}")
    try:
        raked = rake(weights, coded, max_iter=max_iter, tol=tol)
    except RakingError as exc:
        raise CalibrationError(f"raking failed: {exc}") from None
    codes = tuple(c for c, _ in coded)
    return raked, RakingAdjustment(codes, tuple(raked for _ in codes))


def trimmed(weights: NDArray[np.float64], lower: float, upper: float, strict: bool
            ) -> NDArray[np.float64]:
    """R's ``trimWeights``: cap, then share the trimmed amount equally among the others."""
    w = weights.copy()
    while True:
        outside = (w < lower) | (w > upper)
        if not outside.any():
            return w
        if outside.all():
            raise CalibrationError(f"every weight lies outside [{lower}, {upper}]")
        capped = np.clip(w, lower, upper)
        capped[~outside] += (w - capped).sum() / (~outside).sum()
        w = capped
        if not strict:
            return w
