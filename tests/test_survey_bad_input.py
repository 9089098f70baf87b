"""Bad calls to the design-based API end in the package's own errors, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impactmodel.errors import ImpactModelError
from impactmodel.survey import SurveyDesign
from impactmodel.survey.replicates import ReplicateDesign

API = Path(__file__).resolve().parent / "reference" / "api"


@pytest.fixture(scope="module")
def clus1() -> pd.DataFrame:
    data = pd.read_csv(API / "apiclus1.csv")
    data["api_cat"] = pd.cut(data["api00"], [-np.inf, 600, 700, np.inf],
                             labels=["low", "mid", "high"])
    data["zero"] = 0.0
    return data


@pytest.fixture(scope="module")
def d(clus1) -> SurveyDesign:
    return SurveyDesign(clus1, ids="dnum", weights="pw", fpc="fpc")


TYPES = {"E": 4421, "H": 755, "M": 1018}

BAD_CALLS = {
    "empty table": lambda d, c: SurveyDesign(c.iloc[:0], ids="dnum", weights="pw"),
    "non-text ids": lambda d, c: SurveyDesign(c, ids=5, weights="pw"),
    "no variable": lambda d, c: d.mean([]),
    "repeated domain": lambda d, c: d.mean("api00", by=["stype", "stype"]),
    "level 2": lambda d, c: d.ratio("api.stu", "enroll", level=2),
    "no terms": lambda d, c: d.glm("api00 ~ 0"),
    "formula not text": lambda d, c: d.glm(None),
    "binomial outside [0,1]": lambda d, c: d.glm("api00 ~ meals", family="binomial"),
    "poisson negative": lambda d, c: d.glm("zero2 ~ meals", family="poisson"),
    "olr constant": lambda d, c: d.olr("api_cat ~ zero"),
    "calibrate nothing": lambda d, c: d.calibrate({}),
    "calibrate text total": lambda d, c: d.calibrate({"api99": "abc"}),
    "calibrate missing total": lambda d, c: d.calibrate({"api99": None}),
    "poststratify text totals": lambda d, c: d.poststratify({"stype": {"E": "a", "H": 1,
                                                                       "M": 2}}),
    "poststratify negative": lambda d, c: d.poststratify({"stype": {**TYPES, "E": -1}}),
    "poststratify numeric": lambda d, c: d.poststratify({"api99": 3914069}),
    "rake numeric": lambda d, c: d.rake({"api99": 3914069}),
    "rake variable with NaN": lambda d, c: d.rake({"acs.k3": {"20": 10}}),
    "frame only count": lambda d, c: d.poststratify(pd.DataFrame({"count": [1, 2]})),
    "frame duplicate cell": lambda d, c: d.poststratify(
        pd.DataFrame({"stype": ["E", "E", "H", "M"], "count": [1, 2, 3, 4]})),
    "trim text bound": lambda d, c: d.trim(upper="40"),
    "replicates text": lambda d, c: d.replicate("bootstrap", replicates="10"),
    "bad regex": lambda d, c: ReplicateDesign(c, weights="pw", repweights="([", kind="JK1"),
    "text replicate weights": lambda d, c: ReplicateDesign(c, weights="pw",
                                                           repweights=["stype"], kind="JK1"),
    "replicate ratio of text": lambda d, c: d.replicate("JK1").ratio("stype", "enroll"),
    "replicate ratio unknown": lambda d, c: d.replicate("JK1").ratio("nope", "enroll"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_call_raises_a_package_error(d, clus1, name):
    data = clus1.assign(zero2=-clus1["meals"])
    design = SurveyDesign(data, ids="dnum", weights="pw", fpc="fpc") if "poisson" in name else d
    with pytest.raises(ImpactModelError):
        BAD_CALLS[name](design, data)
