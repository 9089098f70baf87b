"""The disclosure gate on a hand-made table whose outcome is worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from impactmodel.disclosure import DisclosureRules, apply_disclosure
from impactmodel.errors import SpecError


def table() -> pd.DataFrame:
    return pd.DataFrame({
        "region": ["A", "A", "A", "B", "B", "B", "C"],
        "department": ["d1", "d2", "d3", "d4", "d5", "d6", "d7"],
        "n": [5, 20, 30, 2, 8, 50, 40],
        "mean": [50.0, 55.0, 60.0, 40.0, 45.0, 10.0, 70.0],
        "sd": [5.0, 4.0, 3.0, 6.0, 5.0, 5.0, 2.0],
        "low": [42.0, 48.0, 55.0, 30.0, 37.0, 2.0, 67.0],
        "high": [58.0, 62.0, 65.0, 50.0, 53.0, 18.0, 73.0],
    })


def test_frequency_rule_secondary_suppression_and_reliability():
    out = apply_disclosure(table(), DisclosureRules(), groups=[["region"]]).set_index("department")
    assert out.loc["d1", "status"] == "suppressed (n < 11)"
    # region A has one suppressed department: its count would follow from the region's,
    # so the smallest other department (d2, n = 20) is suppressed too
    assert out.loc["d2", "status"] == "suppressed (secondary)"
    assert out.loc["d3", "status"] == "published"
    # region B has two suppressed departments: neither can be recovered from the total
    assert list(out.loc[["d4", "d5"], "status"]) == ["suppressed (n < 11)"] * 2
    assert out.loc["d6", "status"] == "unreliable"  # cv = 5 / 10 = 0.5 > 0.3
    assert out.loc["d7", "status"] == "published"
    hidden = ["d1", "d2", "d4", "d5"]
    assert out.loc[hidden, ["n", "mean", "sd", "low", "high"]].isna().all().all()
    assert out.loc["d6", "mean"] == 10.0 and out.loc["d3", "n"] == 30
    assert len(out) == 7  # shown as suppressed, never dropped
    # effects get no CV flag: d6's CV is 0.5, but an effect's CV means nothing
    effects = apply_disclosure(table(), DisclosureRules(), groups=[["region"]], value=None)
    assert effects.set_index("department").loc["d6", "status"] == "published"
    assert (effects["status"] == out.reset_index()["status"].replace(
        "unreliable", "published")).all()


def test_thresholds_are_configurable_but_never_below_three():
    out = apply_disclosure(table(), DisclosureRules(min_count=3, max_cv=0.6))
    assert list(out["status"]) == ["published"] * 3 + ["suppressed (n < 3)"] + [
        "published"] * 3
    assert np.isnan(out.loc[3, "mean"])
    with pytest.raises(SpecError, match="integer >= 3"):
        DisclosureRules(min_count=2)
    with pytest.raises(SpecError, match="max_cv must be positive"):
        DisclosureRules(max_cv=0)


def test_secondary_suppression_follows_every_published_margin():
    """A 2 x 2 table (populations P, Q x departments d1, d2) whose row and column totals
    are published: one cell under the threshold can be recovered from either margin, and
    suppressing a second cell for one margin exposes cells in the other — by hand, every
    cell must go."""
    cells = pd.DataFrame({"population": ["P", "P", "Q", "Q"],
                          "department": ["d1", "d2", "d1", "d2"],
                          "n": [5, 20, 30, 40], "mean": [50.0, 51.0, 52.0, 53.0],
                          "sd": [1.0, 1.0, 1.0, 1.0]})
    out = apply_disclosure(cells, DisclosureRules(),
                           groups=[["population"], ["department"]])
    assert list(out["status"]) == ["suppressed (n < 11)"] + ["suppressed (secondary)"] * 3
    # with one margin only (departments' totals), only the first department's pair goes
    one = apply_disclosure(cells, DisclosureRules(), groups=[["department"]])
    assert list(one["status"]) == ["suppressed (n < 11)", "published",
                                   "suppressed (secondary)", "published"]
