"""The ``impactmodel`` command line (typer + rich).

User mistakes (invalid files, bad options) end with a readable message and exit status 2,
never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from impactmodel.describe import describe_survey
from impactmodel.errors import ImpactModelError
from impactmodel.loading import load_survey
from impactmodel.survey_data import SurveyData

if TYPE_CHECKING:
    from impactmodel.bayes.mrp import PoststratificationFrame
    from impactmodel.runs import Run
    from impactmodel.specification import ModelSpec

app = typer.Typer(help="Survey-weighted and Bayesian models of the impacts of cross-sector "
                       "alliances.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False)
out = Console()
err = Console(stderr=True)

EXIT_INVALID_INPUT = 2

DataArg = Annotated[Path, typer.Argument(help="Respondent table: .csv, .parquet, .sav or .dta.")]
CodebookOpt = Annotated[Path | None, typer.Option(
    "--codebook", "-c", help="Codebook TOML (default: codebook.toml next to DATA).")]


def _fail(exc: ImpactModelError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_INVALID_INPUT)


def _unwritable(folder: Path, exc: OSError) -> typer.Exit:
    err.print(f"[bold red]error:[/] cannot write to {escape(str(folder))}: "
              f"{escape(exc.strerror or str(exc))}; choose another --out")
    return typer.Exit(EXIT_INVALID_INPUT)


def _load(data: Path, codebook: Path | None) -> SurveyData:
    """Load and validate, or print every problem and exit with status 2."""
    book = codebook if codebook is not None else data.with_name("codebook.toml")
    try:
        return load_survey(data, book)
    except ImpactModelError as exc:
        raise _fail(exc) from None


@app.command()
def validate(data: DataArg, codebook: CodebookOpt = None) -> None:
    """Check a respondent table against its codebook; report every problem found."""
    survey = _load(data, codebook)
    pops = survey.population.value_counts(sort=False)
    counts = ", ".join(f"{p} {n}" for p, n in pops.items())
    out.print(f"[green]valid:[/] {escape(str(data))}: "
              f"{survey.n_respondents} respondents ({counts}), "
              f"{len(survey.codebook.items)} items, "
              f"{survey.department.nunique()} departments in {survey.region.nunique()} regions")


def _number(value: object) -> str:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) >= 10):
        return f"{int(value):,}"
    v = float(value)  # type: ignore[arg-type]
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _frame_table(title: str, frame: pd.DataFrame, fmt: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(str(frame.index.name or ""))
    for col in frame.columns:
        table.add_column(str(col), justify="right")
    for idx, row in frame.iterrows():
        cells = ["—" if pd.isna(v) else fmt.format(v) if fmt else _number(v) for v in row]
        table.add_row(str(idx), *cells)
    return table


@app.command()
def describe(data: DataArg, codebook: CodebookOpt = None) -> None:
    """Respondents by population x region, item coverage, weight summary (Kish deff)."""
    survey = _load(data, codebook)
    d = describe_survey(survey)
    out.print(_frame_table("Respondents by region and population", d.respondents))
    out.print(_frame_table("Item coverage: share answered among those asked "
                           "(— = not asked, missing by design)", d.coverage * 100, "{:.0f}%"))
    weights = d.weights.T
    weights.index.name = "weights"
    out.print(_frame_table("Survey weights by population (Kish deff = n·Σw²/(Σw)²)", weights))


@app.command()
def estimate(
    data: DataArg,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    codebook: CodebookOpt = None,
    by: Annotated[str, typer.Option(
        help="Domains: comma-separated population, region, department or columns.")
    ] = "population",
    lonely_psu: Annotated[str, typer.Option(
        "--lonely-psu", help="Strata with one PSU: fail, certainty, remove, adjust, average.")
    ] = "adjust",
    level: Annotated[float, typer.Option(help="Confidence level.")] = 0.95,
    force: Annotated[bool, typer.Option(help="Overwrite existing files in --out.")] = False,
) -> None:
    """Design-based impact scores by domain: estimates.csv and estimates.parquet."""
    from impactmodel.survey.impact import impact_score_table
    from impactmodel.survey.variance import LONELY_PSU_RULES

    targets = [out_dir / "estimates.csv", out_dir / "estimates.parquet"]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        err.print(f"[bold red]error:[/] {escape(str(out_dir))} already holds "
                  f"{', '.join(p.name for p in existing)}; choose another --out or pass --force")
        raise typer.Exit(EXIT_INVALID_INPUT)
    if lonely_psu not in LONELY_PSU_RULES:
        err.print(f"[bold red]error:[/] --lonely-psu {escape(lonely_psu)!r} is not one of "
                  + ", ".join(LONELY_PSU_RULES))
        raise typer.Exit(EXIT_INVALID_INPUT)
    if not 0 < level < 1:
        err.print(f"[bold red]error:[/] --level must be in (0, 1), got {level}")
        raise typer.Exit(EXIT_INVALID_INPUT)
    survey = _load(data, codebook)
    domains = [b.strip() for b in by.split(",") if b.strip()]
    try:
        table = impact_score_table(survey, domains, lonely_psu=lonely_psu,  # type: ignore[arg-type]
                                   level=level)
    except ImpactModelError as exc:
        raise _fail(exc) from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in targets:  # write beside, then rename: no half-written file under its name
            partial = path.with_name(path.name + ".partial")
            if path.suffix == ".csv":
                table.to_csv(partial, index=False, lineterminator="\n")
            else:
                table.to_parquet(partial, index=False)
            partial.replace(path)
    except OSError as exc:
        raise _unwritable(out_dir, exc) from None
    impacts = table[~table["cell"].str.contains(":")]
    shown = impacts[["domain", "cell", "estimate", "se", "deff", "n"]].head(24)
    out.print(_frame_table(f"Impact scores (0-100) by {', '.join(domains) or 'all'} — first rows",
                           shown.set_index("domain")))
    out.print(f"[green]wrote[/] {len(table)} rows to {escape(str(targets[0]))} and "
              f"{escape(targets[1].name)} (lonely PSU rule: {lonely_psu})")


@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    respondents: Annotated[int, typer.Option(help="Target number of respondents.")] = 4000,
    items_per_respondent: Annotated[int | None, typer.Option(
        help="A split questionnaire: ask each respondent this many of their population's "
             "items, at random (default: all of them).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files in --out.")] = False,
) -> None:
    """Simulate survey files with known truth: respondents, codebook, frame and truth."""
    from impactmodel.simulate import FILES, SimulationSettings, write_simulation
    from impactmodel.simulate import simulate as run_simulation

    existing = [out_dir / f for f in FILES.values() if (out_dir / f).exists()]
    if existing and not force:
        err.print(f"[bold red]error:[/] {escape(str(out_dir))} already holds "
                  f"{', '.join(p.name for p in existing)}; choose another --out or pass --force")
        raise typer.Exit(EXIT_INVALID_INPUT)
    try:
        settings = SimulationSettings(seed=seed, respondents=respondents,
                                      items_per_respondent=items_per_respondent)
    except ImpactModelError as exc:
        raise _fail(exc) from None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("simulating population, samples and answers", total=None)
        sim = run_simulation(settings)
        progress.update(task, description="writing files")
        try:
            paths = write_simulation(sim, out_dir)
        except OSError as exc:
            raise _unwritable(out_dir, exc) from None
    n = len(sim.respondents)
    out.print(f"[green]wrote[/] {n} respondents (seed {seed}) to {out_dir}: "
              + ", ".join(p.name for p in paths.values()))


#: the default specification and the embedded example, relative to the project folder
DEFAULT_SPEC = Path("models") / "impact-scale-scores.toml"
EXAMPLE = Path("data") / "example"


def _project_file(relative: Path) -> Path:
    """``relative`` in the working folder, else in the project the package runs from."""
    here = Path.cwd() / relative
    return here if here.exists() else Path(__file__).resolve().parents[1] / relative


@app.command()
def fit(
    spec_file: Annotated[Path | None, typer.Argument(
        metavar="[SPEC]", help="Model specification TOML (default: "
        "models/impact-scale-scores.toml).")] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", "-d", help="Respondent table (default: the spec's, else the embedded "
        "example).")] = None,
    codebook: CodebookOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Results folder.")] = Path(
        "results"),
    frame_file: Annotated[Path | None, typer.Option(
        "--frame", help="MRP post-stratification frame (default: the spec's, else "
        "frame.csv beside the respondents).")] = None,
) -> None:
    """Fit a model specification and write an immutable, versioned run."""
    import time

    from impactmodel.bayes.fit import fit_spec
    from impactmodel.runs import write_run
    from impactmodel.specification import load_spec

    path = spec_file if spec_file is not None else _project_file(DEFAULT_SPEC)
    try:
        spec = load_spec(path)
    except ImpactModelError as exc:
        raise _fail(exc) from None
    if data is not None:
        respondents, book = data, codebook if codebook is not None else data.with_name(
            "codebook.toml")
    elif spec.respondents is not None and spec.codebook is not None:
        respondents, book = spec.respondents, codebook or spec.codebook
    else:
        example = _project_file(EXAMPLE)
        respondents, book = example / "respondents.csv", codebook or example / "codebook.toml"
    start = time.perf_counter()
    survey = _load(respondents, book)
    frame = _frame(spec, survey, frame_file or spec.frame or respondents.with_name("frame.csv"))
    loaded = time.perf_counter()
    try:  # after the inputs are checked, before a fit of minutes
        out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir, os.W_OK):
            raise PermissionError(13, "permission denied")
    except OSError as exc:
        raise _unwritable(out_dir, exc) from None
    if spec.method == "design-based":
        _estimate_spec(spec, survey, respondents, book, out_dir, loaded - start)
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                  transient=True) as progress:
        task = progress.add_task(f"{spec.name}: building and compiling the model", total=None)

        def sampling(done: int, total: int, divergences: int, tuning: bool) -> None:
            phase = "tuning" if tuning else "drawing"
            progress.update(task, completed=done, total=total,
                            description=f"{spec.name}: {phase} ({spec.sampler.chains} chains, "
                                        f"{divergences} divergences)")

        try:
            result = fit_spec(spec, survey, progress=sampling,
                              totals=frame.cells if frame is not None else None)
        except ImpactModelError as exc:
            raise _fail(exc) from None
        fitted = time.perf_counter()
        progress.update(task, total=None, description="writing the run and its report")
        try:
            run = write_run(result, spec, respondents=respondents, codebook=book, root=out_dir,
                            timings={"load": loaded - start, "fit": fitted - loaded},
                            frame=frame,
                            direct=_direct(survey) if spec.outcome == "scale_scores" else None)
        except ImpactModelError as exc:
            raise _fail(exc) from None
    colour = "green" if result.convergence.converged else "bold red"
    out.print(f"[{colour}]{escape(str(result.convergence))}[/]")
    out.print(f"[green]wrote run[/] {escape(str(run))}")
    out.print(f"report: {escape(str(run / 'report' / 'report.html'))}")


def _frame(spec: ModelSpec, survey: SurveyData, path: Path) -> PoststratificationFrame | None:
    """Read the frame before fitting: for MRP, or the totals of a calibrated pseudo-posterior.

    None when neither; exit 2 when it is unusable.
    """
    if spec.weights != "mrp" and not spec.calibration:
        return None
    from impactmodel.bayes.fit import spec_covariates
    from impactmodel.bayes.mrp import read_frame, read_raked_frame

    if spec.joint is not None and spec.margins is not None:
        try:
            return read_raked_frame(spec.joint, spec.margins, survey.codebook,
                                    spec_covariates(spec, survey))
        except ImpactModelError as exc:
            raise _fail(exc) from None

    what = ("MRP needs a post-stratification frame" if spec.weights == "mrp" else
            "a calibrated pseudo-posterior needs the population totals of a frame")
    if not path.is_file():
        err.print(f"[bold red]error:[/] {what}: "
                  f"{escape(str(path))} does not exist; give \\[weights] frame in the "
                  "specification or --frame")
        raise typer.Exit(EXIT_INVALID_INPUT)
    try:
        variables = (spec_covariates(spec, survey) if spec.weights == "mrp" else
                     tuple(v for v in spec.calibration if v not in ("region", "department")))
        return read_frame(path, survey.codebook, variables)
    except ImpactModelError as exc:
        raise _fail(exc) from None


def _direct(survey: SurveyData) -> pd.DataFrame:
    """Design-based impact scores by population x department (90% CIs), side by side."""
    from impactmodel.survey.impact import impact_score_table

    try:
        return impact_score_table(survey, ["population", "department"], lonely_psu="adjust",
                                  level=0.9)
    except ImpactModelError as exc:
        raise _fail(exc) from None


def _estimate_spec(spec: ModelSpec, survey: SurveyData, respondents: Path, book: Path,
                   out_dir: Path, load_seconds: float) -> None:
    """Run a design-based specification and write it as a run."""
    import time

    from impactmodel.runs import write_run
    from impactmodel.survey.impact import estimate_design

    start = time.perf_counter()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task(f"{spec.name}: design-based estimates by "
                                 f"{', '.join(spec.design.by)}", total=None)
        try:
            result = estimate_design(survey, spec.design, spec.selection.labels())
            done = time.perf_counter()
            progress.update(task, description="writing the run and its report")
            run = write_run(result, spec, respondents=respondents, codebook=book,
                            root=out_dir, timings={"load": load_seconds,
                                                   "estimate": done - start})
        except ImpactModelError as exc:
            raise _fail(exc) from None
    out.print(f"[green]design-based estimates[/]: {len(result.table)} domain x score rows "
              f"by {', '.join(spec.design.by)} (lonely PSUs: {spec.design.lonely_psu})")
    out.print(f"[green]wrote run[/] {escape(str(run))}")
    out.print(f"report: {escape(str(run / 'report' / 'report.html'))}")


runs_app = typer.Typer(help="List, show and compare the runs written by `fit`.",
                       no_args_is_help=True)
app.add_typer(runs_app, name="runs")
ResultsOpt = Annotated[Path, typer.Option("--out", "-o", help="Results folder.")]


def _run(path: Path) -> Run:
    """Read a run, or say why it cannot be read and exit with status 2."""
    from impactmodel.runs import load_run

    try:
        return load_run(path)
    except ImpactModelError as exc:
        raise _fail(exc) from None


@runs_app.command("list")
def runs_list(out_dir: ResultsOpt = Path("results")) -> None:
    """List the complete runs, oldest first."""
    from impactmodel.runs import list_runs

    table = list_runs(out_dir)
    if table.empty:
        out.print(f"no runs under {escape(str(out_dir))}")
        return
    table["seed"] = table["seed"].astype(str)  # an identifier, not a quantity
    out.print(_frame_table(f"Runs under {out_dir}", table.set_index("model")))


@runs_app.command("show")
def runs_show(run: Annotated[Path, typer.Argument(help="A run folder.")]) -> None:
    """Show a run's manifest summary and its key estimates."""
    loaded = _run(run)
    m = loaded.manifest
    out.print(f"[bold]{escape(m['run']['model'])}[/] {escape(m['run']['version'])} — "
              f"{escape(m['run']['status'])}, created {escape(m['run']['created'])}")
    out.print(f"data: {escape(str(m['data']['respondents']['path']))} "
              f"(sha256 {m['data']['respondents']['sha256'][:12]}), seed {m['seed']}, "
              f"impactmodel {m['versions']['impactmodel']}, pymc {m['versions']['pymc']}")
    table = loaded.tables.get("effect_population")
    if table is not None:
        out.print(_frame_table("Practice effects by population", table.set_index("practice")))
    domains = loaded.tables.get("domain_estimates")
    if domains is not None:
        impacts = domains[~domains["cell"].str.contains(":")]
        shown = impacts[["domain", "cell", "estimate", "se", "n", "status"]].head(24)
        out.print(_frame_table("Design-based impact scores — first rows",
                               shown.set_index("domain")))


@runs_app.command("diff")
def runs_diff(first: Annotated[Path, typer.Argument(help="A run folder.")],
              second: Annotated[Path, typer.Argument(help="Another run folder.")]) -> None:
    """Compare two runs: specification, data, versions, and how estimates moved."""
    from impactmodel.runs import diff_runs

    changes = diff_runs(_run(first), _run(second))
    if not changes["spec"]:
        out.print("specification: unchanged")
    for key, (a, b) in changes["spec"].items():
        out.print(f"specification {escape(key)}: {escape(repr(a))} -> {escape(repr(b))}")
    for key, moved in changes["data"].items():
        out.print(f"{key}: {'changed' if moved else 'unchanged'}")
    for key, (a, b) in changes["versions"].items():
        out.print(f"version of {escape(key)}: {escape(str(a))} -> {escape(str(b))}")
    estimates = changes["estimates"]
    if not estimates.empty:
        out.print(_frame_table("Largest moves of the estimates",
                               estimates.head(10).set_index(estimates.columns[0])))


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="A run folder (see `runs list`).")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", "-o", help="New folder for the report (default: report-<model>-<version> "
        "in the working folder; runs themselves are never modified).")] = None,
    population: Annotated[str | None, typer.Option(
        help="Population of the territorial charts and map (default: the spec's).")] = None,
    impact: Annotated[str | None, typer.Option(
        help="Impact of the territorial charts and map (default: the spec's).")] = None,
    practice: Annotated[str | None, typer.Option(
        help="Practice of the territorial effect charts (default: the spec's).")] = None,
) -> None:
    """Write the HTML report of a run (figures, maps, tables) to a new folder."""
    from dataclasses import replace

    from impactmodel.report.build import build_report
    from impactmodel.report.options import ReportOptions

    loaded = _run(run)
    chosen = ReportOptions(**loaded.manifest["spec"]["resolved"].get("report", {}))
    chosen = replace(chosen, population=population or chosen.population,
                     impact=impact or chosen.impact, practice=practice or chosen.practice)
    m = loaded.manifest["run"]
    folder = out_dir or Path(f"report-{m['model']}-{m['version']}")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        progress.add_task("drawing figures and maps", total=None)
        try:
            page = build_report(loaded, folder, chosen)
        except ImpactModelError as exc:
            raise _fail(exc) from None
    out.print(f"[green]wrote report[/] {escape(str(page))}")


def main() -> None:
    """Entry point of the ``impactmodel`` console script."""
    app()
