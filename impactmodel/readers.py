"""Read a respondent table from CSV, Parquet, SPSS ``.sav`` or Stata ``.dta``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from impactmodel.errors import Problem, ValidationError


def _read_csv(path: Path, text_columns: Iterable[str]) -> pd.DataFrame:
    # Identifier-like columns stay text so that codes such as '01' keep their zero.
    dtypes = dict.fromkeys(text_columns, str)
    return pd.read_csv(path, dtype=dtypes, keep_default_na=True)


def _read_parquet(path: Path, text_columns: Iterable[str]) -> pd.DataFrame:
    return pd.read_parquet(path)


def _read_sav(path: Path, text_columns: Iterable[str]) -> pd.DataFrame:
    return pd.read_spss(path, convert_categoricals=False)


def _read_dta(path: Path, text_columns: Iterable[str]) -> pd.DataFrame:
    return pd.read_stata(path, convert_categoricals=False)


READERS: dict[str, Callable[[Path, Iterable[str]], pd.DataFrame]] = {
    ".csv": _read_csv,
    ".parquet": _read_parquet,
    ".sav": _read_sav,
    ".dta": _read_dta,
}


def read_table(path: str | Path, text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read a respondent table, choosing the reader from the file's extension.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.parquet``, ``.sav`` (SPSS) or ``.dta`` (Stata) file.
    text_columns : iterable of str
        Columns to read as text where the format stores no types (CSV): ids and codes.

    Returns
    -------
    pandas.DataFrame
        The table with a fresh ``RangeIndex``.

    Raises
    ------
    ValidationError
        When the file is missing, has an unsupported extension, or cannot be parsed.
    """
    p = Path(path)
    reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise ValidationError([Problem(
            str(p), f"unsupported file type '{p.suffix}'",
            expected="one of " + ", ".join(READERS),
            hint="export the table to CSV or Parquet")])
    if not p.is_file():
        raise ValidationError([Problem(str(p), "file not found", expected="an existing file")])
    try:
        frame = reader(p, list(text_columns))
    except Exception as exc:  # each reader raises its own types; all mean "unreadable"
        raise ValidationError([Problem(
            str(p), f"cannot read the file as {p.suffix}: {type(exc).__name__}: {exc}",
            expected=f"a valid {p.suffix} file")]) from None
    return frame.reset_index(drop=True)
