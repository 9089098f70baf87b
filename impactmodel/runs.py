"""Versioned, immutable runs: everything needed to trace a published figure to its model.

A fit is written to ``<root>/<model name>/<version>/`` where the version
``YYYYMMDD-HHMMSS-ffffff-<hash>`` sorts by creation time and ends with a short hash of
the resolved specification and the input data. A run holds:

- ``manifest.json`` — package and dependency versions, the specification as resolved and
  its hash, fingerprints (SHA-256, size) of the data and codebook, sampler settings and
  seed, timings, convergence diagnostics and status, the disclosure rules applied, the
  project's git commit (if any) and the SHA-256 of every other file of the run;
- ``posterior.nc`` — the ArviZ ``DataTree`` (netCDF, h5netcdf engine);
- ``tables/<name>.parquet`` and ``.csv`` — tidy summaries, per-population and
  per-territory ones through the disclosure gate (:mod:`impactmodel.disclosure`);
- ``report/`` — the HTML report, its figures and tables (:mod:`impactmodel.report`).

Writes are atomic: the run is assembled in a hidden ``.partial-*`` folder and renamed
into place only when complete, so an interrupted fit leaves nothing that
:func:`list_runs` would show; an existing run is never overwritten. :func:`load_run`
reads JSON, netCDF and Parquet only (nothing is unpickled).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from impactmodel.bayes.fit import ItemFit, ScaleScoreFit
from impactmodel.bayes.mrp import PoststratificationFrame, poststratify
from impactmodel.compare import direct_vs_model
from impactmodel.disclosure import DisclosureRules, apply_disclosure
from impactmodel.errors import ImpactModelError
from impactmodel.report.build import build_report
from impactmodel.specification import ModelSpec
from impactmodel.survey.impact import DesignEstimates
from impactmodel.territories import region_of

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
POSTERIOR = "posterior.nc"
PARTIAL_PREFIX = ".partial-"
REPORT_FOLDER = "report"
DEPENDENCIES = ("numpy", "pandas", "scipy", "statsmodels", "pymc", "pytensor", "nutpie",
                "arviz", "xarray", "pyarrow", "h5netcdf")


#: what a run can hold: a Bayesian fit or a design-based estimate
Result = ScaleScoreFit | ItemFit | DesignEstimates


class RunError(ImpactModelError):
    """A run cannot be written, found or read."""


@dataclass(frozen=True)
class Run:
    """A run read back from disk.

    Attributes
    ----------
    path : Path
    manifest : dict
    posterior : xarray.DataTree or None
        None for a design-based run.
    tables : dict of str to pandas.DataFrame
    """

    path: Path
    manifest: dict[str, Any]
    posterior: xr.DataTree | None
    tables: dict[str, pd.DataFrame]


def sha256_of(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: Path) -> dict[str, object]:
    """Path, size and SHA-256 of an input file."""
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_of(path)}


def dependency_versions() -> dict[str, str]:
    """Versions of Python, the package and its key dependencies."""
    versions = {"python": platform.python_version(),
                "impactmodel": metadata.version("impactmodel")}
    for name in DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_state(folder: Path) -> dict[str, object] | None:
    """Return the git commit of ``folder``'s repository and whether it has local changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=folder, check=True,
                                capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "local_changes": bool(status.strip())}


def design_tables(result: DesignEstimates, rules: DisclosureRules) -> dict[str, pd.DataFrame]:
    """Gate a design-based estimate: ``domain_estimates``.

    Secondary suppression works within the domains that share every domain variable but
    the last, for one score (e.g. the regions of one population: their counts add up to
    the population's).
    """
    by = list(result.options.by)
    return {"domain_estimates": apply_disclosure(
        result.table, rules, estimates=("estimate", "se", "ci_low", "ci_high", "deff",
                                        "deff_kish", "weighted_n"),
        groups=[[*by[:-1], "cell"]], value="estimate", spread="se")}


def side_by_side(direct: pd.DataFrame, model: pd.DataFrame, rules: DisclosureRules
                 ) -> pd.DataFrame:
    """Direct and model-based scores per population x department x impact, gated.

    :func:`impactmodel.compare.direct_vs_model` (SE, CV, design effect beside the
    posterior, the shift and a reliability flag), with secondary suppression within
    population x region x impact and within department x impact.
    """
    side = direct_vs_model(direct, model, ["population", "department", "impact"],
                           max_cv=rules.max_cv)
    side.insert(2, "region", side["department"].map(region_of()))
    return apply_disclosure(
        side, rules, estimates=("direct", "direct_se", "direct_cv", "deff", "model",
                                "model_sd", "model_low", "model_high", "shift", "se_ratio"),
        groups=[["population", "region", "impact"], ["department", "impact"]],
        value="model", spread="model_sd")


def mrp_tables(fit: ScaleScoreFit, frame: PoststratificationFrame, rules: DisclosureRules,
               direct: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Post-stratified scores (:mod:`impactmodel.bayes.mrp`) through the gate.

    ``mrp_department`` (secondary suppression within population x region x impact and
    within department x impact), ``mrp_region`` (within population x impact) and
    ``mrp_population``; ``n`` is the respondents behind each row, ``frame_count`` the
    people of the frame. With ``direct`` (design-based estimates by population x
    department, :func:`~impactmodel.survey.impact.impact_score_table`) also
    ``direct_vs_mrp_department`` (:func:`impactmodel.compare.direct_vs_model`).
    """
    scores = poststratify(fit, frame)
    department = scores["department"]
    department.insert(2, "region", department["department"].map(region_of()))
    extra = {}
    if direct is not None:
        extra["direct_vs_mrp_department"] = side_by_side(
            direct, scores["department"].drop(columns="region"), rules)
    return {**extra,
        "mrp_department": apply_disclosure(department, rules, groups=[
            ["population", "region", "impact"], ["department", "impact"]]),
        "mrp_region": apply_disclosure(scores["region"], rules,
                                       groups=[["population", "impact"]]),
        "mrp_population": apply_disclosure(scores["population"], rules),
    }


def run_tables(fit: Result, rules: DisclosureRules) -> dict[str, pd.DataFrame]:
    """Build the summary tables of a run, per-population and per-territory ones gated.

    Parameters
    ----------
    fit : ScaleScoreFit or ItemFit
    rules : DisclosureRules

    Returns
    -------
    dict of str to pandas.DataFrame
        ``effect_cell`` (not respondent-based: no gate), ``effect_population``,
        ``effect_population_impact`` and ``effect_population_cell``
        (:meth:`population_impact_effects`, :meth:`population_cell_effects`),
        ``predictive_check`` (posterior predictive check per population x impact, 100
        draws), ``effect_region``, ``effect_department`` and, for the scale-score model,
        ``expected_scores_region`` and ``expected_scores_department``, each with the
        respondents behind each row (``n``) and a ``status``; for a weighted
        pseudo-posterior, ``pseudo_posterior_adjustment`` (per adjusted global parameter:
        pseudo-posterior and adjusted sd, their variance ratio); for a design-based
        estimate, :func:`design_tables`.
    """
    if isinstance(fit, DesignEstimates):
        return design_tables(fit, rules)
    d = fit.data
    coords = d.coords
    region_of_resp = d.department_region[d.department]
    respondents = pd.DataFrame({
        "population": np.asarray(coords["population"])[d.population],
        "region": np.asarray(coords["region"])[region_of_resp],
        "department": np.asarray(coords["department"])[d.department]})
    region_of_department = dict(zip(coords["department"],
                                    np.asarray(coords["region"])[d.department_region],
                                    strict=True))

    def with_counts(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        n = respondents.groupby(keys).size().rename("n").reset_index()
        out = table.merge(n, on=keys, how="left")
        out["n"] = out["n"].fillna(0).astype(int)
        return out

    tables = {"effect_cell": fit.effects("effect_cell")}
    no_cv = None  # effects get no CV flag (see impactmodel.disclosure)
    tables["effect_population"] = apply_disclosure(
        with_counts(fit.effects("effect_population"), ["population"]), rules, value=no_cv)
    tables["effect_population_impact"] = apply_disclosure(
        with_counts(fit.population_impact_effects(), ["population"]), rules, value=no_cv)
    tables["effect_population_cell"] = apply_disclosure(
        with_counts(fit.population_cell_effects(), ["population"]), rules, value=no_cv)
    tables["predictive_check"] = apply_disclosure(
        with_counts(fit.predictive_check(max_draws=100), ["population"]), rules,
        estimates=("observed", "replicated", "low", "high", "p_value"))
    tables["effect_region"] = apply_disclosure(
        with_counts(fit.effects("effect_region"), ["region"]), rules, value=no_cv)
    department = fit.effects("effect_department")
    department.insert(1, "region", department["department"].map(region_of_department))
    tables["effect_department"] = apply_disclosure(
        with_counts(department, ["department"]), rules, groups=[["practice", "region"]],
        value=no_cv)
    if isinstance(fit, ScaleScoreFit):
        tables["expected_scores_region"] = apply_disclosure(
            with_counts(fit.expected_scores("region"), ["population", "region"]), rules)
        scores = fit.expected_scores("department")
        scores.insert(2, "region", scores["department"].map(region_of_department))
        tables["expected_scores_department"] = apply_disclosure(
            with_counts(scores, ["population", "department"]), rules,
            groups=[["population", "region", "impact"], ["department", "impact"]])
        if fit.design_adjustment is not None:
            tables["pseudo_posterior_adjustment"] = fit.design_adjustment.table()
    return tables


def _version(spec_hash: str, data_hashes: list[str], now: datetime) -> str:
    digest = hashlib.sha256("\n".join([spec_hash, *data_hashes]).encode()).hexdigest()
    return f"{now:%Y%m%d-%H%M%S-%f}-{digest[:8]}"


def write_run(fit: Result, spec: ModelSpec, *, respondents: Path,
              codebook: Path, root: Path, timings: Mapping[str, float],
              rules: DisclosureRules | None = None, report: bool = True,
              frame: PoststratificationFrame | None = None,
              direct: pd.DataFrame | None = None) -> Path:
    """Write ``fit`` as a new immutable run under ``root`` (see the module docstring).

    Parameters
    ----------
    fit : ScaleScoreFit, ItemFit or DesignEstimates
    spec : ModelSpec
        The specification the fit followed.
    respondents, codebook : Path
        The input files actually used (fingerprinted).
    root : Path
        The results folder; the run goes to ``root / spec.name / <version>``.
    timings : mapping of str to float
        Seconds per step (load, fit, ...), recorded as given.
    rules : DisclosureRules, optional
        Default: the specification's.
    report : bool
        Also write the report (:mod:`impactmodel.report`) into ``report/``.
    frame : PoststratificationFrame, optional
        For MRP: the post-stratified tables are added and the frame file fingerprinted.
    direct : pandas.DataFrame, optional
        Design-based estimates by population x department
        (:func:`~impactmodel.survey.impact.impact_score_table`), set side by side with the
        post-stratified scores (MRP: ``direct_vs_mrp_department``) or the model's expected
        scores (other scale-score fits: ``direct_vs_model_department``).

    Returns
    -------
    Path
        The run's folder.

    Raises
    ------
    RunError
        When the run exists already or cannot be written (nothing is left behind).
    """
    gate = rules or spec.disclosure
    resolved = spec.resolved()
    spec_hash = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()
    inputs = {"respondents": fingerprint(respondents), "codebook": fingerprint(codebook)}
    if frame is not None:
        if not isinstance(fit, ScaleScoreFit):
            raise RunError("a frame (MRP, calibration) needs the scale-score model")
        inputs.update({role: fingerprint(Path(path)) for role, path in frame.files.items()})
    now = datetime.now(UTC)
    version = _version(spec_hash, [str(v["sha256"]) for v in inputs.values()], now)
    model_folder = root / spec.name
    final = model_folder / version
    partial = model_folder / f"{PARTIAL_PREFIX}{version}"
    if final.exists():
        raise RunError(f"run {final} exists already; runs are never overwritten")
    try:
        (partial / "tables").mkdir(parents=True)
        bayesian = not isinstance(fit, DesignEstimates)
        if not isinstance(fit, DesignEstimates):
            fit.idata.to_netcdf(partial / POSTERIOR, engine="h5netcdf")
        tables = run_tables(fit, gate)
        if spec.weights == "mrp" and frame is not None and isinstance(fit, ScaleScoreFit):
            tables.update(mrp_tables(fit, frame, gate, direct))
        elif direct is not None and isinstance(fit, ScaleScoreFit):  # expected scores
            tables["direct_vs_model_department"] = side_by_side(
                direct, fit.expected_scores("department"), gate)
        for name, table in tables.items():
            table.to_parquet(partial / "tables" / f"{name}.parquet", index=False)
            table.to_csv(partial / "tables" / f"{name}.csv", index=False)
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "run": {"model": spec.name, "version": version, "created": now.isoformat(),
                    "status": _status(fit)},
            "versions": dependency_versions(),
            "git": git_state(Path(__file__).resolve().parent),
            "spec": {"resolved": resolved, "sha256": spec_hash,
                     "file": str(spec.source) if spec.source is not None else None},
            "data": {**inputs, **({"frame_source": frame.source} if frame else {}),
                     "respondents_in_model": (
                fit.respondents if isinstance(fit, DesignEstimates)
                else len(fit.data.population))},
            "seed": spec.sampler.seed if bayesian else None,
            # as applied: the tree depth the model chose when the specification did not
            "sampler": (asdict(fit.settings) if not isinstance(fit, DesignEstimates)
                        else resolved.get("sampler")),
            "timings_seconds": dict(timings),
            "convergence": (None if isinstance(fit, DesignEstimates)
                            else fit.convergence.to_dict()),
            "disclosure": gate.to_dict(),
        }
        if isinstance(fit, ScaleScoreFit) and fit.design_adjustment is not None:
            manifest["pseudo_posterior"] = fit.design_adjustment.summary()
        if report:
            build_report(Run(partial, manifest, None if isinstance(fit, DesignEstimates)
                             else fit.idata, tables), partial / REPORT_FOLDER)
        manifest["files"] = {str(p.relative_to(partial)): sha256_of(p)
                             for p in sorted(partial.rglob("*")) if p.is_file()}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str),
                                        encoding="utf-8")
        os.rename(partial, final)  # atomic on one filesystem; fails if final exists
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise RunError(f"cannot write the run to {final}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def _status(result: Result) -> str:
    if isinstance(result, DesignEstimates):
        return "design-based"
    return "converged" if result.convergence.converged else "not converged"


def list_runs(root: Path) -> pd.DataFrame:
    """Complete runs under ``root``, oldest first (partial folders are not runs).

    Returns
    -------
    pandas.DataFrame
        Columns ``model, version, created, status, outcome, seed, path``.
    """
    rows = []
    for manifest_path in sorted(root.glob(f"*/*/{MANIFEST}")):
        folder = manifest_path.parent
        if folder.name.startswith("."):
            continue
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        rows.append({"model": manifest["run"]["model"], "version": manifest["run"]["version"],
                     "created": manifest["run"]["created"], "status": manifest["run"]["status"],
                     "outcome": manifest["spec"]["resolved"]["outcome"]["kind"],
                     "seed": manifest["seed"], "path": str(folder)})
    columns = ["model", "version", "created", "status", "outcome", "seed", "path"]
    return pd.DataFrame(rows, columns=columns).sort_values("version", ignore_index=True)


def load_run(path: str | Path) -> Run:
    """Read a run (manifest, posterior, tables) for a notebook; nothing is unpickled.

    Raises
    ------
    RunError
        When ``path`` is not a complete run.
    """
    folder = Path(path)
    manifest_path = folder / MANIFEST
    if folder.name.startswith(PARTIAL_PREFIX) or not manifest_path.is_file():
        raise RunError(f"{folder} is not a complete run (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    posterior = (xr.open_datatree(folder / POSTERIOR, engine="h5netcdf")
                 if (folder / POSTERIOR).is_file() else None)
    tables = {p.stem: pd.read_parquet(p) for p in sorted((folder / "tables").glob("*.parquet"))}
    return Run(folder, manifest, posterior, tables)


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def diff_runs(first: Run, second: Run, table: str | None = None) -> dict[str, Any]:
    """Compare two runs: what changed and how the key estimates moved.

    Returns
    -------
    dict
        ``spec`` (key -> (first, second) for every differing resolved setting),
        ``data`` (input -> whether its SHA-256 changed), ``versions`` (package ->
        (first, second) where different) and ``estimates``: the rows of ``table``
        joined on their labels with the shift of the posterior mean (or design-based
        estimate), largest first. ``table`` defaults to ``effect_cell``, else
        ``domain_estimates``.
    """
    if table is None:
        table = "effect_cell" if "effect_cell" in first.tables else "domain_estimates"
    def changed(a: Mapping[str, object], b: Mapping[str, object]
                ) -> dict[str, tuple[object, object]]:
        return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}

    m1, m2 = first.manifest, second.manifest
    spec = changed(_flatten(m1["spec"]["resolved"]), _flatten(m2["spec"]["resolved"]))
    data = {k: (m1["data"].get(k) or {}).get("sha256") != (m2["data"].get(k) or {}).get(
        "sha256") for k in ("respondents", "codebook", "frame", "joint", "margins")
        if k in m1["data"] or k in m2["data"]}
    a, b = first.tables.get(table), second.tables.get(table)
    estimates = pd.DataFrame()
    if a is not None and b is not None:
        labels = [c for c in a.columns if not pd.api.types.is_numeric_dtype(a[c])
                  and c in b.columns and c != "status"]
        value = "mean" if "mean" in a.columns else "estimate"
        estimates = a.merge(b, on=labels, suffixes=("_first", "_second"))
        estimates = estimates.rename(columns={f"{value}_first": "mean_first",
                                              f"{value}_second": "mean_second"})
        estimates["shift"] = estimates["mean_second"] - estimates["mean_first"]
        estimates = (estimates[[*labels, "mean_first", "mean_second", "shift"]]
                     .reindex(estimates["shift"].abs().sort_values(ascending=False).index)
                     .reset_index(drop=True))
    return {"spec": spec, "data": data, "versions": changed(m1["versions"], m2["versions"]),
            "estimates": estimates}
