"""Planning a trace's resampling requests, adaptive rounds, and the Thought Anchors layout round trip."""

from __future__ import annotations

import json

import pytest

from anchors.models import load_model
from anchors.rollouts.base import Rollout, SamplingParams, rollout_seed
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.plan import resampling_requests
from anchors.thought_anchors.rollouts import export_thought_anchors, read_solutions, solutions_as_rollouts
from anchors.traces.records import Trace
from anchors.thought_anchors import load_thought_anchors

TRACE = Trace(id="arith-01", problem="What is 12 - 5 + 8?", thinking="First, 12 - 5 = 7.\n\nThen 7 + 8 = 15. So it is 15.",
              answer_text="\n\nThe answer is \\boxed{15}.", gold_answer="15")


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-qwen2", device="cpu")


def test_default_mode_prefixes_are_the_thinking_up_to_each_sentence(tiny) -> None:
    requests = resampling_requests(TRACE, rollouts=4, seed=1, template=tiny.template)
    assert [r.key for r in requests] == [f"arith-01/resample/{i}/0" for i in range(4)]  # + the whole thinking
    assert [r.meta["chunk_removed"] for r in requests] == ["First, 12 - 5 = 7.", "Then 7 + 8 = 15.", "So it is 15.", ""]
    prompt = tiny.template.render(TRACE.problem)
    assert requests[0].prompt_text == prompt and requests[1].prompt_text == prompt + "First, 12 - 5 = 7.\n\n"
    assert requests[3].prompt_text == prompt + TRACE.thinking
    assert len({r.seed for r in requests}) == 4 and all(r.n == 4 for r in requests)
    assert [r.n for r in resampling_requests(TRACE, rollouts=25, template=tiny.template)[:3]] == [10, 10, 5]  # blocks


def test_paper_mode_uses_the_published_prefixes() -> None:
    from anchors.models.templates import paper_template

    requests = resampling_requests(TRACE, rollouts=2, mode="paper", template=paper_template())
    assert len(requests) == 3 and requests[2].prompt_text.endswith("<think>\nFirst, 12 - 5 = 7. Then 7 + 8 = 15.")
    assert requests[2].prompt_ids is None


class Scripted:
    identity = "scripted"

    def sample(self, requests, params):
        for request in requests:
            for k in request.wanted_indices():
                yield Rollout(key=request.key, index=k, seed=rollout_seed(request.seed, k),
                              text=f"So \\boxed{{{15 if k % 2 else 14}}}.", finish_reason="stop")


def test_thought_anchors_layout_round_trip(tmp_path, tiny) -> None:
    requests = resampling_requests(TRACE, rollouts=3, seed=2, template=tiny.template)
    results = collect_rollouts(Scripted(), requests, SamplingParams(), progress=False)
    folder = export_thought_anchors(TRACE, requests, results, tmp_path)
    solutions = read_solutions(folder)
    assert sorted(solutions) == [0, 1, 2]
    first = solutions[1][1]
    assert first.chunk_removed == "Then 7 + 8 = 15." and first.prefix_without_chunk == "First, 12 - 5 = 7.\n\n"
    assert first.answer == "15" and first.is_correct is True and solutions[1][0].is_correct is False
    back = solutions_as_rollouts(TRACE.id, solutions)
    exported = {k: v for k, v in results.items() if k != "arith-01/resample/3/0"}  # after the whole thinking: no chunk
    assert back == {k: [r.model_copy(update={"prompt_tokens": 0, "completion_tokens": 0, "token_ids": []})
                        for r in v] for k, v in exported.items()}
    (loaded,) = load_thought_anchors(tmp_path)
    assert loaded.thinking == TRACE.thinking and loaded.gold_answer == "15"


def test_the_authors_records_load_unchanged(tmp_path) -> None:
    chunk = tmp_path / "problem_330" / "chunk_4"
    chunk.mkdir(parents=True)
    record = {"chunk_removed": "Wait.", "prefix_without_chunk": "Let me see.", "chunk_resampled": "Hmm,",
              "rollout": "Hmm, so \\boxed{3}", "full_cot": "...", "answer": "3", "is_correct": True}
    (chunk / "solutions.json").write_text(json.dumps([record, {**record, "error": "API failure", "rollout": None}]))
    solutions = read_solutions(tmp_path / "problem_330")
    assert solutions[4][0].model_dump(exclude_none=True) == record
    rollouts = solutions_as_rollouts("p330", solutions)["p330/resample/4/0"]
    assert [(r.text, r.seed, r.ok) for r in rollouts] == [("Hmm, so \\boxed{3}", -1, True), ("", -1, False)]
