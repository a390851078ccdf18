"""Tables as figures (the trace-level tests' rows in the report): plain columns, numbers rounded, the sentence column
kept so a row can be matched to the sentence list."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from anchors.viz.style import base_layout


def results_table(table: pd.DataFrame, columns: Sequence[str], *, title: str | None = None, digits: int = 3) -> go.Figure:
    """The `columns` of `table` (those present) as a plotly table; floats to `digits` decimals, NaN as '—'."""
    shown = [c for c in columns if c in table.columns]
    cells = [[_cell(v, digits) for v in table[c]] for c in shown]
    fig = go.Figure(go.Table(header=dict(values=[c.replace("_", " ") for c in shown], align="left", fill_color="#EEF1F5"),
                             cells=dict(values=cells, align="left")))
    base_layout(fig, title, height=min(120 + 28 * len(table), 700))
    return fig


def _cell(value: object, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        return "—" if not np.isfinite(value) else f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return html.escape(", ".join(str(v) for v in value))
    return "—" if value is None else html.escape(str(value))  # plotly reads tags in cell text; sentences are model output
