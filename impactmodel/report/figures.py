"""The report's figures, drawn from a run's gated tables and posterior (matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
state). Rows the disclosure gate suppressed are drawn as such — a grey "suppressed"
label in place of the interval — never silently left out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from impactmodel.disclosure import PUBLISHED, UNRELIABLE
from impactmodel.report.maps import draw_france

POPULATION_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
_UNRELIABLE_COLOUR = "#b0b0b0"


def _hidden(status: pd.Series) -> np.ndarray:
    values = status.astype(str).to_numpy()
    return (values != PUBLISHED) & (values != UNRELIABLE)


def forest_plot(table: pd.DataFrame, *, unit: str) -> Figure:
    """Draw a forest plot of practice effects by population.

    One panel per impact, one row per practice, one marker and 90% interval per
    population.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``practice, population, impact, mean, low, high, status``.
    unit : str
        Axis label (the outcome's scale).
    """
    impacts = list(dict.fromkeys(table["impact"]))
    practices = list(dict.fromkeys(table["practice"]))
    populations = list(dict.fromkeys(table["population"]))
    figure = Figure(figsize=(3.6 * len(impacts) + 1.2, 0.55 * len(practices) + 1.6),
                    layout="constrained")
    axes = figure.subplots(1, len(impacts), sharey=True, squeeze=False)[0]
    offsets = np.linspace(-0.3, 0.3, len(populations)) if len(populations) > 1 else [0.0]
    for ax, impact in zip(axes, impacts, strict=True):
        ax.axvline(0, color="#444444", linewidth=0.8)
        for k, population in enumerate(populations):
            rows = table[(table["impact"] == impact) & (table["population"] == population)]
            y = np.array([practices.index(p) for p in rows["practice"]]) + offsets[k]
            hidden = _hidden(rows["status"])
            shown = ~hidden
            colour = POPULATION_COLOURS[k % len(POPULATION_COLOURS)]
            ax.errorbar(rows["mean"][shown], y[shown],
                        xerr=[rows["mean"][shown] - rows["low"][shown],
                              rows["high"][shown] - rows["mean"][shown]],
                        fmt="o", markersize=3.5, color=colour, linewidth=1.1,
                        label=population if ax is axes[0] else None)
            for yy in y[hidden]:
                ax.text(0, yy, "suppressed", fontsize=6, color="#777777", va="center")
        ax.set_title(impact)
        ax.set_xlabel(unit)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(practices)), practices)
    axes[0].invert_yaxis()
    figure.legend(loc="outside lower center", ncols=len(populations), fontsize=8,
                  title="population (posterior mean, 90% interval)", title_fontsize=8)
    return figure


def ranked_chart(table: pd.DataFrame, *, label: str, title: str, unit: str,
                 names: Mapping[str, str] | None = None) -> Figure:
    """Dot-and-interval chart of territories ranked by their posterior mean.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per territory: ``label`` column, ``mean, low, high, n, status``.
    label : str
        The territory column (e.g. ``"department"``).
    title, unit : str
    names : mapping of str to str, optional
        Territory code -> name, shown beside the code.
    """
    ordered = table.assign(_key=table["mean"].fillna(-np.inf)).sort_values(
        "_key", ascending=False, kind="stable").reset_index(drop=True)
    figure = Figure(figsize=(7.5, 0.16 * len(ordered) + 1.4), layout="constrained")
    ax = figure.subplots()
    hidden = _hidden(ordered["status"])
    unreliable = ordered["status"].astype(str).to_numpy() == UNRELIABLE
    y = np.arange(len(ordered))
    for mask, colour in ((~hidden & ~unreliable, "#1f4e79"), (unreliable, _UNRELIABLE_COLOUR)):
        rows = ordered[mask]
        ax.errorbar(rows["mean"], y[mask], xerr=[rows["mean"] - rows["low"],
                                                 rows["high"] - rows["mean"]],
                    fmt="o", markersize=3, color=colour, linewidth=1)
    left = float(np.nanmin(ordered["low"])) if (~hidden).any() else 0.0
    for yy in y[hidden]:
        ax.text(left, yy, str(ordered["status"][yy]), fontsize=6, color="#777777",
                va="center")
    named = names or {}
    ticks = [f"{t} {named.get(str(t), '')} (n={'–' if pd.isna(n) else int(n)})"
             for t, n in zip(ordered[label], ordered["n"], strict=True)]
    ax.set_yticks(y, ticks, fontsize=6 if len(ordered) > 40 else 8)
    ax.set_ylim(len(ordered) - 0.5, -0.5)
    ax.set_xlabel(unit)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=[Patch(color="#1f4e79", label="published"),
                       Patch(color=_UNRELIABLE_COLOUR, label="unreliable (CV above threshold)")],
              fontsize=7, loc="lower right")
    return figure


def effect_heatmap(table: pd.DataFrame, practice: str, *, unit: str) -> Figure:
    """Heatmap of one practice's effect over lens x dimension, one panel per impact.

    Cells whose 90% interval excludes zero are marked with ``*``.

    Parameters
    ----------
    table : pandas.DataFrame
        ``effect_cell``: ``practice, impact, lens, dimension, mean, low, high``.
    practice : str
    unit : str
    """
    rows = table[table["practice"] == practice]
    impacts = list(dict.fromkeys(rows["impact"]))
    lenses = list(dict.fromkeys(rows["lens"]))
    dimensions = list(dict.fromkeys(rows["dimension"]))
    bound = float(np.nanmax(np.abs(rows["mean"]))) or 1.0
    figure = Figure(figsize=(4.2 * len(impacts), 2.6), layout="constrained")
    axes = figure.subplots(1, len(impacts), squeeze=False)[0]
    image = None
    for ax, impact in zip(axes, impacts, strict=True):
        grid = (rows[rows["impact"] == impact]
                .set_index(["lens", "dimension"])
                .reindex(pd.MultiIndex.from_product([lenses, dimensions])))
        means = grid["mean"].to_numpy(dtype=float).reshape(len(lenses), len(dimensions))
        sure = ((grid["low"] > 0) | (grid["high"] < 0)).to_numpy().reshape(means.shape)
        image = ax.imshow(means, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
        for (i, j), value in np.ndenumerate(means):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}{'*' if sure[i, j] else ''}", ha="center",
                        va="center", fontsize=7)
        ax.set_xticks(range(len(dimensions)), dimensions, rotation=40, ha="right", fontsize=7)
        ax.set_yticks(range(len(lenses)), lenses, fontsize=7)
        ax.set_title(impact, fontsize=9)
    if image is not None:
        figure.colorbar(image, ax=list(axes), label=unit, shrink=0.9)
    figure.suptitle(f"Effect of {practice} by lens x dimension "
                    "(posterior mean; * 90% interval excludes 0)", fontsize=9)
    return figure


def convergence_figure(diagnostics: pd.DataFrame, thresholds: dict[str, float]) -> Figure:
    """Worst R-hat and smallest bulk / tail ESS per parameter, against the thresholds.

    Parameters
    ----------
    diagnostics : pandas.DataFrame
        From :func:`impactmodel.bayes.diagnostics.per_parameter`.
    thresholds : dict
        ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``.
    """
    table = diagnostics.sort_values("max_rhat")
    figure = Figure(figsize=(10, 0.2 * len(table) + 1.5), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    y = np.arange(len(table))
    bad = table["max_rhat"].to_numpy() > thresholds["max_rhat"]
    axes[0].barh(y, table["max_rhat"] - 1, color=np.where(bad, "#c0392b", "#1f4e79"))
    axes[0].axvline(thresholds["max_rhat"] - 1, color="#c0392b", linestyle="--", linewidth=1)
    axes[0].set_xlabel("max R-hat − 1")
    axes[1].scatter(table["min_ess_bulk"], y, s=12, label="bulk", color="#1f4e79")
    axes[1].scatter(table["min_ess_tail"], y, s=12, marker="s", label="tail", color="#d95f02")
    axes[1].axvline(thresholds["min_ess_bulk"], color="#c0392b", linestyle="--", linewidth=1)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("min ESS")
    axes[1].legend(fontsize=7)
    axes[0].set_yticks(y, table["parameter"], fontsize=7)
    figure.suptitle("Convergence per parameter (dashed: thresholds)", fontsize=10)
    return figure


def rank_figure(ranks: np.ndarray, parameter: str, bins: int = 20) -> Figure:
    """Rank histograms per chain of one parameter (uniform when chains agree).

    Parameters
    ----------
    ranks : numpy.ndarray
        (chain, draw) ranks of the draws among all chains' draws.
    parameter : str
        Its label.
    bins : int
    """
    chains, draws = ranks.shape
    figure = Figure(figsize=(2.2 * chains, 2.0), layout="constrained")
    axes = figure.subplots(1, chains, sharey=True, squeeze=False)[0]
    edges = np.linspace(0, chains * draws, bins + 1)
    for c, ax in enumerate(axes):
        ax.hist(ranks[c], bins=edges, color="#1f4e79")
        ax.axhline(draws / bins, color="#c0392b", linestyle="--", linewidth=1)
        ax.set_title(f"chain {c}", fontsize=8)
        ax.set_xticks([])
    figure.suptitle(f"Rank plot of {parameter} (worst R-hat; dashed: uniform)", fontsize=9)
    return figure


def predictive_figure(table: pd.DataFrame) -> Figure:
    """Posterior predictive check: observed statistic against its replicated distribution.

    Parameters
    ----------
    table : pandas.DataFrame
        From ``predictive_check``: ``population, impact, statistic, observed, replicated,
        low, high, p_value``.
    """
    statistics = list(dict.fromkeys(table["statistic"]))
    figure = Figure(figsize=(4.5 * len(statistics), 0.3 * len(table) / len(statistics) + 1.6),
                    layout="constrained")
    axes = figure.subplots(1, len(statistics), squeeze=False)[0]
    for ax, statistic in zip(axes, statistics, strict=True):
        rows = table[table["statistic"] == statistic].reset_index(drop=True)
        y = np.arange(len(rows))
        ax.errorbar(rows["replicated"], y, xerr=[rows["replicated"] - rows["low"],
                                                 rows["high"] - rows["replicated"]],
                    fmt="none", color="#1f4e79", linewidth=3, alpha=0.5,
                    label="replicated, 90% interval")
        ax.scatter(rows["observed"], y, color="#c0392b", zorder=3, s=14, label="observed")
        ax.set_yticks(y, [f"{p} · {i}" for p, i in zip(rows["population"], rows["impact"],
                                                        strict=True)], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{statistic} of the outcome", fontsize=9)
        ax.legend(fontsize=7)
    return figure


def map_figure(values: pd.DataFrame, *, title: str, unit: str) -> Figure:
    """Two maps by department: the posterior mean and the width of its 90% interval.

    Parameters
    ----------
    values : pandas.DataFrame
        One row per department: ``department, mean, low, high, status``; suppressed rows
        are drawn hatched.
    title, unit : str
    """
    hidden = set(values["department"][_hidden(values["status"])])
    figure = Figure(figsize=(12, 5.2))
    panels = figure.subfigures(1, 2, squeeze=False)
    left, right = panels[0, 0], panels[0, 1]
    draw_france(left, dict(zip(values["department"], values["mean"], strict=True)),
                title=title, label=unit, hidden=hidden)
    draw_france(right, dict(zip(values["department"], values["high"] - values["low"],
                                strict=True)),
                title="Uncertainty: width of the 90% interval", label=unit, hidden=hidden,
                cmap="magma_r")
    figure.legend(handles=[Patch(facecolor="#d9d9d9", edgecolor="#888888", hatch="////",
                                 label="suppressed by the disclosure gate (or no estimate)")],
                  loc="lower left", fontsize=8, frameon=False)
    return figure


def direct_vs_model_figure(table: pd.DataFrame, *, title: str, unit: str) -> Figure:
    """Model-based against direct estimates per territory, and the shift against n.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`impactmodel.compare.direct_vs_model` (through the gate): ``direct,
        model, n, shift, status``; suppressed rows and rows without a direct estimate are
        not drawn (the caption counts them).
    title, unit : str
    """
    shown = table[~_hidden(table["status"]) & table["direct"].notna()]
    figure = Figure(figsize=(11, 4.4), layout="constrained")
    left, right = figure.subplots(1, 2)
    sizes = 8 + 2 * np.sqrt(shown["n"].to_numpy(dtype=float))
    left.scatter(shown["direct"], shown["model"], s=sizes, alpha=0.6, color="#1f4e79")
    if len(shown):
        low = float(min(shown["direct"].min(), shown["model"].min()))
        high = float(max(shown["direct"].max(), shown["model"].max()))
        left.plot([low, high], [low, high], color="#c0392b", linewidth=1, linestyle="--")
    left.set_xlabel(f"direct (design-based), {unit}")
    left.set_ylabel(f"model-based, {unit}")
    left.set_title("Model against direct (dashed: equal; size: respondents)", fontsize=9)
    right.scatter(shown["n"], shown["shift"], s=14, alpha=0.6, color="#1f4e79")
    right.axhline(0, color="#444444", linewidth=0.8)
    right.set_xscale("log")
    right.set_xlabel("respondents in the domain")
    right.set_ylabel(f"model − direct, {unit}")
    right.set_title("How far the model moved the direct estimate", fontsize=9)
    figure.suptitle(title, fontsize=10)
    return figure
