"""The validated, typed survey: what every later step (design, models, reports) takes."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from impactmodel.codebook import Codebook, ItemSpec

ITEM_STATUSES = ("answered", "nonresponse", "not_asked")


@dataclass(frozen=True)
class SurveyData:
    """A respondent table that passed validation against its codebook.

    Treat ``frame`` as read-only: derive new frames rather than editing it.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per respondent, with typed columns: the population column holds the
        identifiers ``citizen``, ``elected``, ``business``, ``association`` (categorical);
        the territory column holds INSEE department codes (categorical) and a derived
        ``region`` column holds INSEE region codes; weights are floats; binary practices
        nullable ``Int8``; ordinal practices ordered categoricals; counts nullable ``Int64``;
        items floats with ``NaN`` where there is no answer.
    codebook : Codebook
        The codebook the table was validated against.
    source : str
        Path of the respondent table.
    fingerprint : str
        SHA-256 of the table's bytes and the codebook's bytes, to trace results to inputs.
    """

    frame: pd.DataFrame
    codebook: Codebook
    source: str
    fingerprint: str

    @property
    def n_respondents(self) -> int:
        """Number of respondents."""
        return len(self.frame)

    @property
    def population(self) -> pd.Series:
        """Each respondent's population identifier."""
        return self.frame[self.codebook.population]

    @property
    def department(self) -> pd.Series:
        """Each respondent's department code."""
        return self.frame[self.codebook.territory]

    @property
    def region(self) -> pd.Series:
        """Each respondent's region code (derived from the department)."""
        return self.frame["region"]

    @property
    def weight(self) -> pd.Series:
        """Each respondent's survey weight (1.0 when the codebook names none)."""
        col = self.codebook.design.weight
        if col is None:
            return pd.Series(1.0, index=self.frame.index, name="weight")
        return self.frame[col]

    def asked(self, item: ItemSpec | str) -> pd.Series:
        """Return whether each respondent's questionnaire contained ``item``.

        Parameters
        ----------
        item : ItemSpec or str
            The item, or its column name.

        Returns
        -------
        pandas.Series of bool
        """
        spec = self.codebook.item(item) if isinstance(item, str) else item
        return self.population.isin(spec.asked).astype(bool)

    def item_status(self) -> pd.DataFrame:
        """Return, per respondent and item, ``answered``, ``nonresponse`` or ``not_asked``.

        Missing by design (the item was not in the respondent's questionnaire) is kept
        distinct from item non-response (asked, but no answer).

        Returns
        -------
        pandas.DataFrame
            One categorical column per item.
        """
        status = {}
        for item in self.codebook.items:
            asked = self.asked(item)
            answered = self.frame[item.column].notna()
            values = pd.Series("nonresponse", index=self.frame.index)
            values[answered] = "answered"
            values[~asked] = "not_asked"
            status[item.column] = pd.Categorical(values, categories=ITEM_STATUSES)
        return pd.DataFrame(status, index=self.frame.index)
