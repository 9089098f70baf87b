"""What a report shows: the ``[report]`` section of a model specification."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ReportOptions:
    """Choices of the report's territorial charts and map.

    Attributes
    ----------
    population : str
        Population of the per-territory expected-score charts and map.
    impact : str
        Impact of those charts and map.
    practice : str or None
        Practice of the per-territory effect charts (the ordinal model, which has no
        expected scores, maps this effect); None: the first practice of the model.
    figures : bool
        Draw the figures (False: tables only, faster for large runs).
    """

    population: str = "citizen"
    impact: str = "trust"
    practice: str | None = None
    figures: bool = True

    def to_dict(self) -> dict[str, object]:
        """Plain values, for manifests."""
        return asdict(self)
