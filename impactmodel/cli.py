"""The ``impactmodel`` command line (typer + rich).

User mistakes (invalid files, bad options) end with a readable message and exit status 2,
never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from impactmodel.describe import describe_survey
from impactmodel.errors import ImpactModelError
from impactmodel.loading import load_survey
from impactmodel.survey_data import SurveyData

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
        settings = SimulationSettings(seed=seed, respondents=respondents)
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


def main() -> None:
    """Entry point of the ``impactmodel`` console script."""
    app()
