"""Assemble a run's report from its manifest, posterior and gated tables only.

The report is ``report.html`` (self-contained), ``figures/*.png`` and ``tables/*.csv``.

Everything shown per population or per territory comes from the run's tables, which
went through the disclosure gate when the run was written; the report adds no
respondent-level figure. It is written atomically (a hidden partial folder renamed into
place) and never over an existing folder.
"""

from __future__ import annotations

import html
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import rankdata

from impactmodel.bayes.diagnostics import per_parameter
from impactmodel.errors import ImpactModelError
from impactmodel.report import figures
from impactmodel.report.html import (
    definition_list,
    figure_block,
    page,
    png_bytes,
    table_block,
)
from impactmodel.report.maps import CREDIT
from impactmodel.report.options import ReportOptions
from impactmodel.territories import departments, region_names

if TYPE_CHECKING:  # runs.write_run builds reports: no import cycle at run time
    from impactmodel.runs import Run

REPORT_FILE = "report.html"
_UNITS = {"scale_scores": "POMP points (0–100 impact score)", "items": "logits (latent scale)"}


class ReportError(ImpactModelError):
    """A report cannot be written (bad option, existing folder, unwritable place)."""


def territory_names(level: str) -> dict[str, str]:
    """Return code -> name of the departments or regions (empty for other levels)."""
    if level == "region":
        return region_names()
    if level in ("department", "territory"):
        return {d.code: d.name for d in departments()}
    return {}


def _check_option(value: str, allowed: list[str], what: str) -> None:
    if value not in allowed:
        raise ReportError(f"report {what} {value!r} is not in this run; expected one of "
                          f"{', '.join(map(repr, allowed))}")


def _one(table: pd.DataFrame, **selection: str) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for column, value in selection.items():
        mask &= table[column].astype(str).to_numpy() == value
    return table[mask].reset_index(drop=True)


class _Builder:
    """Collects figures (PNG files + inline blocks) and tables (CSV files + blocks)."""

    def __init__(self, folder: Path, draw: bool) -> None:
        self.folder, self.draw = folder, draw
        (folder / "figures").mkdir(parents=True)
        (folder / "tables").mkdir()

    def figure(self, name: str, make: object, *, alt: str, caption: str) -> str:
        if not self.draw:
            return ""
        png = png_bytes(make())  # type: ignore[operator]
        (self.folder / "figures" / f"{name}.png").write_bytes(png)
        return figure_block(png, alt=alt, caption=caption, file_name=f"{name}.png")

    def table(self, name: str, table: pd.DataFrame, *, caption: str,
              max_rows: int | None = None) -> str:
        table.to_csv(self.folder / "tables" / f"{name}.csv", index=False)
        return table_block(table, caption=f"{caption} (tables/{name}.csv)", max_rows=max_rows)


def _provenance(run: Run) -> str:
    m = run.manifest
    items: dict[str, object] = {
        "model": m["run"]["model"], "version": m["run"]["version"],
        "created (UTC)": m["run"]["created"], "status": m["run"]["status"],
        "specification": m["spec"].get("file") or "(given in code)",
        "specification SHA-256": m["spec"]["sha256"],
        "respondents file": f"{m['data']['respondents']['path']} "
                            f"(SHA-256 {m['data']['respondents']['sha256']})",
        "codebook file": f"{m['data']['codebook']['path']} "
                         f"(SHA-256 {m['data']['codebook']['sha256']})",
        "respondents in the model": m["data"]["respondents_in_model"],
        "seed": m["seed"] if m["seed"] is not None else "(no sampling)",
        "sampler": (", ".join(f"{k}={v}" for k, v in m["sampler"].items())
                    if m["sampler"] else "(design-based: none)"),
        "git commit": (f"{m['git']['commit']}"
                       f"{' (with local changes)' if m['git']['local_changes'] else ''}"
                       if m.get("git") else "(not in a git repository)"),
        "versions": ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "timings (s)": ", ".join(f"{k} {v:.1f}" for k, v in m["timings_seconds"].items()),
    }
    pseudo = m.get("pseudo_posterior")
    if pseudo:
        ratio = pseudo["variance_ratio"] or {}
        items["survey weights"] = (
            f"weighted pseudo-posterior; {pseudo['parameters']} global parameters adjusted "
            f"to the design-based sandwich (rank {pseudo['rank']} of {pseudo['free_dimensions']} "
            f"free dimensions, design degrees of "
            f"freedom {pseudo['design_degrees_of_freedom']}, lonely PSUs: "
            f"{pseudo['lonely_psu']}"
            + (f"; J on the design raked within population to the frame's totals of "
               f"{', '.join(pseudo['calibration'])}" if pseudo.get("calibration") else "")
            + "); adjusted / unadjusted variance: median "
            f"{ratio.get('median', float('nan')):.2f}, range "
            f"{ratio.get('min', float('nan')):.2f}–{ratio.get('max', float('nan')):.2f}"
            + (f". Warning: {pseudo['warning']}" if pseudo.get("warning") else ""))
    return definition_list(items)


def _disclosure_note(run: Run) -> str:
    rules = run.manifest["disclosure"]
    return (f"<p>Disclosure control applied to every per-population and per-territory "
            f"table and figure: cells based on fewer than {rules['min_count']} respondents "
            f"are suppressed; secondary suppression: {html.escape(rules['secondary_suppression'])}"
            f"; estimates with a coefficient of variation above {rules['max_cv']:.0%} are "
            "flagged unreliable. Suppressed cells are shown as such.</p>")


def _territory_sections(run: Run, b: _Builder, options: ReportOptions, practice: str,
                        unit: str) -> list[tuple[str, str]]:
    tables = run.tables
    population, impact = str(options.population), str(options.impact)
    if "mrp_department" in tables:
        _check_option(population, sorted(set(tables["mrp_department"]["population"])),
                      "population")
        pick = {"population": population, "impact": impact}
        subject = (f"post-stratified (MRP) {impact} score of the {population} population "
                   f"({run.manifest['data'].get('frame_source', 'frame')})")
        regions = _one(tables["mrp_region"], **pick)
        departments = _one(tables["mrp_department"], **pick)
        names = ("mrp_region", "mrp_department")
    elif "expected_scores_department" in tables:
        _check_option(population,
                      sorted(set(tables["expected_scores_department"]["population"])),
                      "population")
        pick = {"population": population, "impact": impact}
        subject = f"expected {impact} score, {population} respondents"
        regions = _one(tables["expected_scores_region"], **pick)
        departments = _one(tables["expected_scores_department"], **pick)
        names = ("expected_scores_region", "expected_scores_department")
    else:
        subject = f"effect of {practice}"
        regions = _one(tables["effect_region"], practice=practice)
        departments = _one(tables["effect_department"], practice=practice)
        names = ("effect_region", "effect_department")
    body = [b.figure("map_departments", lambda: figures.map_figure(
        departments, title=subject.capitalize(), unit=unit),
        alt=f"Map of France by department: {subject} and its uncertainty",
        caption=f"{subject.capitalize()} by department (left) and the width of its 90% "
                f"interval (right); hatched: suppressed. {CREDIT}."),
        f"<p><small>{html.escape(CREDIT)}</small></p>"]
    for level, table, name in (("region", regions, names[0]),
                               ("department", departments, names[1])):
        body.append(b.figure(f"ranked_{level}s", lambda t=table, lv=level: figures.ranked_chart(
            t, label=lv, title=f"{subject.capitalize()} by {lv}, ranked", unit=unit,
            names=territory_names(lv)),
            alt=f"Ranked {level}s", caption=f"{level.capitalize()}s ranked by posterior "
            "mean, with 90% intervals and the respondents behind each"))
        body.append(b.table(f"{name}_{population}_{impact}"
                            if "effect" not in name else f"{name}_{practice}", table,
                            caption=f"{subject.capitalize()} by {level}"))
    for name, kind in (("direct_vs_mrp_department", "post-stratified (MRP)"),
                       ("direct_vs_model_department", "model-based")):
        if name not in tables:
            continue
        side = _one(tables[name], population=population, impact=impact)
        body.append(b.figure(name.removesuffix("_department"),
                             lambda s=side, k=kind: figures.direct_vs_model_figure(
            s, title=f"Direct and {k} {impact} scores of the {population} population by "
                     "department", unit=unit),
            alt="Direct against model-based estimates by department",
            caption=f"Design-based direct estimates against the {kind} scores by "
                    "department (suppressed departments and those without respondents "
                    "not drawn)"))
        body.append(b.table(f"{name}_{population}_{impact}", side,
                            caption=f"Direct (design-based: SE, CV, design effect) and {kind}"
                                    " scores side by side, with the shift and the "
                                    "reliability of the direct estimate"))
    if "mrp_population" in tables:
        body.append(b.table("mrp_population", tables["mrp_population"],
                            caption="Post-stratified (MRP) scores per population, "
                                    "nationally, with the frame's head counts"))
    return [(f"Per territory: {subject}", "".join(body))]


def build_report(run: Run, folder: Path, options: ReportOptions | None = None) -> Path:
    """Write the report of ``run`` into the new folder ``folder`` (see the module docstring).

    Parameters
    ----------
    run : Run
        As :func:`impactmodel.runs.load_run` returns it (or assembled by ``write_run``).
    folder : Path
        Must not exist; written atomically.
    options : ReportOptions, optional
        Default: the run's specification's ``[report]`` section.

    Returns
    -------
    Path
        The HTML file.

    Raises
    ------
    ReportError
        When ``folder`` exists, an option names what the run does not hold, or the
        folder cannot be written.
    """
    resolved = run.manifest["spec"]["resolved"]
    chosen = options or ReportOptions(**resolved.get("report", {}))
    folder = Path(folder)
    if folder.exists():
        raise ReportError(f"{folder} exists already; choose a new folder for the report")
    design_based = resolved["model"].get("method") == "design-based"
    compose = _design_sections if design_based else _bayesian_sections
    partial = folder.parent / f".partial-{folder.name}"
    try:
        shutil.rmtree(partial, ignore_errors=True)
        b = _Builder(partial, chosen.figures)
        sections, banner, ok = compose(run, b, chosen)
        title = f"{run.manifest['run']['model']} — {run.manifest['run']['version']}"
        (partial / REPORT_FILE).write_text(page(title, sections, banner=banner, ok=ok),
                                           encoding="utf-8")
        os.rename(partial, folder)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise ReportError(f"cannot write the report to {folder}: {exc.strerror or exc}"
                          ) from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder / REPORT_FILE


Sections = tuple[list[tuple[str, str]], str, bool]


def _bayesian_sections(run: Run, b: _Builder, chosen: ReportOptions) -> Sections:
    """Compose a Bayesian run's report, its convergence banner and whether it converged."""
    tables = run.tables
    practices = list(dict.fromkeys(tables["effect_cell"]["practice"]))
    practice = chosen.practice or practices[0]
    _check_option(practice, practices, "practice")
    impacts = list(dict.fromkeys(tables["effect_cell"]["impact"]))
    populations = list(dict.fromkeys(tables["effect_population"]["population"]))
    chosen = replace(chosen, impact=chosen.impact or impacts[0],
                     population=chosen.population or populations[0])
    _check_option(str(chosen.impact), impacts, "impact")
    unit = _UNITS[run.manifest["spec"]["resolved"]["outcome"]["kind"]]
    sections = _sections(run, b, chosen, practice, practices, unit)
    convergence = run.manifest["convergence"]
    ok = bool(convergence["converged"])
    banner = ("Converged: " if ok else "NOT CONVERGED — do not publish these estimates: "
              ) + "; ".join(convergence["problems"] or [
                  f"max R-hat {convergence['max_rhat']:.3f}, min bulk ESS "
                  f"{convergence['min_ess_bulk']:.0f}, divergences "
                  f"{convergence['divergences']}"])
    return sections, banner, ok


def _design_sections(run: Run, b: _Builder, chosen: ReportOptions) -> Sections:
    """Compose a design-based run's report: domain estimates with confidence intervals."""
    design = run.manifest["spec"]["resolved"]["design"]
    by, level = list(design["by"]), float(design["level"])
    table = run.tables["domain_estimates"]
    impacts = [c for c in dict.fromkeys(table["cell"]) if ":" not in c]
    scores = impacts or list(dict.fromkeys(table["cell"]))
    impact = chosen.impact or scores[0]
    _check_option(impact, scores, "impact")
    pick = {"cell": impact}
    if "population" in by and len(by) > 1:
        population = chosen.population or str(table["population"].iloc[0])
        _check_option(population, sorted(set(table["population"])), "population")
        pick["population"] = population
    rows = _one(table, **pick).rename(columns={"estimate": "mean", "ci_low": "low",
                                               "ci_high": "high"})
    subject = f"{impact} score" + (f" of {pick['population']} respondents"
                                   if "population" in pick else "")
    level_name = by[-1]
    body = []
    if level_name in ("department", "territory"):
        body.append(b.figure("map_departments", lambda: figures.map_figure(
            rows.rename(columns={level_name: "department"}),
            title=f"Design-based {subject}".capitalize(), unit=_UNITS["scale_scores"]),
            alt=f"Map of France by department: {subject}",
            caption=f"Design-based {subject} by department and the width of its "
                    f"{level:.0%} confidence interval; hatched: suppressed. {CREDIT}."))
    body.append(b.figure(f"ranked_{level_name}", lambda: figures.ranked_chart(
        rows, label=level_name, title=f"Design-based {subject} by {level_name}, ranked",
        unit=_UNITS["scale_scores"], names=territory_names(level_name)),
        alt=f"Ranked {level_name} estimates",
        caption=f"Estimates with {level:.0%} confidence intervals (Taylor linearisation) "
                "and the respondents behind each"))
    body.append(b.table("domain_estimates_shown", _one(table, **pick),
                        caption=f"Design-based {subject} by {', '.join(by)}"))
    body.append(b.table("domain_estimates", table, caption="Every domain and score",
                        max_rows=60))
    description = run.manifest["spec"]["resolved"]["model"].get("description", "")
    sections = [("The run", f"<p>{html.escape(description)}</p>{_provenance(run)}"
                 f"{_disclosure_note(run)}"),
                (f"Design-based estimates by {', '.join(by)}", "".join(body))]
    banner = (f"Design-based estimates (survey weights, strata and PSUs; Taylor-linearised "
              f"standard errors; {level:.0%} confidence intervals; lonely PSUs: "
              f"{design['lonely_psu']}) — no model, no sampling")
    return sections, banner, True


def _sections(run: Run, b: _Builder, options: ReportOptions, practice: str,
              practices: list[str], unit: str) -> list[tuple[str, str]]:
    tables = run.tables
    description = run.manifest["spec"]["resolved"]["model"].get("description", "")
    sections = [("The run", f"<p>{html.escape(description)}</p>{_provenance(run)}"
                 f"{_disclosure_note(run)}")]
    by_population = tables["effect_population_impact"]
    sections.append(("Per population: practice effects per impact", "".join([
        b.figure("forest_populations", lambda: figures.forest_plot(by_population, unit=unit),
                 alt="Forest plot of practice effects by population and impact",
                 caption="Practice effects per impact (mean over its lens x dimension "
                         "cells) by population: posterior mean and 90% interval"),
        b.table("effect_population_impact", by_population,
                caption="Practice effect per population x impact: posterior mean, sd, 90% "
                        "interval, probability of a positive effect"),
        b.table("effect_population", tables["effect_population"],
                caption="Practice effect per population, over all cells"),
        *([b.table("effect_population_cell", tables["effect_population_cell"],
                   caption="Practice effect per population x impact x lens x dimension "
                           "cell (first rows shown)", max_rows=24)]
          if "effect_population_cell" in tables else [])])))
    cells = tables["effect_cell"]
    heatmaps = "".join(b.figure(f"heatmap_{p}", lambda p=p: figures.effect_heatmap(
        cells, p, unit=unit), alt=f"Heatmap of the effect of {p}",
        caption=f"Effect of {p} over lens x dimension, one panel per impact")
        for p in practices)
    sections.append(("Practice effects by impact x lens x dimension", heatmaps + b.table(
        "effect_cell", cells, caption="Practice effect per impact x lens x dimension cell",
        max_rows=54)))
    sections.extend(_territory_sections(run, b, options, practice, unit))
    if "pseudo_posterior_adjustment" in run.tables:
        adjustment = run.tables["pseudo_posterior_adjustment"]
        sections.append(("Survey weights: design-consistent adjustment", "".join([
            "<p>The likelihood was weighted by the normalised survey weights (a "
            "pseudo-posterior), then the draws of the global parameters were mapped so "
            "that their covariance is the design-based sandwich H<sup>-1</sup>JH<sup>-1</sup>"
            ", J from the survey's strata and PSUs (Williams &amp; Savitsky 2021). Effects "
            "and intervals in this report are the adjusted ones.</p>",
            b.table("pseudo_posterior_adjustment",
                    adjustment.sort_values("variance_ratio", ascending=False),
                    caption="Adjusted global parameters, largest variance ratio first",
                    max_rows=30)])))
    sections.append(("Convergence", _convergence_section(run, b)))
    check = tables["predictive_check"]
    sections.append(("Posterior predictive check", "".join([
        b.figure("predictive_check", lambda: figures.predictive_figure(check),
                 alt="Posterior predictive check",
                 caption="Observed mean and sd of the outcome per population x impact "
                         "against their replicated distributions (100 posterior draws)"),
        b.table("predictive_check", check, caption="Posterior predictive p-values "
                "(near 0 or 1: a feature of the data the model does not reproduce)")])))
    return sections


def _convergence_section(run: Run, b: _Builder) -> str:
    thresholds = run.manifest["spec"]["resolved"]["convergence"]
    posterior = run.posterior
    if posterior is None:
        raise ReportError(f"{run.path} has no posterior: not a Bayesian run")
    if "unadjusted_posterior" in posterior.children:  # diagnose the draws as sampled
        posterior = xr.DataTree.from_dict(
            {"posterior": posterior["unadjusted_posterior"].to_dataset()})
    diagnostics = per_parameter(posterior)
    parts = [b.figure("convergence", lambda: figures.convergence_figure(diagnostics,
                                                                        thresholds),
                      alt="R-hat and ESS per parameter",
                      caption="Worst R-hat and smallest ESS of each parameter")]
    if len(diagnostics):
        worst = diagnostics["worst_rhat_at"][0]
        name, _, labels = worst.partition("[")
        values = posterior["posterior"][name]
        extra = [d for d in values.dims if d not in ("chain", "draw")]
        if extra:
            flat = values.stack(element=extra).transpose("chain", "draw", "element")
            index = [", ".join(map(str, k)) if isinstance(k, tuple) else str(k)
                     for k in flat["element"].values].index(labels.rstrip("]"))
            draws = flat.values[:, :, index]
        else:
            draws = values.values
        ranks = rankdata(draws, axis=None).reshape(draws.shape)
        parts.append(b.figure("rank_worst", lambda: figures.rank_figure(ranks, worst),
                              alt=f"Rank plot of {worst}",
                              caption=f"Rank histograms per chain of {worst}"))
    parts.append(b.table("convergence", diagnostics, caption="Diagnostics per parameter "
                         f"(thresholds: {thresholds})"))
    return "".join(parts)
