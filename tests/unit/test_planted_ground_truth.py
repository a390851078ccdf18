"""The black-box metrics against a planted causal structure (anchors.testing.PlantedWorld): the planted
sentence must come out on top, the overdetermined decoy must not, and the intervals must cover the known true
effects at about their nominal rate. Rates are printed (pytest -s) and attached to the test report."""

from __future__ import annotations

import numpy as np
import pytest

from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.counterfactual import counterfactual_importance
from anchors.methods.blackbox.forced_answer import forced_answer_importance
from anchors.methods.blackbox.resampling import resampling_importance
from anchors.methods.blackbox.rollout_sets import TraceRollouts
from anchors.methods.blackbox.sampling import sample_trace_rollouts
from anchors.models.templates import paper_template
from anchors.testing import PlantedWorld

SEEDS = 100
N = 50
WORLD = PlantedWorld()


@pytest.fixture(autouse=True)
def _no_grade_file_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_NO_CACHE", "1")  # thousands of scripted grades: keep them in memory


@pytest.fixture(scope="module")
def runs() -> list[TraceRollouts]:
    import os

    os.environ["ANCHORS_NO_CACHE"] = "1"
    config = BlackBoxConfig(rollouts=N, matrix=False)
    return [sample_trace_rollouts(WORLD.trace(), WORLD.sampler(), paper_template(), BlackBoxConfig(**{**config.__dict__, "seed": seed}),
                                  progress=False) for seed in range(SEEDS)]


def test_counterfactual_importance_ranks_the_planted_sentence_first(runs: list[TraceRollouts], record_property) -> None:
    config = BlackBoxConfig(bootstrap=0, permutations=0)
    embedder = WORLD.embedder()
    first = sum(int(np.nanargmax(counterfactual_importance(r, embedder, config).importance_kl.value)) == WORLD.planted for r in runs)
    record_property("planted_ranked_first", f"{first}/{SEEDS}")
    print(f"planted sentence ranked first by counterfactual KL in {first}/{SEEDS} seeds (N = {N})")
    assert first >= 95


def test_the_decoy_is_overdetermined_and_unimportant(runs: list[TraceRollouts], record_property) -> None:
    config = BlackBoxConfig(bootstrap=0, permutations=0)
    embedder = WORLD.embedder()
    results = [counterfactual_importance(r, embedder, config) for r in runs]
    decoy_kl = np.array([c.importance_kl.value[WORLD.decoy] for c in results])
    planted_kl = np.array([c.importance_kl.value[WORLD.planted] for c in results])
    overdetermined = np.array([c.overdeterminedness.value[WORLD.decoy] for c in results])
    others = np.array([np.delete(c.overdeterminedness.value, WORLD.decoy).max() for c in results])
    below = float(np.mean(np.nan_to_num(decoy_kl, nan=0.0) < planted_kl))
    record_property("decoy_below_planted", below)
    print(f"decoy KL below planted in {below:.0%}; decoy overdeterminedness mean {overdetermined.mean():.3f}, "
          f"highest other sentence's mean {others.mean():.3f}")
    assert below >= 0.95
    assert overdetermined.mean() > 0.85 and (overdetermined > others).mean() >= 0.95
    # and it is not resampling-important either: it comes back whether or not it is kept
    assert abs(np.mean([resampling_importance(r, config).importance_accuracy.value[WORLD.decoy] for r in runs])) < 0.05


def test_intervals_cover_the_true_effects_at_about_the_nominal_rate(runs: list[TraceRollouts], record_property) -> None:
    config = BlackBoxConfig(bootstrap=400, permutations=0)
    truth, k = WORLD.true_effects(), WORLD.planted
    estimates = {
        "counterfactual_importance_accuracy": lambda r: counterfactual_importance(r, WORLD.embedder(), config).importance_accuracy,
        "resampling_importance_accuracy": lambda r: resampling_importance(r, config).importance_accuracy,
        "forced_importance_accuracy": lambda r: forced_answer_importance(r, config).importance_accuracy,
    }
    for name, estimate in estimates.items():
        covered = 0
        for r in runs:
            e = estimate(r)
            covered += bool(e.lo[k] <= truth[name] <= e.hi[k])
        record_property(f"coverage_{name}", covered / SEEDS)
        print(f"95% interval of {name} covers the true {truth[name]:.2f} in {covered}/{SEEDS} seeds")
        assert 0.88 <= covered / SEEDS <= 0.995, name


def test_point_estimates_are_unbiased_at_the_planted_sentence(runs: list[TraceRollouts]) -> None:
    config = BlackBoxConfig(bootstrap=0, permutations=0)
    truth, k = WORLD.true_effects(), WORLD.planted
    cf = np.mean([counterfactual_importance(r, WORLD.embedder(), config).importance_accuracy.value[k] for r in runs])
    fi = np.mean([forced_answer_importance(r, config).importance_accuracy.value[k] for r in runs])
    assert cf == pytest.approx(truth["counterfactual_importance_accuracy"], abs=0.03)
    assert fi == pytest.approx(truth["forced_importance_accuracy"], abs=0.03)
