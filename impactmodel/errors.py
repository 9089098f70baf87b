"""The package's error types.

Every user-facing failure is an :class:`ImpactModelError`. Validation gathers every
:class:`Problem` it finds before raising one :class:`ValidationError`, so a user sees all
that is wrong with a file at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


class ImpactModelError(Exception):
    """Base class of every error impactmodel raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input file.

    Parameters
    ----------
    file : str
        The file the problem was found in.
    title : str
        A short statement of what is wrong.
    column : str or None
        The column (or codebook key) concerned.
    rows : tuple of int
        Example row numbers (1-based data rows, as a spreadsheet shows them after the header).
    values : tuple of str
        Example offending values.
    expected : str or None
        What was expected instead.
    hint : str or None
        How to fix it (e.g. the closest valid value).
    count : int or None
        How many rows are affected in total, when more than the examples.
    """

    file: str
    title: str
    column: str | None = None
    rows: tuple[int, ...] = ()
    values: tuple[str, ...] = ()
    expected: str | None = None
    hint: str | None = None
    count: int | None = None

    def render(self) -> str:
        """Return the problem as readable multi-line text."""
        where = self.file + (f", column '{self.column}'" if self.column else "")
        lines = [f"{where}: {self.title}"]
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            more = self.count is not None and self.count > len(self.rows)
            total = f" ({self.count} rows in all)" if more else ""
            lines.append(f"    rows: {shown}{total}")
        if self.values:
            lines.append("    got: " + ", ".join(self.values))
        if self.expected:
            lines.append(f"    expected: {self.expected}")
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)


@dataclass
class ValidationError(ImpactModelError):
    """Raised when input files break the data contract; carries every problem found."""

    problems: Sequence[Problem] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found in the input:"
        return "\n".join([head, *(p.render() for p in self.problems)])


class SpecError(ImpactModelError):
    """Raised for a bad argument to a public function (not a data file problem)."""
