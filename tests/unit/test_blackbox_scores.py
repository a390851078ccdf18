"""score_trace / score_rollouts end to end on scripted samplers: paper vs default conventions, degenerate
inputs (defined NaN with a reason, never a crash), determinism, the result object and the files written."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anchors.methods.blackbox import BlackBoxConfig
from anchors.methods.sampling import plan_prompts, sample_trace_rollouts
from anchors.results import ResultsDir, read_trace_results
from anchors.results.save import save_blackbox
from anchors.methods.scores import METRICS, score_trace
from anchors.models.templates import paper_template
from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams, rollout_seed
from anchors.testing import HashEmbedder, PlantedWorld
from anchors.traces.records import Trace
from anchors.traces.segment import split_sentences

WORLD = PlantedWorld(n_sentences=5, planted=2, decoy=1)
FAST = {"rollouts": 12, "bootstrap": 200, "permutations": 200}


@pytest.fixture(autouse=True)
def _no_grade_file_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_NO_CACHE", "1")


class FixedSampler:
    """Writes `text(prompt, k)` for every rollout; `fail(prompt)` makes a request's rollouts fail."""

    identity = "fixed"

    def __init__(self, text, fail=lambda prompt: False) -> None:
        self.text, self.fail, self.calls = text, fail, 0

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        for request in requests:
            for k in range(request.n):
                self.calls += 1
                seed = rollout_seed(request.seed, k)
                if self.fail(request.prompt_text):
                    yield Rollout(key=request.key, index=k, seed=seed, text="", finish_reason="error", error="boom")
                else:
                    yield Rollout(key=request.key, index=k, seed=seed, text=self.text(request.prompt_text, k), finish_reason="eos")


def trace(thinking: str, gold: str | None = "7") -> Trace:
    return Trace(id="t", problem="What is 3 + 4?", thinking=thinking, answer_text="\\boxed{7}", gold_answer=gold)


THREE = "First I add three and four together. That gives seven as the total. So the answer is seven.\n"


def run(t: Trace, sampler, **config) -> object:
    return score_trace(t, sampler, paper_template(), BlackBoxConfig(**{**FAST, **config}), embedder=HashEmbedder(), progress=False)


# ------------------------------------------------------------------------------------------ conventions


def test_paper_mode_conventions() -> None:
    scores = score_trace(WORLD.trace(), WORLD.sampler(), paper_template(), BlackBoxConfig(mode="paper", rollouts=40),
                         embedder=WORLD.embedder(), progress=False)
    frame = scores.to_pandas()
    last = frame.iloc[-1]
    for metric in ("resampling_importance_accuracy", "resampling_importance_kl", "counterfactual_importance_accuracy",
                   "counterfactual_importance_kl", "forced_importance_accuracy", "forced_importance_kl",
                   "different_trajectories_fraction", "overdeterminedness"):
        assert last[metric] == 0.0, metric
    # the published sign: acc(D_i) − acc(R_{i+1}) is negative where keeping the sentence helps
    assert frame.loc[WORLD.planted, "counterfactual_importance_accuracy"] < -0.3
    assert frame["accuracy_lo"].isna().all() and frame["anchor"].isna().all()  # no intervals, no flag
    assert not frame[list(METRICS)].isna().any().any()  # undefined quantities are the paper's 0, never NaN


def test_default_mode_conventions() -> None:
    scores = run(WORLD.trace(), WORLD.sampler(), rollouts=40)
    frame = scores.to_pandas()
    assert len(frame) == WORLD.n_sentences and scores.run["rollouts_resampled"] == 40 * (WORLD.n_sentences + 1)
    assert frame.loc[WORLD.planted, "counterfactual_importance_accuracy"] > 0.3  # one sign for every metric
    assert frame.loc[WORLD.planted, "anchor"] is True or bool(frame.loc[WORLD.planted, "anchor"])
    assert (frame["counterfactual_importance_kl_lo"] <= frame["counterfactual_importance_kl"] + 1e-12).all()
    assert scores.top(1)["index"].iloc[0] == WORLD.planted
    # the last sentence is scored against the rollouts after the whole thinking, not set to 0
    assert math.isfinite(frame.iloc[-1]["resampling_importance_kl"])


def test_paper_prefixes_are_the_authors_join_and_replace() -> None:
    thinking = "Let me think about this. Seven is odd. Let me think about this. So seven is the result here."
    t = trace(thinking)
    sentences = split_sentences(thinking, mode="paper")
    plan = plan_prompts(t, sentences, paper_template(), "paper")
    # chunk 2 repeats chunk 0: the authors' str.replace removes both occurrences
    assert plan.prefixes[2] == "Seven is odd."
    assert plan.prefixes[1] == "Let me think about this."
    assert plan.forced_suffix.endswith("the final answers is \\boxed{")
    default = plan_prompts(t, split_sentences(thinking), paper_template(), "default")
    assert default.prefixes[2] == thinking[: thinking.index("Let me", 5)] and default.prefixes[-1] == thinking


def test_same_seed_same_scores_other_seed_other_scores() -> None:
    a, b = run(WORLD.trace(), WORLD.sampler()), run(WORLD.trace(), WORLD.sampler())
    c = run(WORLD.trace(), WORLD.sampler(), seed=1)
    assert a.to_pandas().equals(b.to_pandas())
    assert not a.to_pandas()["accuracy"].equals(c.to_pandas()["accuracy"])


def test_a_store_path_is_accepted_with_the_in_memory_jobs(tmp_path: Path) -> None:
    sampler = WORLD.sampler()
    scores = score_trace(WORLD.trace(), sampler, paper_template(), BlackBoxConfig(**FAST), embedder=WORLD.embedder(),
                         store=str(tmp_path / "rollouts.sqlite"), progress=False)
    assert len(scores.rows) == WORLD.n_sentences and sampler.calls > 0


# ------------------------------------------------------------------------------------------ degenerate inputs


def test_no_extractable_answer_anywhere() -> None:
    sampler = FixedSampler(lambda prompt, k: "I am not sure." if not prompt.endswith("{") else "")
    frame = run(trace(THREE), sampler).to_pandas()
    for metric in ("accuracy", "resampling_importance_kl", "counterfactual_importance_kl", "forced_importance_kl"):
        assert frame[metric].isna().all(), metric
    assert frame["nan_reason"].str.contains("no rollout has an extractable answer").all()
    assert frame["different_trajectories_fraction"].notna().all()  # first sentences exist, answers don't
    assert (frame["anchor"] == False).all()


def test_one_sentence_trace() -> None:
    world_sampler = FixedSampler(lambda prompt, k: "7}" if prompt.endswith("{") else f"Maybe {k}.\n</think>\n\\boxed{{{6 + k % 2}}}")
    frame = run(trace("Seven it is.\n"), world_sampler).to_pandas()
    assert len(frame) == 1 and math.isfinite(frame["resampling_importance_kl"].iloc[0])
    paper = run(trace("Seven it is.\n"), world_sampler, mode="paper").to_pandas()
    assert paper["counterfactual_importance_kl"].iloc[0] == 0.0  # the paper's last sentence


def test_a_sentence_with_zero_successful_rollouts() -> None:
    def text(prompt: str, k: int) -> str:
        return "7}" if prompt.endswith("{") else f"Another idea {k}.\n</think>\n\\boxed{{{7 if k % 3 else 8}}}"

    sampler = FixedSampler(text, fail=lambda prompt: prompt.endswith("together. ") and not prompt.endswith("{"))
    scores = run(trace(THREE), sampler)
    row = scores.to_pandas().iloc[1]
    assert row["n_resampled"] == 0 and math.isnan(row["accuracy"]) and math.isnan(row["different_trajectories_fraction"])
    assert "R_1: no successful rollouts" in row["nan_reason"]
    assert scores.run["rollouts_failed"] == FAST["rollouts"]


def test_all_rollouts_identical() -> None:
    sampler = FixedSampler(lambda prompt, k: "7}" if prompt.endswith("{") else "Same thought again.\n</think>\n\\boxed{7}")
    frame = run(trace(THREE), sampler).to_pandas()
    assert (frame["counterfactual_importance_kl"] == 0.0).all() and (frame["resampling_importance_accuracy"] == 0.0).all()
    assert frame["overdeterminedness"].tolist() == pytest.approx([1 - 1 / FAST["rollouts"]] * 3)
    assert (frame["counterfactual_importance_kl_hi"] == 0.0).all() and (frame["anchor"] == False).all()


def test_no_gold_answer_leaves_distributions_and_explains_accuracy() -> None:
    frame = run(WORLD.trace().model_copy(update={"gold_answer": None}), WORLD.sampler()).to_pandas()
    assert frame["accuracy"].isna().all() and frame["counterfactual_importance_kl"].notna().all()
    assert frame["nan_reason"].str.contains("no gold answer").all()


def test_unfinished_rollouts_are_closed_and_answered() -> None:
    world = PlantedWorld(n_sentences=5, planted=2, decoy=1, p_unfinished=0.5)
    scores = score_trace(world.trace(), world.sampler(), paper_template(), BlackBoxConfig(**FAST),
                         embedder=world.embedder(), progress=False)
    assert scores.run["rollouts_closed"] > 0
    assert all(row.n_answered == row.n_resampled for row in scores.rows)


# ------------------------------------------------------------------------------------------ files


def test_written_files_round_trip(tmp_path: Path) -> None:
    scores = run(WORLD.trace(), WORLD.sampler(), forced=False)
    folder = save_blackbox(ResultsDir(tmp_path), WORLD.trace(), scores, embedder="scripted")
    assert sorted(p.name for p in folder.iterdir()) == ["alternatives.json", "manifest.json", "scores.csv", "scores.jsonl",
                                                        "sentence_matrix.npz"]
    first = json.loads((folder / "scores.jsonl").read_text().splitlines()[0])
    assert first["forced_importance_kl"] is None and first["tag"] is None and "schema_version" not in first
    csv = pd.read_csv(folder / "scores.csv")
    assert "forced_importance_kl" not in csv.columns and "counterfactual_importance_kl_lo" in csv.columns and "tag" in csv.columns
    back = read_trace_results(folder)
    assert back.sentences["counterfactual_importance_kl"].tolist() == pytest.approx(scores.to_pandas()["counterfactual_importance_kl"].tolist())
    assert np.allclose(back.matrices["resampling"], scores.matrix.matrix, equal_nan=True)
    assert back.alternatives == {k: list(v) for k, v in scores.alternatives.items()}
    assert any(back.alternatives.values()) and all(len(set(t)) == len(t) <= 5 for t in back.alternatives.values())
    entry = ResultsDir(tmp_path).trace_manifest(scores.trace_id).methods["blackbox"]
    assert entry.settings["bootstrap"] == FAST["bootstrap"] and entry.settings["embedder"] == "scripted"
    assert "forced_importance_kl" in entry.summary["not_computed"] and entry.versions["anchors"]


def test_nan_is_written_as_nan_and_read_back(tmp_path: Path) -> None:
    sampler = FixedSampler(lambda prompt, k: "no answer here." if not prompt.endswith("{") else "")
    scores = run(trace(THREE), sampler)
    folder = save_blackbox(ResultsDir(tmp_path), trace(THREE), scores, embedder="hash")
    assert "NaN" in (folder / "scores.jsonl").read_text()
    assert math.isnan(read_trace_results(folder).sentences["accuracy"].iloc[0])


def test_matrix_values_are_multiples_of_one_over_n() -> None:
    scores = run(WORLD.trace(), WORLD.sampler(), rollouts=20)
    m = scores.matrix.matrix
    defined = m[np.isfinite(m)]
    assert defined.size == WORLD.n_sentences * (WORLD.n_sentences - 1) // 2
    assert np.allclose(defined * 20, np.round(defined * 20))
    assert np.isnan(m[np.tril_indices(WORLD.n_sentences)]).all()


def test_rollouts_are_graded_with_the_mode_extractor() -> None:
    rollouts = sample_trace_rollouts(trace(THREE), FixedSampler(lambda p, k: "7}" if p.endswith("{") else "Hmm.\n</think>\n\\boxed{5} no \\boxed{7}"),
                                     paper_template(), BlackBoxConfig(rollouts=2), progress=False)
    paper = sample_trace_rollouts(trace(THREE), FixedSampler(lambda p, k: "7}" if p.endswith("{") else "Hmm.\n</think>\n\\boxed{5} no \\boxed{7}"),
                                  paper_template(), BlackBoxConfig(mode="paper", rollouts=2), progress=False)
    assert rollouts.prefixes[0].resampled[0].answer == "7" and paper.prefixes[0].resampled[0].answer == "5"
