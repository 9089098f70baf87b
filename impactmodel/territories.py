"""French departments and regions (INSEE codes), from the bundled territory table.

Source: INSEE Code officiel géographique, copied from ``shared/reference/territories.csv``;
department adjacency computed from IGN Admin Express COG 2018 (Licence Ouverte / Etalab).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

from impactmodel.vocabulary import closest


@dataclass(frozen=True, slots=True)
class Department:
    """One department: its INSEE code and name, and its region's code and name."""

    code: str
    name: str
    region: str
    region_name: str


def _read_package_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("impactmodel").joinpath("_data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def departments() -> tuple[Department, ...]:
    """Return the 101 departments in INSEE order.

    Returns
    -------
    tuple of Department
    """
    return tuple(
        Department(r["department"], r["department_name"], r["region"], r["region_name"])
        for r in _read_package_csv("territories.csv")
    )


@cache
def department_codes() -> tuple[str, ...]:
    """Return the 101 department codes (``'01'`` .. ``'95'``, ``'2A'``, ``'2B'``, ``'971'`` ..)."""
    return tuple(d.code for d in departments())


@cache
def region_of() -> dict[str, str]:
    """Return the mapping department code -> region code."""
    return {d.code: d.region for d in departments()}


@cache
def region_names() -> dict[str, str]:
    """Return the mapping region code -> region name (18 regions)."""
    return {d.region: d.region_name for d in departments()}


@cache
def adjacency() -> tuple[tuple[str, str], ...]:
    """Return the pairs of departments that share a border (overseas departments have none)."""
    return tuple((r["department_a"], r["department_b"]) for r in _read_package_csv(
        "department_adjacency.csv"))


def normalise_department_code(value: object) -> str | None:
    """Return the INSEE department code that ``value`` denotes, or ``None`` if it is none.

    Codes are strings, but files written by Stata, SPSS or spreadsheets often hold them as
    numbers: ``1`` and ``1.0`` denote ``'01'``; ``'2a'`` denotes ``'2A'``.

    Parameters
    ----------
    value : object
        A cell of the territory column.

    Returns
    -------
    str or None
        The valid code, or ``None`` when ``value`` is not a department code.
    """
    valid = set(department_codes())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().upper()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    if text.isdigit() and len(text) == 1:
        text = "0" + text
    return text if text in valid else None


def suggest_department(value: object) -> str | None:
    """Return the valid department code closest to an invalid ``value``, if any.

    Numbers get the numerically nearest code of the same kind (metropolitan ``01``..``95``
    or overseas ``971``..``976``); ``20`` and ``2`` + letter (Corsica's former code and
    misspellings of it) get ``2A``; anything else the closest spelling.
    """
    text = str(value).strip().upper()
    if text.endswith(".0"):
        text = text[:-2]
    if text == "20" or (len(text) == 2 and text[0] == "2" and text[1].isalpha()):
        return "2A"
    if text.isdigit():
        number = int(text)
        pool = [c for c in department_codes() if c.isdigit() and (len(c) == 3) == (number > 100)]
        return min(pool, key=lambda c: (abs(int(c) - number), c))
    return closest(text, department_codes())
