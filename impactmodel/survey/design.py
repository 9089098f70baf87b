"""``SurveyDesign``: a respondent table with its sampling design, validated once.

The API follows R ``survey``'s ``svydesign`` (keyword-only ``ids``, ``strata``,
``weights``, ``probs``, ``fpc``, ``lonely_psu``, ``nest``); estimation methods return
:class:`~impactmodel.survey.results.Estimates`. A design is immutable: methods that change
weights return a new design.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from impactmodel.errors import Problem, ValidationError
from impactmodel.survey import calibration, estimation, ordinal, regression
from impactmodel.survey import replicates as replication
from impactmodel.survey.calibration import Adjustment, CalibrationError, Targets
from impactmodel.survey.results import Estimates
from impactmodel.survey.structure import SOURCE, as_columns, build_stages, check_columns
from impactmodel.survey.variance import LONELY_PSU_RULES, LonelyPSU, Stage, design_covariance

Columns = str | Sequence[str] | None


class SurveyDesign:
    """A survey sample and its design.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per respondent.
    ids : str or sequence of str, optional
        Cluster column per sampling stage; ``None`` or ``"1"`` for an element sample.
    strata : str or sequence of str, optional
        Stratum column of the first stage, or one per stage.
    weights : str, optional
        Sampling weight column (mutually exclusive with ``probs``).
    probs : str, optional
        Inclusion probability column.
    fpc : str or sequence of str, optional
        Finite population correction per stage: population count of clusters in the
        stratum (> 1) or sampling fraction (<= 1); every stage or none. Without weights
        or probabilities, the weights follow from the fpc (population / sample size).
    lonely_psu : {"fail", "certainty", "remove", "adjust", "average"}
        Rule for a stratum with a single sampled PSU, as R's ``survey.lonely.psu``.
    nest : bool
        PSU labels restart within strata (R's ``nest=TRUE``).

    Raises
    ------
    ValidationError
        Missing design columns or values, non-positive weights, probabilities outside
        (0, 1], PSUs crossing strata, inconsistent fpc.
    """

    __slots__ = ("_adjustments", "_data", "_history", "_lonely_psu", "_spec", "_stages",
                 "_weights")

    def __init__(self, data: pd.DataFrame, *, ids: Columns = None, strata: Columns = None,
                 weights: str | None = None, probs: str | None = None, fpc: Columns = None,
                 lonely_psu: LonelyPSU = "fail", nest: bool = False) -> None:
        if lonely_psu not in LONELY_PSU_RULES:
            raise ValidationError([Problem(SOURCE, "unknown lonely_psu rule", column="lonely_psu",
                                           values=(repr(lonely_psu),),
                                           expected="one of " + ", ".join(LONELY_PSU_RULES))])
        if weights is not None and probs is not None:
            raise ValidationError([Problem(SOURCE, "give weights or probs, not both",
                                           column=f"{weights}, {probs}")])
        ids_l, strata_l, fpc_l = as_columns(ids), as_columns(strata), as_columns(fpc)
        for role, names in (("ids", ids_l), ("strata", strata_l), ("fpc", fpc_l),
                            ("weights", as_columns(weights)), ("probs", as_columns(probs))):
            bad = [n for n in names if not isinstance(n, str)]
            if bad:
                raise ValidationError([Problem(SOURCE, f"{role} must name columns",
                                               column=role, values=tuple(map(repr, bad)),
                                               expected="column names (text)")])
        if not isinstance(data, pd.DataFrame) or data.empty:
            raise ValidationError([Problem(SOURCE, "the design needs a table with respondents",
                                           expected="a non-empty pandas DataFrame")])
        frame = data.reset_index(drop=True)
        named = {"ids": [c for c in ids_l if c not in ("1", "0")], "strata": strata_l,
                 "fpc": fpc_l, "weights": as_columns(weights), "probs": as_columns(probs)}
        problems = check_columns(frame, named)
        if problems:
            raise ValidationError(problems)
        stages = build_stages(frame, ids_l, strata_l, fpc_l, nest)
        self._data = frame
        self._stages = stages
        self._weights = self._sampling_weights(frame, weights, probs, stages)
        self._lonely_psu: LonelyPSU = lonely_psu
        self._adjustments: tuple[Adjustment, ...] = ()
        self._history: tuple[str, ...] = ()
        self._spec = {"ids": ids_l, "strata": strata_l, "weights": weights, "probs": probs,
                      "fpc": fpc_l, "lonely_psu": lonely_psu, "nest": nest}

    @staticmethod
    def _sampling_weights(frame: pd.DataFrame, weights: str | None, probs: str | None,
                          stages: tuple[Stage, ...]) -> NDArray[np.float64]:
        if weights is not None or probs is not None:
            col = weights if weights is not None else probs
            assert col is not None
            values = pd.to_numeric(frame[col], errors="coerce")
            if probs is not None:
                bad = values.isna() | (values <= 0) | (values > 1)
                expected = "a probability in (0, 1]"
            else:
                bad = values.isna() | (values <= 0) | np.isinf(values)
                expected = "a finite number > 0"
            if bad.any():
                rows = tuple(int(i) + 1 for i in np.flatnonzero(bad.to_numpy())[:5])
                raise ValidationError([Problem(
                    SOURCE, f"invalid {'probabilities' if probs else 'weights'}", column=col,
                    rows=rows, values=tuple(repr(v) for v in frame.loc[bad, col].iloc[:5]),
                    expected=expected, count=int(bad.sum()))])
            array = values.to_numpy(dtype=float)
            return 1.0 / array if probs is not None else array
        w = np.ones(len(frame))
        for stage in stages:
            if stage.population is None:
                break
            w = w * (stage.population / stage.n_sampled)[stage.stratum]
        return w

    # --- what the design holds ---------------------------------------------------------

    @property
    def data(self) -> pd.DataFrame:
        """The respondent table (read-only by convention)."""
        return self._data

    @property
    def weights(self) -> NDArray[np.float64]:
        """Sampling weights, one per respondent (a copy)."""
        return self._weights.copy()

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The design's stages as integer codes."""
        return self._stages

    @property
    def lonely_psu(self) -> LonelyPSU:
        """The rule for strata with a single PSU."""
        return self._lonely_psu

    @property
    def degrees_of_freedom(self) -> int:
        """Design degrees of freedom: first-stage PSUs minus first-stage strata (R's degf)."""
        return self.degrees_of_freedom_among(np.ones(len(self._data), dtype=bool))

    def degrees_of_freedom_among(self, rows: NDArray[np.bool_]) -> int:
        """Degrees of freedom of the respondents in ``rows`` (R's degf of a subset)."""
        first = self._stages[0]
        return len(np.unique(first.cluster[rows])) - len(np.unique(first.stratum[rows]))

    def covariance(self, scores: NDArray[np.float64] | sp.spmatrix, *, diagonal: bool = False
                   ) -> NDArray[np.float64]:
        """Design covariance of the totals of influence ``scores`` (n x k).

        Scores are first adjusted for every calibration of the weights (post-stratification,
        raking, GREG), then linearised over the stages. ``diagonal=True`` returns only the
        variances (k,), which is all that standard errors need.
        """
        adjusted = calibration.adjust_scores(scores, self._adjustments)
        return design_covariance(adjusted, self._stages, self._lonely_psu, diagonal=diagonal)

    def notes(self) -> tuple[str, ...]:
        """One-line description of the design, printed under results."""
        s = self._spec
        parts = [f"{len(self._data)} respondents",
                 f"{len(self._stages)} stage(s)",
                 f"{len(np.unique(self._stages[0].stratum))} strata",
                 f"{len(np.unique(self._stages[0].cluster))} PSUs",
                 "fpc" if s["fpc"] else "with replacement",
                 f"lonely PSU: {s['lonely_psu']}"]
        return ("Design: " + ", ".join(parts), *self._history)

    def __repr__(self) -> str:
        return self.notes()[0]

    # --- weighting: each returns a new design ------------------------------------------

    def _derive(self, weights: NDArray[np.float64], adjustment: Adjustment | None,
                note: str) -> SurveyDesign:
        new = copy.copy(self)
        new._weights = weights
        new._adjustments = self._adjustments + ((adjustment,) if adjustment else ())
        new._history = (*self._history, note)
        return new

    def poststratify(self, targets: Mapping[str, Mapping[object, float]] | pd.DataFrame
                     ) -> SurveyDesign:
        """Post-stratify: weights of each cell sum to its population count.

        Parameters
        ----------
        targets : dict or pandas.DataFrame
            ``{"stype": {"E": 4421, "H": 755, "M": 1018}}`` for one variable, or a frame
            with the post-stratification columns and a ``count`` column for crossed cells.

        Returns
        -------
        SurveyDesign
            With SEs that account for the post-stratification (as R's ``postStratify``).
        """
        if isinstance(targets, pd.DataFrame):
            if "count" not in targets.columns:
                raise CalibrationError("a post-stratification frame needs a 'count' column")
            keys = [c for c in targets.columns if c != "count"]
            if not keys:
                raise CalibrationError("a post-stratification frame needs the cell columns "
                                       "beside 'count'")
            missing = [k for k in keys if k not in self._data.columns]
            if missing:
                raise CalibrationError(f"post-stratification columns {missing} are not in the "
                                       "design's data")
            for key in keys:
                if self._data[key].isna().any() or targets[key].isna().any():
                    raise CalibrationError(f"post-stratification column '{key}' has missing "
                                           "values (in the data or the targets)")
            if targets.duplicated(keys).any():
                raise CalibrationError("the post-stratification frame lists a cell twice: "
                                       f"{targets[targets.duplicated(keys)][keys].iloc[0].tolist()}")
            cell = self._data[keys].astype(str).agg("\x1f".join, axis=1)
            labels = targets[keys].astype(str).agg("\x1f".join, axis=1)
            data = pd.DataFrame({"cell": cell})
            spec: Targets = {"cell": dict(zip(labels, targets["count"], strict=True))}
        else:
            if len(targets) != 1 or not all(isinstance(v, Mapping) for v in targets.values()):
                raise CalibrationError("post-stratify on one variable mapped to its level "
                                       "counts, or pass a frame of crossed cells with a "
                                       "'count' column")
            data, spec = self._data, targets
        x, totals, _ = calibration.calibration_matrix(data, spec)
        weights, adjustment = calibration.linear_calibration(self._weights, x, totals)
        return self._derive(weights, adjustment, f"Post-stratified on {', '.join(spec)}")

    def rake(self, margins: Mapping[str, Mapping[object, float]], *, max_iter: int = 100,
             tol: float = 1e-10) -> SurveyDesign:
        """Rake (iterative proportional fitting) to known margins.

        Parameters
        ----------
        margins : dict
            ``{"stype": {"E": 4421, ...}, "sch.wide": {"No": 1072, "Yes": 5122}}``.
        max_iter : int
            Maximum cycles over the margins.
        tol : float
            Convergence: largest relative change of a weight in a cycle.

        Returns
        -------
        SurveyDesign
        """
        weights, adjustment = calibration.raking_calibration(self._weights, self._data, margins,
                                                             max_iter, tol)
        return self._derive(weights, adjustment, f"Raked to {', '.join(margins)}")

    def calibrate(self, targets: Targets) -> SurveyDesign:
        """Linear (GREG) calibration to known population totals.

        Parameters
        ----------
        targets : dict
            Categorical columns map to level totals, numeric columns to their total:
            ``{"stype": {"E": 4421, "H": 755, "M": 1018}, "api99": 3914069}``.

        Returns
        -------
        SurveyDesign
        """
        x, totals, _ = calibration.calibration_matrix(self._data, targets)
        weights, adjustment = calibration.linear_calibration(self._weights, x, totals)
        return self._derive(weights, adjustment, f"Calibrated (GREG) to {', '.join(targets)}")

    def trim(self, upper: float = np.inf, lower: float = -np.inf, *, strict: bool = False
             ) -> SurveyDesign:
        """Trim weights to ``[lower, upper]``, sharing the excess among the others (R's rule).

        With ``strict=True`` repeat until no weight lies outside the bounds.
        """
        for name, bound in (("upper", upper), ("lower", lower)):
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise CalibrationError(f"{name} must be a number, got {bound!r}")
        if lower >= upper:
            raise CalibrationError(f"lower ({lower}) must be below upper ({upper})")
        weights = calibration.trimmed(self._weights, lower, upper, strict)
        return self._derive(weights, None, f"Weights trimmed to [{lower}, {upper}]")

    def replicate(self, kind: str, *, replicates: int = 200, seed: int | None = None,
                  fay_rho: float = 0.5, mse: bool = False) -> replication.ReplicateDesign:
        """Make replicate weights from this design.

        Parameters
        ----------
        kind : {"JK1", "JKn", "bootstrap", "BRR", "Fay"}
        replicates : int
            Number of bootstrap replicates.
        seed : int, optional
            Seed of the bootstrap draws.
        fay_rho : float
            Fay's coefficient (kind ``"Fay"``).
        mse : bool
            Centre replicates at the full-sample estimate.

        Returns
        -------
        ReplicateDesign
        """
        if isinstance(replicates, bool) or not isinstance(replicates, int):
            raise replication.ReplicateError(f"replicates must be a whole number, got "
                                             f"{replicates!r}")
        if self._adjustments:
            raise replication.ReplicateError(
                "make replicate weights before post-stratifying, raking or calibrating: "
                "replicates of a calibrated design would need each replicate re-calibrated")
        if kind in ("JK1", "JKn"):
            weights = replication.jackknife(self, kind)
        elif kind == "bootstrap":
            weights = replication.bootstrap(self, replicates, seed)
        elif kind in ("BRR", "Fay"):
            weights = replication.balanced_half_samples(self, fay_rho if kind == "Fay" else 0.0)
        else:
            raise replication.ReplicateError(
                f"unknown replicate kind {kind!r}; choose one of "
                + ", ".join(replication.REPLICATE_KINDS))
        if mse:
            weights = replication.ReplicateWeights(weights.kind, weights.weights, weights.scale,
                                                   weights.rscales, True)
        return replication.ReplicateDesign.from_weights(self._data, self._weights, weights)

    # --- estimates ---------------------------------------------------------------------

    def mean(self, variables: str | Sequence[str], by: Columns = None, *, na_rm: bool = False,
             level: float = 0.95) -> Estimates:
        """Weighted means (proportions for categorical columns), by domain.

        Parameters
        ----------
        variables : str or sequence of str
        by : str or sequence of str, optional
            Domain columns (crossed). Domains use the full design.
        na_rm : bool
        level : float

        Returns
        -------
        Estimates
            Columns ``estimate, se, ci_low, ci_high, deff, n, weighted_n``.
        """
        return estimation.linear_estimates(self, "mean", variables, by, na_rm=na_rm,
                                           level=level)

    def total(self, variables: str | Sequence[str], by: Columns = None, *, na_rm: bool = False,
              level: float = 0.95) -> Estimates:
        """Weighted totals (counts for categorical columns), by domain; see :meth:`mean`."""
        return estimation.linear_estimates(self, "total", variables, by, na_rm=na_rm,
                                           level=level)

    def ratio(self, numerator: str, denominator: str, by: Columns = None, *,
              na_rm: bool = False, level: float = 0.95) -> Estimates:
        """Ratio of weighted totals ``sum(w y) / sum(w x)``, by domain."""
        return estimation.ratio_estimates(self, numerator, denominator, by, na_rm=na_rm,
                                          level=level)

    def glm(self, formula: str, family: str = "gaussian", *, level: float = 0.95) -> Estimates:
        """Survey-weighted generalised linear model with design-based (sandwich) SEs.

        Parameters
        ----------
        formula : str
            ``"y ~ x1 + x2"``: column names joined by ``+`` (categorical columns become
            treatment dummies, first level as reference; ``- 1`` drops the intercept).
            Parsed, never evaluated.
        family : {"gaussian", "binomial", "quasibinomial", "poisson", "quasipoisson"}
        level : float
            Confidence level of the t intervals on the residual design degrees of freedom.

        Returns
        -------
        Estimates
            One row per term (intercept first): ``estimate, se, statistic, p_value,
            ci_low, ci_high``.
        """
        return regression.survey_glm(self, formula, family, level=level)

    def olr(self, formula: str, *, level: float = 0.95) -> Estimates:
        """Survey-weighted proportional-odds regression for an ordered response.

        Parameters
        ----------
        formula : str
            ``"api_cat ~ meals + ell"``; the response an ordered categorical (or values
            whose sorted order is the order), three or more levels.
        level : float

        Returns
        -------
        Estimates
            Slopes in formula order, then the cut-points ``low|mid`` ... with R's sign
            convention ``logit P(Y <= k) = zeta_k - x'beta``.
        """
        return ordinal.survey_olr(self, formula, level=level)
