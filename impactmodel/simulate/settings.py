"""Settings of a simulation run."""

from __future__ import annotations

from dataclasses import dataclass, field

from impactmodel.errors import SpecError
from impactmodel.vocabulary import POPULATIONS


@dataclass(frozen=True, slots=True)
class SimulationSettings:
    """What to simulate.

    Attributes
    ----------
    seed : int
        Seed of every random draw: the same settings give byte-identical output.
    respondents : int
        Target number of respondents over the four populations (the realised number
        differs a little, as nonresponse is random).
    shares : dict
        Share of the respondents per population.
    response_rates : dict
        Mean response propensity per population (nonresponse also depends on age group
        and size class, which the weights are raked on).
    informative_nonresponse : float
        Log-odds ratio of responding for those in partnerships versus not: 0 (default)
        keeps nonresponse ignorable given the raking variables; non-zero makes the
        weighted estimates biased, for sensitivity studies.
    spatial_share : float
        Share of the variance of the departments' intercept deviations that is spatially
        structured (an ICAR field over the department adjacency, scaled per connected
        component; islands get none): 0 (default) draws them independently; 0.8 makes
        neighbours alike, for studies of spatial pooling (BYM2).
    citizens_per_commune : tuple of float
        Mean number of citizens per commune in the finite population by size class
        (small = rural, medium = small town, large = urban); sets the population's size.
    item_nonresponse : float
        Probability that an asked item is left unanswered.
    items_per_respondent : int, optional
        A split questionnaire (matrix sampling): each respondent is asked this many
        items, drawn at random without replacement among those their population is
        asked (all of them when there are fewer). Items left out are missing by design,
        completely at random. None (default) asks every respondent the whole
        questionnaire of their population.
    """

    seed: int = 0
    respondents: int = 4000
    shares: dict[str, float] = field(default_factory=lambda: {
        "citizen": 0.4, "elected": 0.2, "business": 0.2, "association": 0.2})
    response_rates: dict[str, float] = field(default_factory=lambda: {
        "citizen": 0.35, "elected": 0.55, "business": 0.3, "association": 0.5})
    citizens_per_commune: tuple[float, float, float] = (6.0, 25.0, 90.0)
    item_nonresponse: float = 0.04
    informative_nonresponse: float = 0.0
    spatial_share: float = 0.0
    items_per_respondent: int | None = None

    @property
    def population_scale(self) -> float:
        """Factor on the number of communes (and so on every population's size).

        The finite population grows with the requested sample so that sampling fractions
        stay those of the default 4,000-respondent survey (about 1 mayor in 6).
        """
        return max(1.0, self.respondents / 4000)

    def __post_init__(self) -> None:
        if self.respondents < 400:
            raise SpecError(f"respondents must be at least 400 (got {self.respondents}) so that "
                            "every population's design has two PSUs per stratum")
        if self.seed < 0:
            raise SpecError(f"seed must be >= 0 (got {self.seed})")
        if set(self.shares) != set(POPULATIONS) or abs(sum(self.shares.values()) - 1) > 1e-9:
            raise SpecError(f"shares must give each of {POPULATIONS} and sum to 1")
        if not 0 <= self.spatial_share <= 1:
            raise SpecError(f"spatial_share must be in [0, 1] (got {self.spatial_share})")
        if not 0 <= self.item_nonresponse < 1:
            raise SpecError(f"item_nonresponse must be in [0, 1) (got {self.item_nonresponse})")
        if self.items_per_respondent is not None and self.items_per_respondent < 1:
            raise SpecError("items_per_respondent must be at least 1, or None for the whole "
                            f"questionnaire (got {self.items_per_respondent})")
