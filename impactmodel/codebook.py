"""The codebook: a TOML file giving each column of a respondent table its role.

A codebook names the respondent id, population and territory columns, the design columns
(weight, strata, one PSU and fpc column per stage), the alliance-practice variables and
covariates, the answer scales, and each impact item's cell (impact x lens x dimension),
scale, reverse coding and the populations it was asked of. ``docs`` in the README shows a
complete example; :func:`load_codebook` validates it and reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impactmodel.errors import ValidationError
from impactmodel.tomlfile import ProblemCollector, read_toml
from impactmodel.vocabulary import (
    DIMENSIONS,
    IMPACTS,
    LENSES,
    POPULATIONS,
    PRACTICE_TYPES,
    closest,
)

Cell = tuple[str, str, str]
"""An impact x lens x dimension cell."""


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """A practice variable or covariate.

    Attributes
    ----------
    column : str
        Column name in the respondent table.
    type : str
        One of ``binary``, ``ordinal``, ``count``, ``categorical``.
    levels : tuple of str
        Ordered levels (ordinal) or allowed categories (categorical); empty otherwise.
    label : str
        Human-readable description.
    """

    column: str
    type: str
    levels: tuple[str, ...] = ()
    label: str = ""


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    """An answer scale: integer levels in order, and their labels."""

    name: str
    levels: tuple[int, ...]
    labels: tuple[str, ...] = ()

    @property
    def low(self) -> int:
        """Lowest level."""
        return self.levels[0]

    @property
    def high(self) -> int:
        """Highest level."""
        return self.levels[-1]


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """An impact item: a column measuring one impact x lens x dimension cell."""

    column: str
    impact: str
    lens: str
    dimension: str
    scale: ScaleSpec
    reverse: bool
    asked: tuple[str, ...]
    text: str = ""

    @property
    def cell(self) -> Cell:
        """The item's (impact, lens, dimension) cell."""
        return (self.impact, self.lens, self.dimension)


@dataclass(frozen=True, slots=True)
class DesignSpec:
    """Design columns: weight, strata, and one PSU / fpc column per sampling stage."""

    weight: str | None = None
    strata: str | None = None
    psu: tuple[str, ...] = ()
    fpc: tuple[str, ...] = ()

    def columns(self) -> list[str]:
        """All design columns named."""
        named = [self.weight, self.strata, *self.psu, *self.fpc]
        return [c for c in named if c]


@dataclass(frozen=True, slots=True)
class Codebook:
    """A validated codebook (see the module docstring for the file format)."""

    path: str
    title: str
    id: str
    population: str
    territory: str
    population_codes: Mapping[str, str]
    design: DesignSpec
    practices: tuple[VariableSpec, ...]
    covariates: tuple[VariableSpec, ...]
    scales: Mapping[str, ScaleSpec]
    items: tuple[ItemSpec, ...]
    poststratification: tuple[str, ...] = field(default=())

    def item(self, column: str) -> ItemSpec:
        """Return the item whose column is ``column``."""
        for spec in self.items:
            if spec.column == column:
                return spec
        raise KeyError(column)

    def items_asked_of(self, population: str) -> tuple[ItemSpec, ...]:
        """Return the items in the questionnaire of ``population``."""
        return tuple(i for i in self.items if population in i.asked)

    def column_roles(self) -> dict[str, str]:
        """Return every column the codebook names, with its role (for error messages)."""
        roles = {self.id: "survey.id", self.population: "survey.population",
                 self.territory: "survey.territory"}
        d = self.design
        if d.weight:
            roles[d.weight] = "design.weight"
        if d.strata:
            roles[d.strata] = "design.strata"
        roles.update({c: f"design.psu[{k}]" for k, c in enumerate(d.psu)})
        roles.update({c: f"design.fpc[{k}]" for k, c in enumerate(d.fpc)})
        roles.update({v.column: f"practices.{v.column}" for v in self.practices})
        roles.update({v.column: f"covariates.{v.column}" for v in self.covariates})
        roles.update({i.column: f"items.{i.column}" for i in self.items})
        return roles


# --- parsing ---------------------------------------------------------------------------

_TOP_KEYS = ("survey", "design", "practices", "covariates", "scales", "items",
             "poststratification")
_SURVEY_KEYS = ("title", "id", "population", "territory", "population_codes")
_DESIGN_KEYS = ("weight", "strata", "psu", "fpc")
_VARIABLE_KEYS = ("type", "levels", "label")
_SCALE_KEYS = ("levels", "labels")
_ITEM_KEYS = ("impact", "lens", "dimension", "scale", "reverse", "asked", "text")
_PS_KEYS = ("variables",)


def level_text(value: object) -> str:
    """Canonical text of a level, so that 2, 2.0 and '2' compare equal."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _parse_variables(c: ProblemCollector, raw: object, where: str) -> tuple[VariableSpec, ...]:
    specs = []
    for column, body in c.table(raw, where).items():
        key = f"{where}.{column}"
        body = c.table(body, key)
        c.unknown_keys(body, _VARIABLE_KEYS, key)
        kind = c.choice(body.get("type"), PRACTICE_TYPES, f"{key}.type", "variable type")
        levels_raw = body.get("levels", [])
        if not isinstance(levels_raw, list):
            c.add(f"{key}.levels", "must be a list", got=levels_raw)
            levels_raw = []
        levels = tuple(level_text(v) for v in levels_raw)
        if kind in ("ordinal", "categorical") and len(levels) < 2:
            c.add(f"{key}.levels", f"a {kind} variable needs its levels (at least two)",
                  got=levels_raw or None, expected="levels = [...] in order")
        if len(set(levels)) != len(levels):
            c.add(f"{key}.levels", "levels must be distinct", got=levels_raw)
        label = body.get("label", "")
        specs.append(VariableSpec(column, kind, levels, str(label)))
    return tuple(specs)


def _parse_scales(c: ProblemCollector, raw: object) -> dict[str, ScaleSpec]:
    scales = {}
    for name, body in c.table(raw, "scales").items():
        key = f"scales.{name}"
        body = c.table(body, key)
        c.unknown_keys(body, _SCALE_KEYS, key)
        levels = body.get("levels")
        if (not isinstance(levels, list) or len(levels) < 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in levels)
                or sorted(set(levels)) != levels):
            c.add(f"{key}.levels", "must list at least two increasing integers", got=levels,
                  expected="e.g. levels = [1, 2, 3, 4, 5]")
            levels = [1, 2]
        labels = body.get("labels", [])
        if labels and (not isinstance(labels, list) or len(labels) != len(levels)):
            c.add(f"{key}.labels", "must give one label per level", got=labels,
                  expected=f"{len(levels)} labels")
            labels = []
        scales[name] = ScaleSpec(name, tuple(levels), tuple(str(x) for x in labels))
    return scales


def _parse_items(c: ProblemCollector, raw: object, scales: Mapping[str, ScaleSpec]
                 ) -> tuple[ItemSpec, ...]:
    items = []
    axes = (("impact", IMPACTS), ("lens", LENSES), ("dimension", DIMENSIONS))
    for column, body in c.table(raw, "items").items():
        key = f"items.{column}"
        body = c.table(body, key)
        c.unknown_keys(body, _ITEM_KEYS, key)
        cell = []
        for axis, allowed in axes:
            if axis not in body:
                c.add(f"{key}.{axis}", "missing required key",
                      expected="one of " + ", ".join(allowed))
                cell.append("")
            else:
                cell.append(c.choice(body[axis], allowed, f"{key}.{axis}", axis))
        scale_name = body.get("scale")
        scale = scales.get(scale_name) if isinstance(scale_name, str) else None
        if scale is None:
            guess = closest(scale_name, scales) if isinstance(scale_name, str) else None
            c.add(f"{key}.scale", "unknown scale", got=scale_name,
                  expected="a scale defined under [scales]: " + (", ".join(scales) or "none"),
                  hint=f"did you mean '{guess}'?" if guess else None)
            scale = ScaleSpec("?", (1, 2))
        reverse = body.get("reverse", False)
        if not isinstance(reverse, bool):
            c.add(f"{key}.reverse", "must be true or false", got=reverse)
            reverse = False
        asked_raw = body.get("asked", list(POPULATIONS))
        if not isinstance(asked_raw, list) or not asked_raw:
            c.add(f"{key}.asked", "must list the populations asked", got=asked_raw,
                  expected="a non-empty list of " + ", ".join(POPULATIONS))
            asked_raw = []
        asked = tuple(c.choice(p, POPULATIONS, f"{key}.asked", "population") for p in asked_raw)
        items.append(ItemSpec(column, cell[0], cell[1], cell[2], scale, reverse, asked,
                              str(body.get("text", ""))))
    return tuple(items)


def parse_codebook(raw: Mapping[str, Any], path: str = "<codebook>") -> Codebook:
    """Validate a parsed TOML document into a :class:`Codebook`.

    Parameters
    ----------
    raw : mapping
        The document, as :func:`tomllib.loads` returns it.
    path : str
        Where it came from, for error messages.

    Returns
    -------
    Codebook

    Raises
    ------
    ValidationError
        Listing every problem found (unknown keys with the nearest valid key, unknown
        impact / lens / dimension / population, undefined scales, missing keys ...).
    """
    c = ProblemCollector(path)
    c.unknown_keys(raw, _TOP_KEYS, "")
    survey = c.table(raw.get("survey"), "survey")
    if "survey" not in raw:
        c.add("survey", "missing [survey] table", expected="id, population and territory keys")
    c.unknown_keys(survey, _SURVEY_KEYS, "survey")
    id_col = c.string(survey, "id", "survey") or ""
    pop_col = c.string(survey, "population", "survey") or ""
    terr_col = c.string(survey, "territory", "survey") or ""
    codes: dict[str, str] = {}
    for value, ident in c.table(survey.get("population_codes"), "survey.population_codes").items():
        codes[level_text(value)] = c.choice(ident, POPULATIONS,
                                             f"survey.population_codes.{value}", "population")
    design_raw = c.table(raw.get("design"), "design")
    c.unknown_keys(design_raw, _DESIGN_KEYS, "design")
    design = DesignSpec(
        weight=c.string(design_raw, "weight", "design", required=False),
        strata=c.string(design_raw, "strata", "design", required=False),
        psu=c.strings(design_raw, "psu", "design"),
        fpc=c.strings(design_raw, "fpc", "design"),
    )
    if design.fpc and len(design.fpc) != max(len(design.psu), 1):
        c.add("design.fpc", "needs one fpc column per sampling stage", got=list(design.fpc),
              expected=f"{max(len(design.psu), 1)} column(s), as many as design.psu")
    practices = _parse_variables(c, raw.get("practices"), "practices")
    covariates = _parse_variables(c, raw.get("covariates"), "covariates")
    scales = _parse_scales(c, raw.get("scales"))
    items = _parse_items(c, raw.get("items"), scales)
    if not items:
        c.add("items", "the codebook declares no impact item", expected="[items.<column>] tables")
    ps_raw = c.table(raw.get("poststratification"), "poststratification")
    c.unknown_keys(ps_raw, _PS_KEYS, "poststratification")
    ps_vars = c.strings(ps_raw, "variables", "poststratification")
    covariate_names = {v.column for v in covariates}
    for name in ps_vars:
        if name not in covariate_names:
            c.add("poststratification.variables", "names a variable that is not a covariate",
                  got=name,
                  expected="one of [covariates]: " + (", ".join(covariate_names) or "none"))
    seen: dict[str, str] = {}
    for section, columns in (("practices", [v.column for v in practices]),
                             ("covariates", [v.column for v in covariates]),
                             ("items", [i.column for i in items])):
        for col in columns:
            if col in seen:
                c.add(f"{section}.{col}", f"column already declared in [{seen[col]}]", got=col)
            seen[col] = section
    if c.problems:
        raise ValidationError(c.problems)
    return Codebook(path, str(survey.get("title", "")), id_col, pop_col, terr_col, codes,
                    design, practices, covariates, scales, items, ps_vars)


def load_codebook(path: str | Path) -> Codebook:
    """Read and validate a codebook TOML file.

    Parameters
    ----------
    path : str or Path
        The codebook file.

    Returns
    -------
    Codebook

    Raises
    ------
    ValidationError
        When the file is missing, is not valid TOML, or breaks the codebook schema.
    """
    return parse_codebook(read_toml(path, "codebook"), str(path))


# --- writing ---------------------------------------------------------------------------

def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to a codebook")


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum()
    return key if bare else _toml_value(key)


def _toml_table(name: str, body: Mapping[str, object]) -> list[str]:
    lines = [f"[{name}]"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items()
              if v is not None and v != "" and v != []]
    return [*lines, ""]


def dump_codebook(codebook: Codebook) -> str:
    """Return the TOML text of ``codebook`` (what :func:`load_codebook` reads back).

    Parameters
    ----------
    codebook : Codebook

    Returns
    -------
    str
    """
    lines = [f"# Codebook: {codebook.title}" if codebook.title else "# Codebook", ""]
    lines += _toml_table("survey", {"title": codebook.title, "id": codebook.id,
                                    "population": codebook.population,
                                    "territory": codebook.territory})
    if codebook.population_codes:
        lines += _toml_table("survey.population_codes", dict(codebook.population_codes))
    d = codebook.design
    lines += _toml_table("design", {"weight": d.weight, "strata": d.strata, "psu": list(d.psu),
                                    "fpc": list(d.fpc)})
    for section, specs in (("practices", codebook.practices), ("covariates", codebook.covariates)):
        for v in specs:
            lines += _toml_table(f"{section}.{_toml_key(v.column)}",
                                 {"type": v.type, "levels": list(v.levels), "label": v.label})
    for s in codebook.scales.values():
        lines += _toml_table(f"scales.{_toml_key(s.name)}",
                             {"levels": list(s.levels), "labels": list(s.labels)})
    for i in codebook.items:
        lines += _toml_table(f"items.{_toml_key(i.column)}", {
            "impact": i.impact, "lens": i.lens, "dimension": i.dimension, "scale": i.scale.name,
            "reverse": i.reverse, "asked": list(i.asked), "text": i.text})
    if codebook.poststratification:
        lines += _toml_table("poststratification",
                             {"variables": list(codebook.poststratification)})
    return "\n".join(lines)
