"""What a new user meets first: the README's size, figure folders named after the model, no empty figures, trace ids
for single problems, fixed choices listed in --help (issue: the first ten minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchors.errors import InputError
from anchors.report.batch import group_name, model_alias
from anchors.report.figures import pooled_figures
from anchors.report.synthetic import synthetic_results
from anchors.rollouts.generate import problems_to_run

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_is_short_and_points_only_inside_the_repository() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "../shared" not in text and "methods.md §" not in text
    for link in ("docs/methods.md", "docs/results.md", "docs/cli.md", "docs/backends.md", "docs/design.md"):
        assert link in text and (REPO / link).is_file(), link


def test_figure_folders_are_named_by_the_model_alias() -> None:
    assert model_alias("hf:smollm2-135m@0123456789ab:float32:cpu") == "smollm2-135m"
    assert model_alias("openai:deepseek-ai/DeepSeek-R1-Distill-Qwen-14B+ab12") == "deepseek-ai--DeepSeek-R1-Distill-Qwen-14B"
    result = synthetic_results(4)
    assert group_name(result) == "synthetic"
    odd = type(result)(trace_id="t", sentences=result.sentences, info={"model": "hf:m:x@y"})
    assert ":" not in group_name(odd) and "/" not in group_name(odd)


def test_too_little_data_is_a_note_not_an_empty_figure() -> None:
    figures, table = pooled_figures([synthetic_results(6, seed=1, trace_id="a")])  # one trace: no tag in ≥ 3 traces
    assert table.empty
    assert all(isinstance(v, str) and "too little data" in v for k, v in figures.items() if k.startswith("categories_"))


def test_a_single_problem_gets_its_own_id(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    (first,), _ = problems_to_run(problem="What is 2 + 2?", problems_path=None, out=out, limit=None)
    (second,), _ = problems_to_run(problem="What is 3 + 3?", problems_path=None, out=out, limit=None)
    assert first.id.startswith("problem-") and first.id != second.id  # two problems into one file stay apart
    (named,), _ = problems_to_run(problem="What is 2 + 2?", problems_path=None, out=out, limit=None, problem_id="two",
                                  gold_answer="4")
    assert named.id == "two" and named.gold_answer == "4"
    with pytest.raises(InputError, match="--id 'a b'"):
        problems_to_run(problem="x", problems_path=None, out=out, limit=None, problem_id="a b")
