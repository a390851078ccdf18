"""Figure builders: what each figure encodes (values, colours, whiskers, edges, ρ), from plain arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from scipy.stats import spearmanr

from anchors.metrics.agreement import rank_agreement
from anchors.metrics.categories import category_table
from anchors.viz import (
    TAG_COLORS, category_figure, early_answering_curve, head_map, importance_bars, importance_by_position,
    method_agreement, select_edges, sentence_graph, sentence_heatmap, vertical_profile,
)
from anchors.viz.matrices import color_limit
from anchors.viz.sentences import binned_means, normalised_positions

TAGS = ["plan_generation", "active_computation", "plan_generation", None, "active_computation"]
TEXTS = ["Plan.", "Compute 2+2.", "Another plan.", "Hmm <b>bold</b>.", "4."]


def _by_name(fig: go.Figure) -> dict[str, go.BaseTraceType]:
    return {t.name: t for t in fig.data}


def test_importance_bars_colour_by_tag_and_carry_ci_whiskers() -> None:
    values = np.array([0.5, 0.1, 0.9, np.nan, 0.0])
    lo, hi = values - 0.1, values + 0.2
    fig = importance_bars(values, sentences=TEXTS, tags=TAGS, lower=lo, upper=hi, label="cf KL")
    traces = _by_name(fig)
    assert set(traces) == {"plan generation", "active computation", "untagged"}
    plan = traces["plan generation"]
    assert list(plan.x) == [0, 2] and list(plan.y) == [0.5, 0.9]
    assert plan.marker.color == TAG_COLORS["plan_generation"]
    assert np.allclose(plan.error_y.array, [0.2, 0.2]) and np.allclose(plan.error_y.arrayminus, [0.1, 0.1])
    untagged = traces["untagged"]
    assert np.isnan(untagged.y[0]) and untagged.customdata[0][2] == "NaN (undefined)"
    assert untagged.customdata[0][1] == "Hmm &lt;b&gt;bold&lt;/b&gt;."  # model text is escaped for plotly labels
    assert plan.customdata[0][2] == "0.5 [0.4, 0.7]"
    assert {t.width for t in fig.data} == {0.8}  # one bar width for every tag (no overlapping bars)


def test_importance_bars_reject_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="4 values but there are 5"):
        importance_bars(np.ones(5), lower=np.ones(4), upper=np.ones(5))
    with pytest.raises(ValueError, match="expected 5 sentences"):
        importance_bars(np.ones(5), sentences=["a"])


def test_position_figure_uses_normalised_positions_and_bin_means() -> None:
    assert np.allclose(normalised_positions(5), [0, 0.25, 0.5, 0.75, 1]) and normalised_positions(1)[0] == 0.5
    fig = importance_by_position([1.0, 2.0, 3.0, 4.0, 5.0], tags=TAGS, bins=2)
    mean_line = fig.data[-1]
    assert list(mean_line.y) == [1.5, 4.0]  # bins [0, .5): 1, 2 ; [.5, 1]: 3, 4, 5
    centres, means = binned_means(np.array([0.0, 1.0]), np.array([np.nan, 2.0]), 4)
    assert list(centres) == [0.875] and list(means) == [2.0]


def test_heatmap_keeps_nan_cells_and_clips_colours_at_a_percentile() -> None:
    m = np.full((4, 4), np.nan)
    m[0, 1:] = [0.1, -0.2, 0.3]
    m[1, 2:] = [0.05, 100.0]
    fig = sentence_heatmap(m, label="effect", percentile=50)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (4, 4) and np.isnan(z[3, 0]) and z[1, 3] == pytest.approx(100.0)
    assert fig.data[0].zmax == pytest.approx(0.2) and fig.data[0].zmin == pytest.approx(-0.2)
    assert color_limit(np.full((2, 2), np.nan)) == 1.0 and color_limit(np.zeros((2, 2))) == 1.0
    with pytest.raises(ValueError, match="square"):
        sentence_heatmap(np.zeros((2, 3)))


def test_head_map_outlines_the_receiver_heads() -> None:
    kurtosis = np.arange(12.0).reshape(3, 4)
    fig = head_map(kurtosis, highlight=[(2, 3), (1, 0)])
    assert np.array_equal(np.asarray(fig.data[0].z), kurtosis)
    assert list(fig.data[1].x) == [3, 0] and list(fig.data[1].y) == [2, 1]
    assert vertical_profile(np.array([0.1, 0.2, np.nan]), head=(1, 2)).layout.yaxis.title.text == "vertical score, L1H2"


def test_select_edges_threshold_limit_and_order() -> None:
    m = np.full((4, 4), np.nan)
    m[0, 1], m[0, 2], m[1, 3], m[2, 3], m[0, 3] = 0.5, -0.9, 0.1, 0.0, 0.3
    assert select_edges(m, threshold=0.3) == [(0, 2, -0.9), (0, 1, 0.5), (0, 3, 0.3)]
    assert select_edges(m, max_edges=2) == [(0, 2, -0.9), (0, 1, 0.5)]
    assert (2, 3, 0.0) not in select_edges(m)  # zero is no link


def test_sentence_graph_draws_every_selected_edge_and_sizes_nodes_by_importance() -> None:
    m = np.full((5, 5), np.nan)
    m[0, 1:] = [0.4, 0.3, -0.2, 0.1]
    fig = sentence_graph(m, [2.0, 0.0, np.nan, 1.0, 0.5], sentences=TEXTS, tags=TAGS, threshold=0.15)
    edge_traces = [t for t in fig.data if t.mode == "lines"]
    segments = sum(list(t.x).count(None) for t in edge_traces)
    assert segments == 3
    assert {t.line.color for t in edge_traces} == {"#B2182B", "#2166AC"}
    nodes = _by_name(fig)["plan generation"]
    assert nodes.marker.size[0] > nodes.marker.size[1]  # sentence 0 (2.0) is drawn bigger than sentence 2 (NaN)
    assert [c[0] for c in nodes.customdata] == [0, 2]
    assert sentence_graph(np.full((1, 1), np.nan)).data  # a single sentence still draws its node


def test_rank_agreement_matches_scipy_and_ignores_nan_pairs() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)
    b[3] = np.nan
    table = rank_agreement({"a": a, "b": b, "c": np.ones(30)})
    row = table.iloc[0]
    ok = np.isfinite(b)
    assert row["spearman"] == pytest.approx(spearmanr(a[ok], b[ok]).statistic) and row["n"] == 29
    assert np.isnan(table.iloc[1]["spearman"])  # a constant method has no rank correlation
    fig = method_agreement({"a": a, "b": b}, bootstrap=200)
    assert fig.layout.annotations[0].text.startswith(f"ρ = {row['spearman']:.2f} [") and fig.layout.annotations[0].text.endswith("(n = 29)")
    with_ci = rank_agreement({"a": a, "b": b}, bootstrap=500, seed=1).iloc[0]
    assert with_ci["spearman_lo"] < row["spearman"] < with_ci["spearman_hi"]  # a 95% interval around the estimate
    assert with_ci.equals(rank_agreement({"a": a, "b": b}, bootstrap=500, seed=1).iloc[0])  # seeded: the same again
    assert rank_agreement({"a": a, "b": a}, top=5).iloc[0]["top_overlap"] == 5
    assert rank_agreement({"a": a, "b": -a}, top=5).iloc[0]["top_overlap"] == 0
    with pytest.raises(ValueError, match="at least two"):
        method_agreement({"a": a})


def test_category_figure_plots_the_table_rows() -> None:
    rows = [(f"t{k}", i, tag, 0.5, float(k + i)) for k in range(3) for i, tag in enumerate(["plan_generation", "fact_retrieval"])]
    table = category_table(pd.DataFrame(rows, columns=["trace_id", "index", "tag", "accuracy", "m"]), ["m"])
    fig = category_figure(table, "m")
    plan = _by_name(fig)["plan generation"]
    expected = table.set_index("tag").loc["plan_generation"]
    assert plan.y[0] == pytest.approx(expected["mean"]) and plan.error_y.array[0] == pytest.approx(expected["se"])
    assert plan.x[0] == pytest.approx(expected["position_mean"])
    assert "no tag has enough data" in category_figure(table, "other").layout.annotations[0].text


def test_early_answering_curve_draws_a_line_per_group_with_bands() -> None:
    table = pd.DataFrame({"fraction": [0, 0.5, 1, 0, 0.5, 1], "agreement": [0.2, 0.6, 1, 0.5, 0.9, 1],
                          "agreement_lo": [0.1] * 6, "agreement_hi": [1.0] * 6, "group": ["short"] * 3 + ["long"] * 3})
    fig = early_answering_curve(table)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["long", "short"] and list(lines[1].y) == [0.2, 0.6, 1]
    assert sum(t.fill == "toself" for t in fig.data) == 2
    with pytest.raises(ValueError, match="agreement"):
        early_answering_curve(pd.DataFrame({"fraction": [0.0]}))
