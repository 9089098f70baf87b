"""Maps of France by department, with the overseas departments as insets.

Outlines: ``_data/departments.geojson`` (IGN Admin Express COG 2018 via the
france-geojson project, simplified; Licence Ouverte / Etalab), copied from
``shared/reference``. Every map carries the credit :data:`CREDIT`.

Coordinates are longitude / latitude drawn with an aspect of ``1 / cos(latitude)`` per
panel (a local equirectangular projection: shapes are right, areas nearly so at the
scale of a department). Rings are re-oriented (outer counter-clockwise, holes clockwise)
so that enclaves — Paris inside its suburbs, the Comtat Venaissin inside the Drôme —
are left empty by the non-zero fill rule and drawn by their own department.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources

import matplotlib as mpl
import matplotlib.colors as mcolors
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath
from numpy.typing import NDArray

CREDIT = "Outlines: IGN – Admin Express"

#: overseas departments drawn as insets: code -> short label
OVERSEAS = {"971": "Guadeloupe", "972": "Martinique", "973": "Guyane", "974": "La Réunion",
            "976": "Mayotte"}

#: metropolitan frame (longitude, latitude)
_METROPOLE = ((-5.3, 9.7), (41.2, 51.2))
_SUPPRESSED_COLOUR = "#d9d9d9"


def _signed_area(ring: NDArray[np.float64]) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _ring_path(ring: NDArray[np.float64], outer: bool) -> tuple[NDArray, NDArray]:
    if (_signed_area(ring) > 0) != outer:
        ring = ring[::-1]
    codes = np.full(len(ring), MplPath.LINETO, dtype=np.uint8)
    codes[0], codes[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
    return ring, codes


def polygon_path(polygons: list[list[list[list[float]]]]) -> MplPath:
    """Return one compound path of GeoJSON polygons (rings as [[lon, lat], ...]).

    The first ring of each polygon is its outline, the others its holes; rings are
    re-oriented so that the non-zero fill rule leaves the holes empty whatever the
    orientation in the file.
    """
    vertices, codes = [], []
    for polygon in polygons:
        for k, ring in enumerate(polygon):
            v, c = _ring_path(np.asarray(ring, dtype=float), outer=k == 0)
            vertices.append(v)
            codes.append(c)
    return MplPath(np.concatenate(vertices), np.concatenate(codes))


@cache
def department_outlines() -> Mapping[str, MplPath]:
    """Return one compound path (every polygon and hole) per department code.

    Returns
    -------
    mapping of str to matplotlib.path.Path
        The 101 departments, in longitude / latitude.
    """
    text = resources.files("impactmodel").joinpath("_data", "departments.geojson").read_text(
        encoding="utf-8")
    outlines: dict[str, MplPath] = {}
    for feature in json.loads(text)["features"]:
        geometry = feature["geometry"]
        polygons = (geometry["coordinates"] if geometry["type"] == "MultiPolygon"
                    else [geometry["coordinates"]])
        outlines[feature["properties"]["code"]] = polygon_path(polygons)
    return outlines


def _draw(ax: Axes, codes: list[str], values: Mapping[str, float], hidden: set[str],
          cmap: mcolors.Colormap, norm: mcolors.Normalize) -> None:
    outlines = department_outlines()
    shown = [c for c in codes if c not in hidden and np.isfinite(values.get(c, np.nan))]
    blank = [c for c in codes if c not in shown]
    coloured = PatchCollection([PathPatch(outlines[c]) for c in shown], cmap=cmap, norm=norm,
                               edgecolor="white", linewidth=0.3)
    coloured.set_array(np.array([values[c] for c in shown]))
    ax.add_collection(coloured)
    if blank:
        ax.add_collection(PatchCollection(
            [PathPatch(outlines[c]) for c in blank], facecolor=_SUPPRESSED_COLOUR,
            edgecolor="#888888", hatch="////", linewidth=0.3))
    extent = np.concatenate([outlines[c].vertices for c in codes])
    ax.set_xlim(extent[:, 0].min() - 0.05, extent[:, 0].max() + 0.05)
    ax.set_ylim(extent[:, 1].min() - 0.05, extent[:, 1].max() + 0.05)
    ax.set_aspect(1 / np.cos(np.deg2rad(extent[:, 1].mean())))
    ax.set_axis_off()


def draw_france(figure: Figure | SubFigure, values: Mapping[str, float], *, title: str,
                label: str, hidden: set[str] | frozenset[str] = frozenset(),
                cmap: str = "viridis") -> Axes:
    """Draw one map of the 101 departments coloured by ``values``.

    Parameters
    ----------
    figure : Figure or SubFigure
        Drawn on whole (metropolitan France, overseas insets on the left).
    values : mapping of str to float
        Department code -> value; departments without a finite value, or in ``hidden``,
        are drawn grey and hatched.
    title, label : str
        Panel title and colour-bar label.
    hidden : set of str
        Department codes to show as suppressed.
    cmap : str

    Returns
    -------
    matplotlib.axes.Axes
        The metropolitan panel.
    """
    finite = np.array([v for c, v in values.items() if c not in hidden and np.isfinite(v)])
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    norm = mcolors.Normalize(low, high if high > low else low + 1.0)
    colour_map = mpl.colormaps[cmap]
    metropole = [c for c in department_outlines() if c not in OVERSEAS]
    main = figure.add_axes((0.22, 0.08, 0.76, 0.84))
    _draw(main, metropole, values, set(hidden), colour_map, norm)
    main.set_xlim(*_METROPOLE[0])
    main.set_ylim(*_METROPOLE[1])
    main.set_title(title, fontsize=10)
    height = 0.84 / len(OVERSEAS)
    for k, (code, name) in enumerate(OVERSEAS.items()):
        inset = figure.add_axes((0.01, 0.92 - (k + 1) * height, 0.18, height * 0.8))
        _draw(inset, [code], values, set(hidden), colour_map, norm)
        inset.set_title(name, fontsize=6, pad=1)
    bar = figure.colorbar(mpl.cm.ScalarMappable(norm, colour_map),
                          ax=main, shrink=0.6, pad=0.01)
    bar.set_label(label, fontsize=8)
    figure.text(0.99, 0.01, CREDIT, ha="right", va="bottom", fontsize=6, color="#555555")
    return main
