"""The model's axes, named as in ``DOMAIN.md``.

An impact measure lives in one cell of impact x lens x dimension (3 x 3 x 6 = 54 cells);
respondents belong to one of four populations.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Final

IMPACTS: Final = ("performance", "innovation", "trust")
LENSES: Final = ("ecosystem", "organisation", "individual")
DIMENSIONS: Final = ("political", "economic", "social", "environmental", "societal", "fulfilment")
POPULATIONS: Final = ("citizen", "elected", "business", "association")

AXES: Final[dict[str, tuple[str, ...]]] = {
    "impact": IMPACTS,
    "lens": LENSES,
    "dimension": DIMENSIONS,
    "population": POPULATIONS,
}

PRACTICE_TYPES: Final = ("binary", "ordinal", "count", "categorical")


def closest(value: object, choices: Iterable[str]) -> str | None:
    """Return the valid choice closest in spelling to ``value``, or ``None``.

    Parameters
    ----------
    value : object
        The value that was given (converted with ``str``).
    choices : iterable of str
        The valid values.

    Returns
    -------
    str or None
        The nearest valid value by :func:`difflib.get_close_matches`, if any is close enough.
    """
    matches = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None
