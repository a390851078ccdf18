"""Shared look: one colour per sentence function tag, readable names for tags and metrics, the base layout."""

from __future__ import annotations

import html

import plotly.graph_objects as go

from anchors.results.kinds import METRIC_LABELS  # each kind's columns are named in its row there
from anchors.traces.taxonomy import TAG_COLOURS, UNKNOWN, UNKNOWN_COLOUR

# The tag palette is the taxonomy's (TAG_COLOURS, one definition): a tag looks the same in every figure, report
# and label table. Legends list the tags in the taxonomy's order, `unknown` drawn as untagged.
UNTAGGED_COLOR = UNKNOWN_COLOUR
POSITIVE_COLOR = "#B2182B"
NEGATIVE_COLOR = "#2166AC"
FONT = dict(family="Helvetica, Arial, sans-serif", size=13)


def tag_color(tag: str | None) -> str:
    return TAG_COLOURS.get(tag or "", UNTAGGED_COLOR)


def tag_label(tag: str | None) -> str:
    return (tag or "untagged").replace("_", " ")


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def tag_order(tags: list[str | None]) -> list[str | None]:
    """Distinct tags, taxonomy order first, unknown tags alphabetically, untagged last."""
    known = [t for t in TAG_COLOURS if t != UNKNOWN and t in tags]
    other = sorted({t for t in tags if t and t not in TAG_COLOURS})
    return known + other + ([None] if None in tags else [])


def base_layout(fig: go.Figure, title: str | None, **layout: object) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.0, xref="paper", xanchor="left") if title else None, template="plotly_white",
                      font=FONT, margin=dict(l=60, r=20, t=60 if title else 20, b=50), **layout)
    return fig


def short(text: str, limit: int = 90) -> str:
    """One line of a sentence for a hover label: shortened (hover boxes don't wrap) and HTML-escaped, since
    plotly reads tags such as <br> and <a> in labels and sentences are model output."""
    text = " ".join(str(text).split())
    return html.escape(text if len(text) <= limit else text[: limit - 1] + "…", quote=False)
