"""Result objects of design-based estimation: a tidy table that prints like a stats package."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Estimates:
    """Estimates of one statistic, one row per variable (x domain) or per model term.

    Attributes
    ----------
    statistic : str
        ``mean``, ``total``, ``ratio`` or a regression family.
    table : pandas.DataFrame
        At least ``estimate`` and ``se``; ``ci_low``/``ci_high`` at ``level``; ``deff`` where
        defined; for domain estimates also ``n`` (respondents) and ``weighted_n``.
    level : float
        Confidence level of the intervals.
    notes : tuple of str
        How the figures were computed (design, rules), printed under the table.
    """

    statistic: str
    table: pd.DataFrame
    level: float = 0.95
    notes: tuple[str, ...] = field(default=())

    def to_frame(self) -> pd.DataFrame:
        """Return a copy of the table."""
        return self.table.copy()

    @property
    def estimate(self) -> pd.Series:
        """The point estimates."""
        return self.table["estimate"]

    @property
    def se(self) -> pd.Series:
        """The standard errors."""
        return self.table["se"]

    def __repr__(self) -> str:
        with pd.option_context("display.width", 120, "display.max_columns", 20,
                               "display.float_format", "{:.6g}".format):
            body = self.table.to_string()
        lines = [f"Survey {self.statistic} ({self.level:.0%} intervals)", body, *self.notes]
        return "\n".join(lines)
