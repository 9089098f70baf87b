"""Design-based (survey-weighted) estimation matching R's ``survey`` package.

``SurveyDesign`` holds data and design; ``variance`` is the numpy kernel of Taylor
linearisation; ``estimation`` the means, totals and ratios; ``regression`` the GLMs.
"""

from impactmodel.survey.design import SurveyDesign
from impactmodel.survey.results import Estimates

__all__ = ["Estimates", "SurveyDesign"]
