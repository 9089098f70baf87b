"""Model specifications: a TOML file that says which model to fit, on what, and how.

A specification is data, never code: it is parsed with :mod:`tomllib` and checked key by
key; every problem (unknown key with the closest valid one, bad value with the allowed
ones, a path leaving the specification's folder) is reported at once in one
:class:`~impactmodel.errors.ValidationError`. Sections::

    [model]        name (letters, digits, "-", "_"), description,
                   method = "bayesian" (default) | "design-based"
    [data]         respondents, codebook: paths relative to the specification's folder,
                   which they may not leave; both absent = the embedded example
    [outcome]      kind = "scale_scores" | "items"; impacts, lenses, dimensions (subsets
                   of the vocabulary's; default all)
    [predictors]   practices (default: every non-categorical one), covariates (categorical;
                   items: default the post-stratification variables; scale scores: none)
    [structure]    parametrisation = "auto" | "centred" | "non-centred";
                   correlated_traits (scale scores only); spatial = "none" | "bym2"
                   (scale scores: BYM2 department intercepts over the adjacency,
                   :mod:`impactmodel.bayes.spatial`)
    [priors]       any prior of the outcome's prior set, by name
                   (:class:`~impactmodel.bayes.priors.ScaleScorePriors` or
                   :class:`~impactmodel.bayes.priors.OrdinalPriors`)
    [sampler]      sampler, draws, tune, chains, seed, adaptation; target_accept,
                   max_depth and trajectory = "euclidean" | "microcanonical"
                   (default: the model's); draw_storage = "auto" | "memory" | "disk"
    [convergence]  max_rhat, min_ess_bulk, min_ess_tail, max_divergences, min_bfmi
    [weights]      treatment = "none" | "mrp" | "pseudo-posterior"; frame (MRP: the
                   post-stratification frame, :mod:`impactmodel.bayes.mrp`; default the
                   embedded example's, or ``--frame``) or joint + margins (a raked frame,
                   MrsP); MRP adds the post-stratification variables as covariates.
                   "pseudo-posterior": survey-weighted likelihood, draws adjusted to the
                   design-based sandwich (:mod:`impactmodel.bayes.pseudo_posterior`);
                   lonely_psu (its rule for strata with one PSU, default "fail");
                   calibration (the variables the weights were raked on within each
                   population, e.g. ["region", "age_group", "size_class"]: the design is
                   raked to the frame's totals so that J accounts for it; needs a frame)
    [design]       by, lonely_psu, level (design-based only:
                   :class:`~impactmodel.survey.impact.DesignOptions`)
    [disclosure]   min_count (>= 3), max_cv (:mod:`impactmodel.disclosure`)
    [report]       population, impact, practice, figures
                   (:class:`~impactmodel.report.options.ReportOptions`)

Everything absent takes the package default, and :meth:`ModelSpec.resolved` gives the
specification with every default filled in (what a run records).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from impactmodel.bayes.diagnostics import Thresholds
from impactmodel.bayes.gaussian import Parametrisation
from impactmodel.bayes.model_data import OutcomeSelection
from impactmodel.bayes.priors import OrdinalPriors, PriorError, ScaleScorePriors
from impactmodel.bayes.sampling import (
    ADAPTATIONS,
    DEFAULT_MAX_DEPTH,
    DEFAULT_TARGET_ACCEPT,
    DRAW_STORAGES,
    SAMPLERS,
    TRAJECTORIES,
    SamplerSettings,
    SamplingError,
)
from impactmodel.bayes.spatial import SPATIAL_STRUCTURES, Spatial
from impactmodel.disclosure import DisclosureRules
from impactmodel.errors import SpecError, ValidationError
from impactmodel.report.options import ReportOptions
from impactmodel.survey.impact import DesignOptions
from impactmodel.survey.variance import LONELY_PSU_RULES, LonelyPSU
from impactmodel.tomlfile import ProblemCollector, read_toml
from impactmodel.vocabulary import DIMENSIONS, IMPACTS, LENSES, POPULATIONS

Outcome = Literal["scale_scores", "items"]
OUTCOMES: tuple[str, ...] = ("scale_scores", "items")
WEIGHT_TREATMENTS: tuple[str, ...] = ("none", "mrp", "pseudo-posterior")
Method = Literal["bayesian", "design-based"]
METHODS: tuple[str, ...] = ("bayesian", "design-based")
#: sections that only a Bayesian model uses
_BAYESIAN_ONLY = ("predictors", "structure", "priors", "sampler", "convergence", "weights")
PARAMETRISATIONS: tuple[str, ...] = ("auto", "centred", "non-centred")

_SECTIONS = ("model", "data", "outcome", "predictors", "structure", "priors", "sampler",
             "convergence", "weights", "design", "disclosure", "report")
_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("name", "description", "method"),
    "data": ("respondents", "codebook"),
    "outcome": ("kind", "impacts", "lenses", "dimensions"),
    "predictors": ("practices", "covariates"),
    "structure": ("parametrisation", "correlated_traits", "spatial"),
    "sampler": tuple(f.name for f in fields(SamplerSettings)),
    "convergence": tuple(f.name for f in fields(Thresholds)),
    "weights": ("treatment", "frame", "joint", "margins", "lonely_psu", "calibration"),
    "design": tuple(f.name for f in fields(DesignOptions)),
    "disclosure": tuple(f.name for f in fields(DisclosureRules)),
    "report": tuple(f.name for f in fields(ReportOptions)),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ModelSpec:
    """A validated model specification (see the module docstring).

    Attributes
    ----------
    name, description : str
    method : {"bayesian", "design-based"}
    source : Path or None
        The file it was read from.
    respondents, codebook : Path or None
        Resolved data paths; None for the embedded example.
    outcome : {"scale_scores", "items"}
    selection : OutcomeSelection
        Impacts, lenses and dimensions modelled.
    practices : tuple of str or None
        None: every non-categorical practice of the codebook.
    covariates : tuple of str or None
        None: the codebook's post-stratification variables (item model).
    parametrisation : {"auto", "centred", "non-centred"}
    correlated_traits : bool
    spatial : {"none", "bym2"}
    priors : ScaleScorePriors or OrdinalPriors
        With the specification's overrides applied.
    sampler : SamplerSettings
    thresholds : Thresholds
    disclosure : DisclosureRules
    report : ReportOptions
    design : DesignOptions
        Used by design-based specifications only.
    weights : {"none", "mrp", "pseudo-posterior"}
    lonely_psu : {"fail", "certainty", "remove", "adjust", "average"}
        Pseudo-posterior: the rule for strata with one PSU when computing ``J``.
    calibration : tuple of str
        Pseudo-posterior: the variables the weights were raked on (within population), to
        the totals of the frame; empty when not calibrated.
    frame : Path or None
        The MRP frame file given by the specification.
    joint, margins : Path or None
        For a raked frame (MrsP): the national joint and the department margins.
    """

    name: str
    description: str
    source: Path | None
    respondents: Path | None
    codebook: Path | None
    outcome: Outcome
    selection: OutcomeSelection
    practices: tuple[str, ...] | None
    covariates: tuple[str, ...] | None
    parametrisation: Parametrisation
    correlated_traits: bool
    priors: ScaleScorePriors | OrdinalPriors
    sampler: SamplerSettings
    thresholds: Thresholds
    disclosure: DisclosureRules = field(default_factory=DisclosureRules)
    report: ReportOptions = field(default_factory=ReportOptions)
    method: Method = "bayesian"
    design: DesignOptions = field(default_factory=DesignOptions)
    weights: str = "none"
    lonely_psu: LonelyPSU = "fail"
    calibration: tuple[str, ...] = ()
    spatial: Spatial = "none"
    frame: Path | None = None
    joint: Path | None = None
    margins: Path | None = None

    def resolved(self) -> dict[str, Any]:
        """Return the specification with every default filled in, as plain values."""
        folder = self.source.resolve().parent if self.source is not None else None

        def shown(path: Path | None) -> str:
            if path is None:
                return "(embedded example)"
            return str(path.relative_to(folder)) if folder is not None else str(path)

        if self.method == "design-based":
            return {
                "model": {"name": self.name, "description": self.description,
                          "method": self.method},
                "data": {"respondents": shown(self.respondents),
                         "codebook": shown(self.codebook)},
                "outcome": {"kind": self.outcome, "impacts": list(self.selection.impacts),
                            "lenses": list(self.selection.lenses),
                            "dimensions": list(self.selection.dimensions)},
                "design": {**asdict(self.design), "by": list(self.design.by)},
                "disclosure": asdict(self.disclosure),
                "report": self.report.to_dict(),
            }
        return {
            "model": {"name": self.name, "description": self.description,
                      "method": self.method},
            "data": {"respondents": shown(self.respondents), "codebook": shown(self.codebook)},
            "outcome": {"kind": self.outcome, "impacts": list(self.selection.impacts),
                        "lenses": list(self.selection.lenses),
                        "dimensions": list(self.selection.dimensions)},
            "predictors": {"practices": list(self.practices) if self.practices is not None
                           else "(every non-categorical practice)",
                           "covariates": (
                               list(self.covariates) if self.covariates is not None
                               else "(the codebook's post-stratification variables)"
                               if self.outcome == "items" or self.weights == "mrp" else [])},
            "structure": {"parametrisation": self.parametrisation,
                          "correlated_traits": self.correlated_traits,
                          "spatial": self.spatial},
            "weights": {"treatment": self.weights,
                        "frame": (shown(self.frame) if self.frame is not None
                                  else "(raked: joint x margins, MrsP)"
                                  if self.joint is not None
                                  else "(the data's frame.csv, or --frame)"
                                  if self.weights == "mrp" or self.calibration else None),
                        "joint": shown(self.joint) if self.joint is not None else None,
                        "margins": (shown(self.margins) if self.margins is not None
                                    else None),
                        "lonely_psu": (self.lonely_psu if self.weights == "pseudo-posterior"
                                       else None),
                        "calibration": list(self.calibration)},
            "priors": asdict(self.priors),
            "sampler": asdict(self.sampler),
            "convergence": asdict(self.thresholds),
            "disclosure": asdict(self.disclosure),
            "report": self.report.to_dict(),
        }


def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate a model specification file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValidationError
        Listing every problem found, each naming its key, the bad value and what is
        allowed.
    """
    p = Path(path)
    return parse_spec(read_toml(p, "model specification"), p)


def parse_spec(raw: Mapping[str, Any], source: Path | None = None) -> ModelSpec:
    """Validate a parsed specification (see :func:`load_spec`).

    Parameters
    ----------
    raw : mapping
        The document, as :func:`tomllib.loads` returns it.
    source : Path, optional
        The file it came from: data paths are resolved in its folder. Without it, data
        paths are refused (the embedded example is used).
    """
    c = ProblemCollector(str(source) if source is not None else "<specification>")
    c.unknown_keys(raw, _SECTIONS, "")
    sections = {name: c.table(raw.get(name), name) for name in _SECTIONS}
    for name, allowed in _KEYS.items():
        c.unknown_keys(sections[name], allowed, name)

    model = sections["model"]
    name = c.string(model, "name", "model") or "model"
    if "name" in model and isinstance(model["name"], str) and not _NAME.match(model["name"]):
        c.add("model.name", "not usable as a folder name", got=model["name"],
              expected="1-64 letters, digits, '-' or '_', starting with a letter or digit")
    description = c.string(model, "description", "model", required=False) or ""
    method = c.choice(model.get("method", "bayesian"), METHODS, "model.method", "method")
    if method == "design-based":
        for section in _BAYESIAN_ONLY:
            if section in raw:
                c.add(section, "applies to Bayesian models only",
                      expected="no such section with model.method = 'design-based'")
    elif "design" in raw:
        c.add("design", "applies to design-based estimates only",
              expected="no [design] section, or model.method = 'design-based'")

    respondents, codebook = _data_paths(c, sections["data"], source)
    outcome = c.choice(sections["outcome"].get("kind", "scale_scores"), OUTCOMES,
                       "outcome.kind", "outcome")
    if method == "design-based" and outcome != "scale_scores":
        c.add("outcome.kind", "a design-based estimate averages scale scores", got=outcome,
              expected="'scale_scores' with model.method = 'design-based'")

    selection = _selection(c, sections["outcome"])
    predictors = sections["predictors"]
    practices = (c.strings(predictors, "practices", "predictors")
                 if "practices" in predictors else None)
    covariates = (c.strings(predictors, "covariates", "predictors")
                  if "covariates" in predictors else None)

    structure = sections["structure"]
    parametrisation = c.choice(structure.get("parametrisation", "auto"), PARAMETRISATIONS,
                               "structure.parametrisation", "parametrisation")
    correlated = structure.get("correlated_traits", False)
    if not isinstance(correlated, bool):
        c.add("structure.correlated_traits", "must be true or false", got=correlated)
        correlated = False
    if correlated and outcome == "items":
        c.add("structure.correlated_traits", "the item model always estimates the trait "
              "correlation", got=correlated, expected="no structure.correlated_traits "
              "with outcome.kind = 'items'")

    spatial = c.choice(structure.get("spatial", "none"), SPATIAL_STRUCTURES, "structure.spatial",
                       "spatial structure")
    if spatial == "bym2" and outcome == "items":
        c.add("structure.spatial", "BYM2 is available for the scale-score model",
              got=spatial, expected="outcome.kind = 'scale_scores'")

    defaults: ScaleScorePriors | OrdinalPriors = (
        OrdinalPriors() if outcome == "items" else ScaleScorePriors())
    try:
        priors = defaults.with_overrides(sections["priors"])
    except PriorError as exc:
        c.add("priors", str(exc))
        priors = defaults

    sampler = _settings(c, sections["sampler"])
    thresholds = _thresholds(c, sections["convergence"])
    weights, frame, joint, margins = _weights(c, sections["weights"], source, outcome)
    lonely_psu = _weights_lonely_psu(c, sections["weights"], weights)
    calibration = _weights_calibration(c, sections["weights"], weights)
    design = _design(c, sections["design"])
    disclosure = _disclosure(c, sections["disclosure"])
    report = _report(c, sections["report"], practices, selection)
    if c.problems:
        raise ValidationError(c.problems)
    return ModelSpec(name=name, description=description, source=source,
                     respondents=respondents, codebook=codebook,
                     outcome=outcome,  # type: ignore[arg-type]
                     selection=selection,
                     practices=practices, covariates=covariates,
                     parametrisation=parametrisation,  # type: ignore[arg-type]
                     correlated_traits=correlated, priors=priors, sampler=sampler,
                     thresholds=thresholds, disclosure=disclosure, report=report,
                     method=method, design=design,  # type: ignore[arg-type]
                     weights=weights, frame=frame, joint=joint, margins=margins,
                     lonely_psu=lonely_psu,  # type: ignore[arg-type]
                     calibration=calibration,
                     spatial=spatial)  # type: ignore[arg-type]


def _selection(c: ProblemCollector, table: Mapping[str, Any]) -> OutcomeSelection:
    """``[outcome]`` impacts, lenses and dimensions (each a non-empty subset, default all)."""
    chosen: dict[str, tuple[str, ...]] = {}
    for key, what, allowed in (("impacts", "impact", IMPACTS), ("lenses", "lens", LENSES),
                               ("dimensions", "dimension", DIMENSIONS)):
        if key not in table:
            chosen[key] = allowed
            continue
        values = c.strings(table, key, "outcome")
        for value in values:
            c.choice(value, allowed, f"outcome.{key}", what)
        if not values:
            c.add(f"outcome.{key}", "empty", expected=f"some of {', '.join(allowed)}")
        chosen[key] = tuple(v for v in values if v in allowed) or allowed
    return OutcomeSelection(**chosen)


def _weights_calibration(c: ProblemCollector, table: Mapping[str, Any], treatment: str
                         ) -> tuple[str, ...]:
    """``[weights] calibration``: the raking variables of a pseudo-posterior's weights."""
    if "calibration" not in table:
        return ()
    variables = tuple(c.strings(table, "calibration", "weights"))
    if treatment != "pseudo-posterior":
        c.add("weights.calibration", "applies to the pseudo-posterior only", got=variables,
              expected="weights.treatment = 'pseudo-posterior'")
    elif not variables:
        c.add("weights.calibration", "empty", expected='e.g. ["region", "age_group"]')
    return variables


def _weights_lonely_psu(c: ProblemCollector, table: Mapping[str, Any], treatment: str) -> str:
    """``[weights] lonely_psu``: the pseudo-posterior's lonely-PSU rule (default "fail")."""
    if "lonely_psu" not in table:
        return "fail"
    if treatment != "pseudo-posterior":
        c.add("weights.lonely_psu", "applies to the pseudo-posterior only",
              got=table["lonely_psu"], expected="weights.treatment = 'pseudo-posterior'")
        return "fail"
    rule = c.choice(table["lonely_psu"], LONELY_PSU_RULES, "weights.lonely_psu",
                    "lonely-PSU rule")
    return rule if rule in LONELY_PSU_RULES else "fail"


def _design(c: ProblemCollector, table: Mapping[str, Any]) -> DesignOptions:
    """``[design]`` as :class:`DesignOptions` (defaults for what is absent)."""
    d = DesignOptions()
    by = c.strings(table, "by", "design") if "by" in table else d.by
    lonely = c.choice(table.get("lonely_psu", d.lonely_psu), LONELY_PSU_RULES,
                      "design.lonely_psu", "lonely-PSU rule")
    level = _number(c, table, "level", "design", d.level, float, 0.0, low_open=True,
                    high=1.0)
    if lonely not in LONELY_PSU_RULES:
        return d
    return DesignOptions(by=by, lonely_psu=lonely, level=level)  # type: ignore[arg-type]


def _disclosure(c: ProblemCollector, table: Mapping[str, Any]) -> DisclosureRules:
    """``[disclosure]`` as :class:`DisclosureRules` (defaults for what is absent)."""
    d = DisclosureRules()
    min_count = _number(c, table, "min_count", "disclosure", d.min_count, int, 3)
    max_cv = _number(c, table, "max_cv", "disclosure", d.max_cv, float, 0.0, low_open=True)
    try:
        return DisclosureRules(min_count=min_count, max_cv=max_cv)
    except SpecError as exc:  # pragma: no cover - the checks above match the rules'
        c.add("disclosure", str(exc))
        return d


def _report(c: ProblemCollector, table: Mapping[str, Any],
            practices: tuple[str, ...] | None, selection: OutcomeSelection) -> ReportOptions:
    """``[report]`` as :class:`ReportOptions`; practice and impact must be modelled."""
    d = ReportOptions()
    population = (c.choice(table["population"], POPULATIONS, "report.population",
                           "population") if "population" in table else None)
    impact = (c.choice(table["impact"], IMPACTS, "report.impact", "impact")
              if "impact" in table else None)
    if impact is not None and impact in IMPACTS and impact not in selection.impacts:
        c.add("report.impact", "not one of the modelled impacts (outcome.impacts)",
              got=impact, expected=", ".join(selection.impacts))
    practice = c.string(table, "practice", "report", required=False)
    if practice is not None and practices is not None and practice not in practices:
        c.add("report.practice", "not one of the model's practices", got=practice,
              expected=", ".join(practices))
    figures = table.get("figures", d.figures)
    if not isinstance(figures, bool):
        c.add("report.figures", "must be true or false", got=figures)
        figures = d.figures
    return ReportOptions(population=population, impact=impact, practice=practice,
                         figures=figures)


def _data_paths(c: ProblemCollector, data: Mapping[str, Any], source: Path | None
                ) -> tuple[Path | None, Path | None]:
    """Resolve ``[data]`` paths inside the specification's folder (both or neither)."""
    given = {key: c.string(data, key, "data", required=False)
             for key in ("respondents", "codebook")}
    if not any(given.values()):
        return None, None
    if not all(given.values()):
        missing = [k for k, v in given.items() if not v]
        c.add(f"data.{missing[0]}", "missing: give both data files or neither",
              expected="respondents and codebook together (neither = the embedded example)")
        return None, None
    if source is None:
        c.add("data", "data paths need a specification file to be relative to")
        return None, None
    resolved = [_inside(c, f"data.{key}", str(value), source, "--data / --codebook")
                for key, value in given.items()]
    return resolved[0], resolved[1]


def _inside(c: ProblemCollector, key: str, value: str, source: Path, option: str
            ) -> Path | None:
    """Resolve ``value`` relative to the specification's folder, which it may not leave."""
    folder = source.resolve().parent
    relative = Path(value)
    target = (folder / relative).resolve()
    if relative.is_absolute() or not target.is_relative_to(folder):
        c.add(key, "path leaves the specification's folder", got=value,
              expected=f"a path inside {folder}",
              hint=f"copy or link the file next to the specification, or pass it with {option}")
        return None
    return target


def _weights(c: ProblemCollector, table: Mapping[str, Any], source: Path | None,
             outcome: str) -> tuple[str, Path | None, Path | None, Path | None]:
    """``[weights]``: the treatment and, for MRP, the frame file or joint + margins."""
    treatment = c.choice(table.get("treatment", "none"), WEIGHT_TREATMENTS,
                         "weights.treatment", "weight treatment")
    frame = c.string(table, "frame", "weights", required=False)
    raked = {key: c.string(table, key, "weights", required=False)
             for key in ("joint", "margins")}
    if any(raked.values()):
        if treatment != "mrp" or frame or not all(raked.values()):
            c.add("weights.joint", "a raked frame (MrsP) needs joint and margins, with "
                  "treatment 'mrp' and no frame", got=raked,
                  expected="treatment = 'mrp', joint = '<file>', margins = '<file>'")
            raked = {"joint": None, "margins": None}
        elif source is None:
            c.add("weights.joint", "paths need a specification file to be relative to")
            raked = {"joint": None, "margins": None}
    joint, margins = (None, None) if not all(raked.values()) else (
        _inside(c, "weights.joint", str(raked["joint"]), source, "--frame"),  # type: ignore[arg-type]
        _inside(c, "weights.margins", str(raked["margins"]), source, "--frame"))  # type: ignore[arg-type]
    if treatment == "pseudo-posterior" and outcome != "scale_scores":
        c.add("weights.treatment", "the pseudo-posterior is available for the scale-score "
              "model", got=treatment, expected="outcome.kind = 'scale_scores'")
    if treatment == "mrp" and outcome != "scale_scores":
        c.add("weights.treatment", "MRP is available for the scale-score model",
              got=treatment, expected="outcome.kind = 'scale_scores' with MRP (the "
              "ordinal model's post-stratification needs the trait integrated numerically: "
              "not done yet)")
    calibrated = treatment == "pseudo-posterior" and bool(table.get("calibration"))
    if frame and treatment != "mrp" and not calibrated:
        c.add("weights.frame", "a frame is used by MRP and by a calibrated pseudo-posterior "
              "only", got=frame,
              expected="weights.treatment = 'mrp', or calibration, or no frame")
    if not frame:
        return treatment, None, joint, margins
    if source is None:
        c.add("weights.frame", "a frame path needs a specification file to be relative to")
        return treatment, None, joint, margins
    return treatment, _inside(c, "weights.frame", frame, source, "--frame"), joint, margins


def _number(c: ProblemCollector, table: Mapping[str, Any], key: str, where: str,
            default: float, kind: type, low: float, low_open: bool = False,
            high: float | None = None) -> Any:
    """Return ``table[key]`` if a number of ``kind`` in range, else record a problem."""
    value = table.get(key, default)
    ok = (not isinstance(value, bool) and isinstance(value, int | float)
          and (kind is float or isinstance(value, int))
          and (value > low if low_open else value >= low) and (high is None or value < high))
    if not ok:
        bound = f"{'>' if low_open else '>='} {low}" + (f" and < {high}" if high else "")
        c.add(f"{where}.{key}", "bad value", got=value,
              expected=f"{'an integer' if kind is int else 'a number'} {bound}")
        return default
    return kind(value)


def _settings(c: ProblemCollector, table: Mapping[str, Any]) -> SamplerSettings:
    """``[sampler]`` as :class:`SamplerSettings` (defaults for what is absent)."""
    d = SamplerSettings()

    def pick(key: str, allowed: tuple[str, ...], default: Any) -> Any:
        # a value outside ``allowed`` is reported here once; the default stands in, so
        # that SamplerSettings reports only conflicts between valid values
        if key not in table:
            return default
        value = c.choice(table[key], allowed, f"sampler.{key}", key)
        return value if value in allowed else default

    values = {
        "sampler": pick("sampler", SAMPLERS, d.sampler),
        "adaptation": pick("adaptation", ADAPTATIONS, d.adaptation),
        "draws": _number(c, table, "draws", "sampler", d.draws, int, 1),
        "tune": _number(c, table, "tune", "sampler", d.tune, int, 0),
        "chains": _number(c, table, "chains", "sampler", d.chains, int, 1),
        "seed": _number(c, table, "seed", "sampler", d.seed, int, 0),
        "target_accept": (_number(c, table, "target_accept", "sampler",
                                  DEFAULT_TARGET_ACCEPT, float, 0.0, low_open=True, high=1.0)
                          if "target_accept" in table else None),
        "advi_iterations": _number(c, table, "advi_iterations", "sampler",
                                   d.advi_iterations, int, 1),
        "max_depth": (_number(c, table, "max_depth", "sampler", DEFAULT_MAX_DEPTH, int, 1)
                      if "max_depth" in table else None),
        "trajectory": pick("trajectory", TRAJECTORIES, None),
        "draw_storage": pick("draw_storage", DRAW_STORAGES, d.draw_storage),
    }
    try:
        return SamplerSettings(**values)
    except SamplingError as exc:
        c.add("sampler", str(exc))
        return d


def _thresholds(c: ProblemCollector, table: Mapping[str, Any]) -> Thresholds:
    """``[convergence]`` as :class:`Thresholds` (defaults for what is absent)."""
    d = Thresholds()
    return Thresholds(
        max_rhat=_number(c, table, "max_rhat", "convergence", d.max_rhat, float, 1.0,
                         low_open=True),
        min_ess_bulk=_number(c, table, "min_ess_bulk", "convergence", d.min_ess_bulk,
                             float, 0.0),
        min_ess_tail=_number(c, table, "min_ess_tail", "convergence", d.min_ess_tail,
                             float, 0.0),
        max_divergences=_number(c, table, "max_divergences", "convergence",
                                d.max_divergences, int, 0),
        min_bfmi=_number(c, table, "min_bfmi", "convergence", d.min_bfmi, float, 0.0))
