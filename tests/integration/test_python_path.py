"""The notebook path in Python: load → score → DataFrame → plot → report → results folder, with the same result
object all the way (issue: write_report, viz and .plot() did not take what score_trace returns)."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

import anchors
from anchors import viz

TRACE = anchors.Trace(id="arith-25", problem="What is 12 - 5 + 8?", gold_answer="15",
                      thinking="First, 12 - 5 = 7.\n\nThen 7 + 8 = 15. So the answer is 15.",
                      answer_text="\n\nThe answer is \\boxed{15}.")


def test_score_then_dataframe_plot_report_and_folder(tmp_path: Path) -> None:
    model = anchors.load_model("tiny-qwen2", device="cpu")
    config = anchors.BlackBoxConfig(rollouts=2, max_new_tokens=8, bootstrap=50)
    assert anchors.BlackBoxConfig().rollouts == 8 and anchors.BlackBoxConfig().max_new_tokens == 96  # the CLI's defaults
    scores = anchors.score_trace(TRACE, anchors.make_sampler(model), model.template, config,
                                 store=str(tmp_path / "rollouts.sqlite"))
    frame = scores.to_pandas()
    assert list(frame.columns[:4]) == ["index", "text", "tag", "counterfactual_importance_kl"] and len(frame) == 3
    assert "schema_version" not in frame.columns and "trace_id" not in frame.columns
    for figure in (scores.plot(), viz.importance_bars(scores), viz.sentence_heatmap(scores), viz.sentence_graph(scores),
                   viz.importance_by_position(scores, metric="different_trajectories_fraction")):
        assert isinstance(figure, go.Figure) and figure.data
    report = anchors.write_report(scores, tmp_path / "report.html")
    assert "arith-25" in report.read_text(encoding="utf-8")
    folder = anchors.write_results(scores, tmp_path / "results")
    back = anchors.read_trace_results(folder)
    assert back.methods == ("blackbox",) and back.headline_metric == "counterfactual_importance_kl"
    assert back.texts() == list(frame["text"]) and isinstance(back.plot(), go.Figure)
