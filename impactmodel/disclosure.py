"""Disclosure control applied to every per-population and per-territory table exported.

Respondent-level answers are personal data. Before a table is written:

- **frequency rule** — a row based on fewer than ``min_count`` respondents (default 11,
  never below 3) is suppressed: its estimates and its count are blanked and its status
  says why;
- **secondary suppression** — when a group whose total is published elsewhere (e.g. the
  departments of one region within a population, or the populations of one department)
  has exactly one suppressed row, that row could be recovered from the total, so the
  smallest other row of the group is suppressed too; this is repeated over every
  grouping until no group has a lone suppressed row (a suppression made for one margin
  can expose a row in another);
- **reliability** — a published level estimate (a score, a mean) whose coefficient of
  variation (posterior sd or standard error over the absolute estimate) exceeds
  ``max_cv`` (default 30%) is flagged ``unreliable``. Effects are not flagged this way:
  an effect near zero has a huge CV however precise it is; their intervals say it.

Suppressed rows stay in the table, shown as such; nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from impactmodel.errors import SpecError

#: the smallest frequency threshold the package accepts
MIN_COUNT_FLOOR = 3

PUBLISHED = "published"
UNRELIABLE = "unreliable"
SECONDARY = "suppressed (secondary)"


@dataclass(frozen=True)
class DisclosureRules:
    """Thresholds of the disclosure gate (see the module docstring)."""

    min_count: int = 11
    max_cv: float = 0.30

    def __post_init__(self) -> None:
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int) or (
                self.min_count < MIN_COUNT_FLOOR):
            raise SpecError(f"disclosure min_count must be an integer >= {MIN_COUNT_FLOOR}, "
                            f"got {self.min_count!r}")
        if not self.max_cv > 0:
            raise SpecError(f"disclosure max_cv must be positive, got {self.max_cv!r}")

    def to_dict(self) -> dict[str, object]:
        """Plain values, for manifests."""
        return {**asdict(self), "secondary_suppression": "the smallest other row of any "
                "group (a set of rows whose total is published) with exactly one "
                "suppressed row, repeated over every such grouping until none is left",
                "cv_flag": "level estimates (scores, means) only, not effects"}


def apply_disclosure(table: pd.DataFrame, rules: DisclosureRules, *, count: str = "n",
                     estimates: Sequence[str] = ("mean", "sd", "low", "high"),
                     groups: Sequence[Sequence[str]] = (), value: str | None = "mean",
                     spread: str = "sd") -> pd.DataFrame:
    """Return ``table`` with the gate applied and a ``status`` column added.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per published cell, with its respondent ``count`` column.
    rules : DisclosureRules
    count : str
        Column of respondent counts.
    estimates : sequence of str
        Columns blanked in suppressed rows; ``mean`` and ``sd`` (when present) give the
        coefficient of variation.
    groups : sequence of sequences of str
        Groupings with published totals (secondary suppression): each is a list of
        columns whose combinations form groups, e.g. ``[["population", "region"],
        ["department"]]``; empty for none.
    value, spread : str
        Columns of the estimate and its posterior sd or standard error (their ratio is the
        coefficient of variation). ``value=None``: no reliability flag (for effects).

    Returns
    -------
    pandas.DataFrame
        A copy; suppressed rows have ``NaN`` estimates and counts.
    """
    out = table.copy()
    n = out[count].to_numpy(dtype=float)
    primary = n < rules.min_count
    status = np.where(primary, f"suppressed (n < {rules.min_count})", PUBLISHED).astype(object)
    suppressed = primary.copy()
    keyed = [out[list(g)].astype(str).agg("\x1f".join, axis=1).to_numpy() for g in groups]
    changed = bool(keyed)
    while changed:
        changed = False
        for keys in keyed:
            for key in np.unique(keys):
                members = np.flatnonzero(keys == key)
                if suppressed[members].sum() == 1:
                    others = members[~suppressed[members]]
                    if len(others):
                        chosen = others[np.argmin(n[others])]
                        status[chosen], suppressed[chosen], changed = SECONDARY, True, True
    if value is not None and value in out and spread in out:
        cv = out[spread].to_numpy(dtype=float) / np.abs(out[value].to_numpy(dtype=float))
        status[(status == PUBLISHED) & ~(cv <= rules.max_cv)] = UNRELIABLE
    hidden = (status != PUBLISHED) & (status != UNRELIABLE)
    columns = [c for c in estimates if c in out] + [count]
    out[columns] = out[columns].astype(float)
    out.loc[hidden, columns] = np.nan
    out["status"] = status
    return out
