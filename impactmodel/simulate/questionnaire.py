"""The simulated questionnaires: an item bank over the impact x lens x dimension cells.

Half of the 54 cells carry an item (cells where impact + lens + dimension indices are
even), and a few carry a second one. Each lens is asked of three populations, so each
population answers every impact but not every item: the rest is missing by design.
"""

from __future__ import annotations

from impactmodel.codebook import Codebook, DesignSpec, ItemSpec, ScaleSpec, VariableSpec
from impactmodel.vocabulary import DIMENSIONS, IMPACTS, LENSES

AGREE5 = ScaleSpec("agree5", (1, 2, 3, 4, 5), (
    "Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree"))

ASKED_BY_LENS = {
    "ecosystem": ("citizen", "elected", "association"),
    "organisation": ("elected", "business", "association"),
    "individual": ("citizen", "business", "association"),
}

LENS_CODES = {"ecosystem": "eco", "organisation": "org", "individual": "ind"}
DIMENSION_CODES = {"political": "pol", "economic": "econ", "social": "soc",
                   "environmental": "env", "societal": "socy", "fulfilment": "ful"}

AGE_GROUPS = ("18-39", "40-59", "60+")
SIZE_CLASSES = ("small", "medium", "large")
MATURITY_LEVELS = ("none", "emerging", "developing", "structured", "co-constructing")

BINARY_PRACTICES = {
    "partners": "Takes part in at least one cross-sector partnership",
    "with_association": "Partners with an association",
    "with_company": "Partners with a company",
    "with_public": "Partners with a public body",
    "mode_philanthropy": "Partnership mode: philanthropy (mécénat)",
    "mode_responsible": "Partnership mode: responsible practices",
    "mode_cooperation": "Partnership mode: economic cooperation",
    "mode_innovation": "Partnership mode: societal innovation",
}

EFFECT_PRACTICES = ("partners", "mode_philanthropy", "mode_responsible", "mode_cooperation",
                    "mode_innovation", "maturity")
"""Practices that enter the generating model of the impact items (maturity as 0..1)."""


def item_bank() -> tuple[ItemSpec, ...]:
    """Return the simulated questionnaire's items, in a fixed order."""
    items: list[ItemSpec] = []
    for i, impact in enumerate(IMPACTS):
        for j, lens in enumerate(LENSES):
            for k, dimension in enumerate(DIMENSIONS):
                if (i + j + k) % 2:
                    continue
                repeats = 2 if (i + 2 * j + k) % 5 == 0 else 1
                for r in range(1, repeats + 1):
                    column = f"{impact[:4]}_{LENS_CODES[lens]}_{DIMENSION_CODES[dimension]}_{r}"
                    reverse = len(items) % 5 == 4
                    text = (f"Alliances {'do not ' if reverse else ''}improve the {dimension} "
                            f"{impact} ({lens} lens)")
                    items.append(ItemSpec(column, impact, lens, dimension, AGREE5, reverse,
                                          ASKED_BY_LENS[lens], text))
    return tuple(items)


def simulated_codebook(path: str = "codebook.toml") -> Codebook:
    """Return the codebook describing the simulator's respondent table."""
    practices = [VariableSpec(c, "binary", (), label) for c, label in BINARY_PRACTICES.items()]
    practices.append(VariableSpec("maturity", "ordinal", MATURITY_LEVELS,
                                  "Maturity of territorial co-construction"))
    practices.append(VariableSpec("n_partnerships", "count", (), "Number of partnerships"))
    covariates = (
        VariableSpec("age_group", "categorical", AGE_GROUPS, "Age of the respondent"),
        VariableSpec("size_class", "categorical", SIZE_CLASSES,
                     "Size of the commune (citizens, elected) or organisation (leaders)"),
    )
    return Codebook(
        path=path,
        title="Simulated IMPACT survey (impactmodel simulate)",
        id="respondent_id",
        population="population",
        territory="department",
        population_codes={},
        design=DesignSpec(weight="weight", strata="stratum", psu=("psu",), fpc=("fpc",)),
        practices=tuple(practices),
        covariates=covariates,
        scales={"agree5": AGREE5},
        items=item_bank(),
        poststratification=("age_group", "size_class"),
    )
