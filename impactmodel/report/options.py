"""What a report shows: the ``[report]`` section of a model specification."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ReportOptions:
    """Choices of the report's territorial charts and map.

    Attributes
    ----------
    population : str or None
        Population of the per-territory expected-score charts and map; None: the first
        population of the run.
    impact : str or None
        Impact of those charts and map; None: the first impact of the run.
    practice : str or None
        Practice of the per-territory effect charts (the ordinal model, which has no
        expected scores, maps this effect); None: the first practice of the model.
    figures : bool
        Draw the figures (False: tables only, faster for large runs).
    """

    population: str | None = None
    impact: str | None = None
    practice: str | None = None
    figures: bool = True

    def to_dict(self) -> dict[str, object]:
        """Plain values, for manifests."""
        return asdict(self)
