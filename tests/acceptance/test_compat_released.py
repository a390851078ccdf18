"""`anchors compat check` on the authors' released viewer files (../shared/data/thought-anchors-viewer):
paper-mode segmentation on every trace, the Δaccuracy identity on every sentence, the category table, and the
similarity-based fields recomputed with all-MiniLM-L6-v2.

Embedding all ~100k released resampled sentences takes minutes on two CPU cores, so the similarity check here
runs on the two smallest traces (fixed choice, not picked by result); `anchors compat check` runs it on all 20.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anchors.cli import app
from anchors.methods.blackbox.compat import compat_check
from anchors.models.embeddings import SentenceEmbedder

SMALLEST = ("deepseek-r1-distill-llama-8b/incorrect_base_solution/problem_2236",
            "deepseek-r1-distill-llama-8b/incorrect_base_solution/problem_330")


def test_segmentation_delta_accuracy_and_categories_on_every_trace(ta_data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compat", "check", str(ta_data), "--no-similarity", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "compat_report.json").read_text())
    assert report["traces"] == 20
    segmentation, delta = report["checks"]["segmentation"], report["checks"]["delta_accuracy"]
    assert segmentation["compared"] == 20 and segmentation["within"] == 20
    assert delta["compared"] == 2494 and delta["within"] == delta["compared"]  # every released sentence, exactly
    table = report["category_table"]
    models = {row["model"] for row in table}
    assert models == {"deepseek-r1-distill-llama-8b", "deepseek-r1-distill-qwen-14b"}
    assert all(row["n_traces"] >= 3 and row["se"] >= 0 for row in table)
    assert not {row["tag"] for row in table} & {"problem_setup", "final_answer_emission", "self_checking"}
    assert "plan_generation" in {row["tag"] for row in table} and "counterfactual_importance_kl" in result.stdout


@pytest.mark.parametrize("trace", SMALLEST)
def test_similarity_fields_recomputed_within_tolerance(ta_data: Path, trace: str) -> None:
    report = compat_check(ta_data / trace, SentenceEmbedder())
    for field in ("different_trajectories_fraction", "overdeterminedness"):
        check = report.checks[field]
        print(f"{trace} {field}: {check.within}/{check.compared} within 0.02 (max deviation {check.max_deviation:.4f})")
        assert check.compared >= 26 and check.within / check.compared >= 0.95


def test_score_from_a_released_folder_ranks_by_the_headline_metric(ta_data: Path, tmp_path: Path) -> None:
    """Issue: the report ranked by `schema_version` and the headline metrics were 'not computed' although the
    authors stored them. Metrics the released rollouts cannot give now come from chunks_labeled.json, marked."""
    import json

    from typer.testing import CliRunner

    from anchors.cli import app
    from anchors.results import ResultsDir, read_trace_results

    folder = ta_data / "deepseek-r1-distill-qwen-14b" / "correct_base_solution" / "problem_330"
    result = CliRunner().invoke(app, ["score", "--from-ta", str(folder), "--mode", "paper", "--out", str(tmp_path),
                                      "--tags", "none"])
    assert result.exit_code == 0, result.output
    back = read_trace_results(tmp_path / "problem_330")
    assert back.headline_metric == "counterfactual_importance_kl" and "schema_version" not in back.metrics
    stored = [c["counterfactual_importance_kl"] for c in json.loads((folder / "chunks_labeled.json").read_text())]
    assert back.sentences["counterfactual_importance_kl"].tolist() == stored  # the authors' values, not NaN
    summary = ResultsDir(tmp_path).trace_manifest("problem_330").methods["blackbox"].summary
    assert "counterfactual_importance_kl" in summary["from_authors"]
    assert "by counterfactual_importance_kl" in result.stdout
    header = (tmp_path / "problem_330" / "report.html").read_text().split('<div class="facts">')[1].split("</div>")[0]
    assert "ranked by" in header and "schema" not in header.lower()
