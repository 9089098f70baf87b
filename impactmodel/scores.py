"""Impact scale scores: per respondent, the mean of their answered items, reverse-coded.

Each item is first put on a 0-100 scale, the percent of the scale's maximum possible
(POMP; Cohen, Cohen, Aiken & West 1999, Multivariate Behavioral Research 34(3)):
``100 * (y - low) / (high - low)``, after reverse coding ``y -> low + high - y`` where the
codebook says so. A respondent's score for a group of items (an impact, or an impact x lens
x dimension cell) is the mean over the items of that group they answered; it is missing
when they answered none. Items not asked (missing by design) and item non-response simply
do not enter the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from impactmodel.codebook import ItemSpec
from impactmodel.survey_data import SurveyData


def pomp(values: NDArray[np.float64], low: NDArray[np.float64], high: NDArray[np.float64],
         reverse: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Put item answers on the 0-100 POMP scale, reverse-coding where flagged.

    Parameters
    ----------
    values : ndarray, shape (n, J)
        Answers (``NaN`` where none).
    low, high : ndarray, shape (J,)
        Each item's lowest and highest scale level.
    reverse : ndarray of bool, shape (J,)
        Whether each item is reverse-coded.

    Returns
    -------
    ndarray, shape (n, J)
    """
    coded = np.where(reverse, low + high - values, values)
    return 100.0 * (coded - low) / (high - low)


def group_means(values: NDArray[np.float64], groups: NDArray[np.int_], n_groups: int
                ) -> NDArray[np.float64]:
    """Mean of the non-missing values of each row within each group of columns.

    Parameters
    ----------
    values : ndarray, shape (n, J)
    groups : ndarray of int, shape (J,)
        Each column's group, in ``0 .. n_groups-1``.
    n_groups : int

    Returns
    -------
    ndarray, shape (n, n_groups)
        ``NaN`` where a row has no value in a group.
    """
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    one_hot = np.zeros((values.shape[1], n_groups))
    one_hot[np.arange(values.shape[1]), groups] = 1.0
    sums = filled @ one_hot
    counts = present.astype(float) @ one_hot
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def item_pomp_matrix(items: Sequence[ItemSpec], frame: pd.DataFrame) -> NDArray[np.float64]:
    """Return the respondents x items matrix of POMP-scaled answers."""
    values = frame[[i.column for i in items]].to_numpy(dtype=float)
    low = np.array([i.scale.low for i in items], dtype=float)
    high = np.array([i.scale.high for i in items], dtype=float)
    reverse = np.array([i.reverse for i in items])
    return pomp(values, low, high, reverse)


def impact_scores(survey: SurveyData, by: Literal["impact", "cell"] = "impact") -> pd.DataFrame:
    """Per-respondent scale scores (0-100) per impact or per impact x lens x dimension cell.

    Parameters
    ----------
    survey : SurveyData
    by : {"impact", "cell"}
        ``impact``: one column per impact (``performance`` ...); ``cell``: one column per
        cell present in the codebook, named ``impact:lens:dimension``.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``survey.frame``.
    """
    items = survey.codebook.items
    if by == "impact":
        labels = list(dict.fromkeys(i.impact for i in items))
        keys = [i.impact for i in items]
    else:
        labels = list(dict.fromkeys(":".join(i.cell) for i in items))
        keys = [":".join(i.cell) for i in items]
    groups = np.array([labels.index(k) for k in keys])
    scores = group_means(item_pomp_matrix(items, survey.frame), groups, len(labels))
    return pd.DataFrame(scores, index=survey.frame.index, columns=labels)
