"""Reading TOML documents (codebooks, model specifications) and gathering their problems.

Nothing in a TOML file is executed: :func:`read_toml` parses it with :mod:`tomllib`,
and :class:`ProblemCollector` checks keys and values, collecting every problem so that
one :class:`~impactmodel.errors.ValidationError` reports them all.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from impactmodel.errors import Problem, ValidationError
from impactmodel.vocabulary import closest


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse the TOML file at ``path`` (a ``what``, e.g. "codebook", for messages).

    Raises
    ------
    ValidationError
        When the file cannot be read or is not valid TOML.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError([Problem(str(p), f"cannot read the {what}: {exc.strerror}",
                                       expected="a readable TOML file")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError([Problem(str(p), f"not valid TOML: {exc}",
                                       expected=f"a TOML {what}")]) from None


class ProblemCollector:
    """Gathers the problems of one TOML document, so that all are reported at once.

    Keys are reported dotted (``sampler.draws``); unknown keys get the closest valid one.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, key: str, title: str, got: object = None, expected: str | None = None,
            hint: str | None = None) -> None:
        """Record a problem at dotted ``key``; ``got`` is shown as its repr."""
        values = () if got is None else (repr(got),)
        self.problems.append(Problem(self.file, title, column=key, values=values,
                                     expected=expected, hint=hint))

    def unknown_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        """Record every key of ``table`` not in ``allowed``, with the closest valid one."""
        for key in table:
            if key not in allowed:
                guess = closest(key, allowed)
                self.add(f"{where}.{key}" if where else key, "unknown key", got=key,
                         expected="one of " + ", ".join(allowed),
                         hint=f"did you mean '{guess}'?" if guess else None)

    def table(self, value: object, where: str) -> dict[str, Any]:
        """Return ``value`` if it is a table (``{}`` when absent), else record a problem."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(where, "must be a table", got=value, expected=f"[{where}] table")
            return {}
        return value

    def string(self, table: Mapping[str, Any], key: str, where: str,
               required: bool = True) -> str | None:
        """Return ``table[key]`` if a non-empty string, else record a problem (None)."""
        value = table.get(key)
        if value is None:
            if required:
                self.add(f"{where}.{key}", "missing required key", expected="a column name")
            return None
        if not isinstance(value, str) or not value:
            self.add(f"{where}.{key}", "must be a non-empty string", got=value)
            return None
        return value

    def strings(self, table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        """Return ``table[key]`` as a tuple of non-empty strings (a single string allowed)."""
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(f"{where}.{key}", "must be a column name or a list of column names",
                     got=value)
            return ()
        return tuple(value)

    def choice(self, value: object, allowed: tuple[str, ...], key: str, what: str) -> str:
        """Return ``value`` if in ``allowed``, else record a problem (with a guess)."""
        if isinstance(value, str) and value in allowed:
            return value
        guess = closest(value, allowed) if isinstance(value, str) else None
        self.add(key, f"unknown {what}", got=value, expected="one of " + ", ".join(allowed),
                 hint=f"did you mean '{guess}'?" if guess else None)
        return str(value)


