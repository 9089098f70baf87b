"""Turn design columns (ids, strata, fpc per stage) into integer stage codes.

R ``survey``'s conventions: ``ids`` names one cluster column per stage (none, or ``"1"``,
for an element sample); ``strata`` is one column for the first stage or one per stage;
``fpc`` gives per stage either the population count of clusters in the stratum (> 1) or
the sampling fraction (<= 1), for every stage or none. Without ``nest=True`` a first-stage
cluster label must lie in one stratum; later stages are always nested in their parent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from impactmodel.errors import Problem, ValidationError
from impactmodel.survey.variance import Stage
from impactmodel.vocabulary import closest

SOURCE = "survey design"
ELEMENT_IDS = ("1", "0")


def as_columns(value: str | Sequence[str] | None) -> list[str]:
    """Normalise a column argument to a list (``None`` -> ``[]``)."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]  # type: ignore[list-item]  # a non-text name is reported by the caller
    return list(value)


def _problem(frame: pd.DataFrame, column: str, title: str, mask: pd.Series, expected: str,
             hint: str | None = None) -> Problem:
    bad = frame.loc[mask, column]
    return Problem(SOURCE, title, column=column,
                   rows=tuple(int(i) + 1 for i in np.flatnonzero(mask.to_numpy())[:5]),
                   values=tuple(dict.fromkeys(repr(v) for v in bad.iloc[:20]))[:5],
                   expected=expected, hint=hint, count=int(mask.sum()))


def check_columns(frame: pd.DataFrame, columns: dict[str, list[str]]) -> list[Problem]:
    """Every named design column must exist and have no missing value."""
    problems = []
    for role, names in columns.items():
        for name in names:
            if name not in frame.columns:
                guess = closest(name, [str(c) for c in frame.columns])
                problems.append(Problem(SOURCE, f"{role} column not in the data", column=name,
                                        expected="one of the data's columns",
                                        hint=f"did you mean '{guess}'?" if guess else None))
            elif frame[name].isna().any():
                problems.append(_problem(frame, name, f"missing values in the {role} column",
                                         frame[name].isna(), "a value on every row"))
    return problems


def _codes(*keys: pd.Series | np.ndarray) -> np.ndarray:
    frame = pd.DataFrame({f"k{i}": np.asarray(k) for i, k in enumerate(keys)})
    return frame.groupby(list(frame.columns), sort=True, observed=True).ngroup().to_numpy()


def build_stages(frame: pd.DataFrame, ids: list[str], strata: list[str], fpc: list[str],
                 nest: bool) -> tuple[Stage, ...]:
    """Build the :class:`Stage` codes of a design.

    Raises
    ------
    ValidationError
        PSUs in several strata (without ``nest``), fpc not constant within a stratum,
        fpc implying more clusters sampled than exist, invalid fpc values.
    """
    n = len(frame)
    cluster_columns: list[str | None] = [c for c in ids if c not in ELEMENT_IDS] or [None]
    n_stages = len(cluster_columns)
    if fpc and len(fpc) != n_stages:
        raise ValidationError([Problem(
            SOURCE, "fpc must be given for every sampling stage or for none", column=", ".join(fpc),
            expected=f"{n_stages} column(s), one per stage of ids")])
    if len(strata) > n_stages:
        raise ValidationError([Problem(
            SOURCE, "more strata columns than sampling stages", column=", ".join(strata),
            expected=f"at most {n_stages}")])
    problems: list[Problem] = []
    stages = []
    parent = np.zeros(n, dtype=int)
    for k in range(n_stages):
        label = (frame[strata[k]].astype(str).to_numpy() if k < len(strata)
                 else np.full(n, "1"))
        stratum = _codes(parent, label)
        column = cluster_columns[k]
        cluster_label = (frame[column].astype(str).to_numpy() if column is not None
                         else np.arange(n).astype(str))
        if k == 0 and not nest and column is not None and k < len(strata):
            per_cluster = pd.Series(stratum).groupby(cluster_label).nunique()
            crossing = per_cluster[per_cluster > 1]
            if len(crossing):
                mask = pd.Series(np.isin(cluster_label, crossing.index.to_numpy()),
                                 index=frame.index)
                problems.append(_problem(
                    frame, column, "PSU in more than one stratum", mask,
                    f"each PSU within one stratum of '{strata[0]}'",
                    hint="if PSU labels restart in each stratum, pass nest=True"))
        cluster = _codes(stratum, cluster_label) if (nest or k > 0) else _codes(cluster_label)
        n_strata = int(stratum.max()) + 1
        sampled = pd.Series(cluster).groupby(stratum).nunique().reindex(range(n_strata))
        n_sampled = np.asarray(sampled, dtype=np.float64)
        population = None
        if fpc:
            values = pd.to_numeric(frame[fpc[k]], errors="coerce")
            bad = values.isna() | (values <= 0)
            if bad.any():
                problems.append(_problem(frame, fpc[k], "invalid fpc", bad,
                                         "a population count (> 1) or a fraction in (0, 1]"))
                values = values.where(~bad, 1.0)
            spread = values.groupby(stratum).nunique()
            if (spread > 1).any():
                mask = pd.Series(np.isin(stratum, spread.index[spread > 1]), index=frame.index)
                problems.append(_problem(frame, fpc[k], f"fpc varies within a stage-{k + 1} "
                                         "stratum", mask, "one value per stratum"))
            first = values.groupby(stratum).first().reindex(range(n_strata)).to_numpy(float)
            population = np.where(first <= 1, n_sampled / first, first)
            over = population < n_sampled - 1e-9
            if over.any():
                mask = pd.Series(over[stratum], index=frame.index)
                problems.append(_problem(frame, fpc[k], "fpc implies more than 100% sampling",
                                         mask, "population count >= clusters sampled in the "
                                         "stratum"))
        labels = pd.Series(label).groupby(stratum).first().reindex(range(n_strata))
        parent_of_stratum = pd.Series(parent).groupby(stratum).first().reindex(range(n_strata))
        stages.append(Stage(stratum, cluster, n_sampled, population,
                            tuple(str(s) for s in labels),
                            np.asarray(parent_of_stratum, dtype=np.int64)))
        parent = cluster
    if problems:
        raise ValidationError(problems)
    return tuple(stages)
