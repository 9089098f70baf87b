"""Direct and model-based estimates side by side, on tables worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from impactmodel.compare import direct_vs_model


def test_side_by_side_join_shift_and_reliability():
    direct = pd.DataFrame({
        "population": ["citizen"] * 4, "department": ["01", "01", "02", "03"],
        "cell": ["trust", "trust:ecosystem:social", "trust", "trust"],
        "estimate": [60.0, 99.0, 50.0, 40.0], "se": [6.0, 1.0, 20.0, 4.0],
        "deff": [1.2, 1.0, 0.9, 1.5], "n": [30, 30, 4, 1]})
    model = pd.DataFrame({
        "population": ["citizen"] * 4, "department": ["01", "02", "03", "04"],
        "impact": ["trust"] * 4, "mean": [58.0, 55.0, 45.0, 52.0], "sd": [2.0, 4.0, 3.0, 5.0],
        "low": [54.0, 48.0, 40.0, 44.0], "high": [62.0, 62.0, 50.0, 60.0]})
    table = direct_vs_model(direct, model, ["population", "department", "impact"]
                            ).set_index("department")
    assert list(table.index) == ["01", "02", "03", "04"]  # every model domain, in order
    assert table.loc["01", "direct"] == 60.0  # the impact row, not the cell row
    assert table.loc["01", "shift"] == pytest.approx(-2.0)
    assert table.loc["01", "direct_cv"] == pytest.approx(0.1)
    assert table.loc["01", "se_ratio"] == pytest.approx(2.0 / 6.0)
    assert table.loc["02", "direct_cv"] == pytest.approx(0.4)  # 20 / 50 > 0.3
    assert list(table["direct_reliability"]) == ["reliable", "unreliable", "unreliable",
                                                 "no respondents"]  # 03: n = 1
    assert table.loc["04", "n"] == 0 and np.isnan(table.loc["04", "direct"])
    assert table.loc["04", "model"] == 52.0
