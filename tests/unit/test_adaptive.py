"""Adaptive sampling, request streams shared between runs (what makes the rollout store serve a re-run), and
`anchors score` on a JSONL file with a scripted sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anchors.methods.blackbox.adaptive import AdaptiveConfig, score_trace_adaptive, separated
from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.scores import score_trace
from anchors.models.templates import paper_template
from anchors.testing import PlantedWorld

WORLD = PlantedWorld(n_sentences=6, planted=3, decoy=1)


@pytest.fixture(autouse=True)
def _no_grade_file_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_NO_CACHE", "1")


def test_separated() -> None:
    value = np.array([2.0, 0.1, 1.5, 0.2, 1.0])
    lo = np.array([1.5, 0.0, 1.2, 0.1, 0.3])
    hi = np.array([2.5, 0.4, 1.8, 1.3, 1.4])
    # top 2 = {0, 2}. 0 is clearly in (lower bound 1.5 above the rest's highest upper bound 1.4), 2 is not (1.2);
    # 1 is clearly out (upper bound 0.4 below the top's lowest lower bound 1.2), 3 and 4 are not
    assert separated(value, lo, hi, k=2).tolist() == [True, True, False, False, False]
    assert not separated(value, lo, hi, k=5).any()


def test_adaptive_uses_fewer_rollouts_and_shares_the_fixed_runs_streams() -> None:
    config = BlackBoxConfig(rollouts=40, forced=False, matrix=False, bootstrap=200)
    fixed = score_trace(WORLD.trace(), WORLD.sampler(), paper_template(), config, embedder=WORLD.embedder(), progress=False)
    plan = AdaptiveConfig(initial=10, step=10, max_rollouts=40, target_width=1.0)
    adaptive = score_trace_adaptive(WORLD.trace(), WORLD.sampler(), paper_template(), WORLD.embedder(), config, plan, progress=False)
    per_prefix = adaptive.run["per_prefix"]
    assert adaptive.run["rollouts_resampled"] == sum(per_prefix) < fixed.run["rollouts_resampled"]
    assert adaptive.top(1)["index"].iloc[0] == fixed.top(1)["index"].iloc[0] == WORLD.planted
    assert adaptive.run["history"][0] == [10] * (WORLD.n_sentences + 1) and max(per_prefix) <= 40
    # a sentence whose two prefixes reached the cap rests on exactly the fixed run's rollouts
    capped = [i for i in range(WORLD.n_sentences) if per_prefix[i] == per_prefix[i + 1] == 40]
    for i in capped:
        assert adaptive.rows[i].counterfactual_importance_kl == pytest.approx(fixed.rows[i].counterfactual_importance_kl)


def test_a_rerun_asks_for_exactly_the_same_requests(tmp_path: Path) -> None:
    """With the rollout store, the second run samples nothing and a bigger one only what is new."""
    world = PlantedWorld(n_sentences=5, planted=2, decoy=1, p_unfinished=0.3)  # closing requests too
    sampler = world.sampler()
    config = BlackBoxConfig(rollouts=12, bootstrap=50, permutations=50)
    store = str(tmp_path / "rollouts.sqlite")
    first = score_trace(world.trace(), sampler, paper_template(), config, embedder=world.embedder(), store=store, progress=False)
    calls = sampler.calls
    second = score_trace(world.trace(), sampler, paper_template(), config, embedder=world.embedder(), store=store, progress=False)
    assert calls > 0 and sampler.calls == calls
    assert first.to_pandas().equals(second.to_pandas())
    # and a bigger run re-uses the first 12 rollouts of every stream, sampling only the rest
    score_trace(world.trace(), sampler, paper_template(), BlackBoxConfig(rollouts=20, bootstrap=50, permutations=50),
                embedder=world.embedder(), store=store, progress=False)
    assert sampler.calls - calls < 2 * 20 * (world.n_sentences + 1) + 20 * (world.n_sentences + 1)


def test_phase_timer_times_nested_phases_exclusively(monkeypatch: pytest.MonkeyPatch) -> None:
    import anchors.methods.blackbox.phases as phases

    clock = iter([0.0, 1.0, 3.0, 10.0, 10.0, 10.5])  # metrics 0–10 holding embedding 1–3; grading 10–10.5
    monkeypatch.setattr(phases.time, "perf_counter", lambda: next(clock))
    timer = phases.PhaseTimer()
    with timer.phase("metrics"):
        with timer.phase("embedding"):
            pass
    with timer.phase("grading"):
        pass
    assert timer.as_run() == {"grading_seconds": 0.5, "embedding_seconds": 2.0, "metrics_seconds": 8.0}
