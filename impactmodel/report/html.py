"""A self-contained HTML page.

Inline CSS, figures as ``data:`` URIs, no script or font fetched from anywhere (the page
opens offline).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping
from io import BytesIO

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_CSS = """
body { font-family: sans-serif; max-width: 1200px; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
.banner { padding: .6em 1em; border-radius: 4px; font-weight: bold; }
.ok { background: #e3f1e3; border: 1px solid #4a8f4a; }
.bad { background: #fbe3e1; border: 1px solid #c0392b; }
table { border-collapse: collapse; font-size: .8em; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f2f2f2; } td.text { text-align: left; }
tr.suppressed td { color: #888; font-style: italic; }
tr.unreliable td { color: #8a6d3b; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; font-size: .85em; }
dt { font-weight: bold; } dd { margin: 0; font-family: monospace; word-break: break-all; }
details { margin-bottom: 1em; }
"""


def png_bytes(figure: Figure, dpi: int = 110) -> bytes:
    """Render ``figure`` to PNG bytes."""
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def figure_block(png: bytes, *, alt: str, caption: str, file_name: str) -> str:
    """Return a ``<figure>`` with the PNG inlined as a data URI."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)} (<code>figures/{html.escape(file_name)}"
            "</code>)</figcaption></figure>")


def _cell(value: object, count: bool = False) -> tuple[str, bool]:
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return "–", False
        if count:
            return f"{value:.0f}", False
        magnitude = abs(float(value))
        text = (f"{value:.0f}" if magnitude >= 1000 else f"{value:.3f}" if magnitude < 10
                else f"{value:.2f}")
        return text, False
    if isinstance(value, int | np.integer):
        return str(value), False
    return html.escape(str(value)), True


def table_block(table: pd.DataFrame, *, caption: str, max_rows: int | None = None) -> str:
    """Return an HTML table; rows the disclosure gate suppressed or flagged carry a class."""
    shown = table if max_rows is None else table.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for record in shown.itertuples(index=False):
        values = dict(zip(shown.columns, record, strict=True))
        status = str(values.get("status", ""))
        css = ("suppressed" if status.startswith("suppressed") else
               "unreliable" if status == "unreliable" else "")
        cells = []
        for column, value in zip(shown.columns, record, strict=True):
            text, is_text = _cell(value, count=column == "n")
            cells.append(f'<td class="text">{text}</td>' if is_text else f"<td>{text}</td>")
        rows.append(f'<tr class="{css}">{"".join(cells)}</tr>')
    more = ("" if max_rows is None or len(table) <= max_rows else
            f"<p>First {max_rows} of {len(table)} rows; all in the CSV.</p>")
    return (f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{more}")


def definition_list(items: Mapping[str, object]) -> str:
    """Return a ``<dl>`` of key / value pairs."""
    return "<dl>" + "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
                            for k, v in items.items()) + "</dl>"


def page(title: str, sections: Iterable[tuple[str, str]], *, banner: str, ok: bool) -> str:
    """Return the whole document: a title, a status banner and ``(heading, body html)`` sections."""
    body = "".join(f"<section><h2>{html.escape(h)}</h2>{content}</section>"
                   for h, content in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f'<p class="banner {"ok" if ok else "bad"}">{html.escape(banner)}</p>'
            f"{body}</body></html>\n")
