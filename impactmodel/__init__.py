"""impactmodel: the societal impact of cross-sector alliances, from multi-population surveys.

The data flow, one module per step::

    codebook (TOML) + respondent table
        -> validated survey            (:mod:`impactmodel.codebook`, :mod:`impactmodel.loading`)
        -> description / scores        (:mod:`impactmodel.describe`, :mod:`impactmodel.scores`)

The simulator (:mod:`impactmodel.simulate`) writes survey files with a known truth.
"""

from impactmodel.codebook import Codebook, load_codebook
from impactmodel.errors import ImpactModelError, Problem, ValidationError
from impactmodel.loading import load_survey
from impactmodel.survey_data import SurveyData

__version__ = "0.1.0"

__all__ = [
    "Codebook",
    "ImpactModelError",
    "Problem",
    "SurveyData",
    "ValidationError",
    "__version__",
    "load_codebook",
    "load_survey",
]
