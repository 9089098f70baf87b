"""Direct (design-based) and model-based estimates side by side, per domain.

The table a statistician reads before publishing per-territory figures: for every
population x territory x impact, the design-based direct estimate with its standard
error, coefficient of variation and design effect
(:func:`impactmodel.survey.impact.impact_score_table`) next to the model's posterior
(MRP or the model's expected score), how far the model moved the direct estimate, and a
reliability flag for the direct estimate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: direct estimates with a CV above this are flagged (the disclosure gate's default)
DEFAULT_MAX_CV = 0.30


def direct_vs_model(direct: pd.DataFrame, model: pd.DataFrame, keys: Sequence[str], *,
                    max_cv: float = DEFAULT_MAX_CV) -> pd.DataFrame:
    """Join direct and model-based estimates of the same domains.

    Parameters
    ----------
    direct : pandas.DataFrame
        :func:`~impactmodel.survey.impact.impact_score_table` rows: the ``keys`` but
        ``impact`` as domain columns and ``cell`` (impacts only are used), ``estimate,
        se, deff, n``.
    model : pandas.DataFrame
        The ``keys`` and ``mean, sd, low, high`` (e.g. :func:`~impactmodel.bayes.mrp.
        poststratify`'s department table).
    keys : sequence of str
        Domain columns, ``impact`` included (e.g. population, department, impact).
    max_cv : float
        Direct estimates with a larger CV (or fewer than two respondents, whose SE is
        not defined) are flagged ``unreliable``.

    Returns
    -------
    pandas.DataFrame
        One row per model domain: ``keys``, ``n`` (respondents), ``direct, direct_se,
        direct_cv, deff``, ``model, model_sd, model_low, model_high``, ``shift`` (model
        minus direct, in points: how far the model moved the direct estimate),
        ``se_ratio`` (model sd over direct SE: below 1 where the model is more precise)
        and ``direct_reliability``. Domains without
        respondents have no direct estimate (NaN) and are flagged ``no respondents``.
    """
    columns = [k for k in keys if k != "impact"]
    impacts = direct[~direct["cell"].str.contains(":")].rename(columns={"cell": "impact"})
    left = impacts[[*columns, "impact", "estimate", "se", "deff", "n"]].rename(
        columns={"estimate": "direct", "se": "direct_se"})
    right = model[[*keys, "mean", "sd", "low", "high"]].rename(columns={
        "mean": "model", "sd": "model_sd", "low": "model_low", "high": "model_high"})
    table = right.merge(left, on=list(keys), how="left")
    table["n"] = table["n"].fillna(0).astype(int)
    table["direct_cv"] = table["direct_se"] / table["direct"].abs()
    table["shift"] = table["model"] - table["direct"]
    table["se_ratio"] = table["model_sd"] / table["direct_se"]
    reliable = (table["direct_cv"] <= max_cv) & (table["n"] >= 2)
    table["direct_reliability"] = np.where(
        table["n"] == 0, "no respondents", np.where(reliable, "reliable", "unreliable"))
    ordered = [*keys, "n", "direct", "direct_se", "direct_cv", "deff", "model", "model_sd",
               "model_low", "model_high", "shift", "se_ratio", "direct_reliability"]
    return table[ordered]
