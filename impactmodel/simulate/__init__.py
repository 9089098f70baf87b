"""The survey simulator: realistic multi-population survey files with known truth.

See :func:`simulate` and the modules ``population`` (finite population and practices),
``outcomes`` (the item model), ``sampling`` (designs and nonresponse) and ``questionnaire``.
"""

from impactmodel.simulate.run import (
    FILES,
    Census,
    Simulation,
    draw_respondents,
    finite_population,
    simulate,
    write_simulation,
)
from impactmodel.simulate.settings import SimulationSettings

__all__ = ["FILES", "Census", "Simulation", "SimulationSettings", "draw_respondents",
           "finite_population", "simulate", "write_simulation"]
