"""The paper's category aggregation (methods.md §4): hand-computed cases, and the authors' data recomputed
independently, loop by loop, from the JSON files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anchors.metrics.categories import PAPER_EXCLUDED_TAGS, PAPER_METRICS, category_table, convergence_index, mean_se


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["trace_id", "index", "tag", "accuracy", "m"])


def test_convergence_index_finds_the_first_run_of_four_certain_sentences() -> None:
    acc = [0.5, 0.6, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert convergence_index(acc) == 2
    assert convergence_index([0.5, 0.0, 0.005, 0.0, 0.001, 0.5, 0.5, 0.5]) == 1
    assert convergence_index([0.5, 1.0, 1.0, 0.99, 1.0, 0.5, 0.5, 0.5]) is None  # 0.99 is not > 0.99
    assert convergence_index([1.0, 1.0, 0.0, 0.0] + [0.5] * 4) is None  # mixed high/low is no convergence


def test_convergence_index_skips_the_last_two_starts_like_the_authors_code() -> None:
    # n = 9: starts 0..3 are tested (range(n - 4 - 1)); runs starting at 4 or 5 are not.
    assert convergence_index([0.5] * 4 + [1.0] * 5) is None
    assert convergence_index([0.5] * 3 + [1.0] * 4 + [0.5] * 2) == 3
    assert convergence_index([1.0] * 5) is None and convergence_index([]) is None


def test_mean_and_standard_error_over_trace_means_by_hand() -> None:
    # tag "a": trace t1 mean (1 + 3) / 2 = 2, t2 = 4, t3 = 6 -> mean 4, sd 2, se 2 / sqrt(3)
    rows = [("t1", 0, "a", 0.5, 1.0), ("t1", 1, "a", 0.5, 3.0), ("t1", 2, "b", 0.5, 0.0),
            ("t2", 0, "a", 0.5, 4.0), ("t2", 1, "b", 0.5, 0.0),
            ("t3", 0, "a", 0.5, 6.0), ("t3", 1, "b", 0.5, 0.0)]
    table = category_table(frame(rows), ["m"])
    a = table.set_index("tag").loc["a"]
    assert a["mean"] == pytest.approx(4.0) and a["se"] == pytest.approx(2 / math.sqrt(3))
    assert a["n_traces"] == 3 and a["n_sentences"] == 4
    # position: t1 sentences 0, 1 of 3 -> 0, 0.5 -> mean .25; t2 and t3: sentence 0 of 2 -> 0
    assert a["position_mean"] == pytest.approx(0.25 / 3)
    assert list(table.columns) == ["tag", "metric", "mean", "se", "n_traces", "n_sentences", "position_mean", "position_se"]


def test_negative_values_are_clipped_to_zero_and_nan_is_left_out() -> None:
    rows = [("t1", 0, "a", 0.5, -5.0), ("t1", 1, "a", 0.5, 3.0), ("t2", 0, "a", 0.5, 2.0), ("t2", 1, "a", 0.5, np.nan),
            ("t3", 0, "a", 0.5, 4.0), ("t3", 1, "a", 0.5, 0.0)]
    a = category_table(frame(rows), ["m"]).set_index("tag").loc["a"]
    # t1: (0 + 3) / 2 = 1.5; t2: 2 (NaN left out); t3: 2 -> mean 5.5 / 3
    assert a["mean"] == pytest.approx(5.5 / 3)


def test_thresholds_untagged_and_excluded_tags() -> None:
    rows = [("t1", 0, "a", 0.5, 1.0), ("t2", 0, "a", 0.5, 1.0),  # "a": 2 sentences < 3 -> skipped
            ("t1", 1, "b", 0.5, 1.0), ("t1", 2, "b", 0.5, 1.0), ("t2", 1, "b", 0.5, 1.0),  # "b": 2 traces < 3
            ("t1", 3, None, 0.5, 9.0), ("t2", 2, "unknown", 0.5, 9.0), ("t3", 0, "", 0.5, 9.0)]
    assert category_table(frame(rows), ["m"]).empty
    rows = [(f"t{k}", 0, tag, 0.5, 1.0) for k in range(3) for tag in ("self_checking",)]
    rows += [(f"t{k}", 1, "plan_generation", 0.5, 1.0) for k in range(3)]
    table = category_table(frame(rows), ["m"])
    assert list(table["tag"]) == ["plan_generation"]  # self_checking is one of the paper's excluded tags
    assert set(category_table(frame(rows), ["m"], exclude_tags=())["tag"]) == {"plan_generation", "self_checking"}
    assert set(PAPER_EXCLUDED_TAGS) == {"problem_setup", "final_answer_emission", "self_checking"}


def test_sentences_from_the_convergence_point_on_are_dropped() -> None:
    acc = [0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # converges at 2
    rows = [(f"t{k}", i, "a", a, 1.0 if i < 2 else 100.0) for k in range(3) for i, a in enumerate(acc)]
    a = category_table(frame(rows), ["m"]).set_index("tag").loc["a"]
    assert a["mean"] == pytest.approx(1.0) and a["n_sentences"] == 6


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="lacks column"):
        category_table(pd.DataFrame({"trace_id": [1], "index": [0]}), ["m"])


def test_mean_se_of_one_value_has_zero_se() -> None:
    assert mean_se([2.0]) == (2.0, 0.0, 1)
    assert mean_se([np.nan])[2] == 0


def _authors_way(chunks_by_trace: dict[str, list[dict]], metric: str) -> dict[str, tuple[float, float, int]]:
    """methods.md §4 written out as plain loops over the JSON records, independent of the library code."""
    per_tag: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int] = {}
    for trace, chunks in chunks_by_trace.items():
        chunks = sorted(chunks, key=lambda c: c["chunk_idx"])
        cut = None
        for i in range(len(chunks) - 5):
            window = [c["accuracy"] for c in chunks[i:i + 4]]
            if all(a > 0.99 for a in window) or all(a < 0.01 for a in window):
                cut = i
                break
        for c in chunks:
            if cut is not None and c["chunk_idx"] >= cut:
                continue
            tags = c.get("function_tags") or []
            if not tags or tags[0].lower() == "unknown":
                continue
            counts[tags[0]] = counts.get(tags[0], 0) + 1
            per_tag.setdefault(tags[0], {}).setdefault(trace, []).append(max(c[metric], 0.0))
    out = {}
    for tag, traces in per_tag.items():
        means = [sum(v) / len(v) for v in traces.values()]
        if counts[tag] < 3 or len(means) < 3:
            continue
        mean = sum(means) / len(means)
        sd = math.sqrt(sum((m - mean) ** 2 for m in means) / (len(means) - 1))
        out[tag] = (mean, sd / math.sqrt(len(means)), len(means))
    return out


def test_the_authors_data_gives_the_same_table_as_an_independent_loop(ta_data: Path) -> None:
    from anchors.results.trace import pooled_sentences
    from anchors.report.ta import load_ta_results

    pooled = pooled_sentences(load_ta_results(ta_data, alternatives=0))
    for model, sentences in pooled.groupby("model"):
        chunks = {str(p.parent): json.loads(p.read_text()) for p in sorted((ta_data / model).rglob("chunks_labeled.json"))}
        table = category_table(sentences, PAPER_METRICS, exclude_tags=())
        for metric in PAPER_METRICS:
            expected = _authors_way(chunks, metric)
            got = table[table["metric"] == metric].set_index("tag")
            assert sorted(got.index) == sorted(expected), (model, metric)
            for tag, (mean, se, n) in expected.items():
                assert got.loc[tag, "mean"] == pytest.approx(mean, rel=1e-12)
                assert got.loc[tag, "se"] == pytest.approx(se, rel=1e-12)
                assert got.loc[tag, "n_traces"] == n


def test_on_the_authors_data_plans_and_uncertainty_lead_counterfactual_importance(ta_data: Path) -> None:
    """The paper's finding (methods.md §5), as a sanity check of the pipeline on the Qwen-14B traces."""
    from anchors.results.trace import pooled_sentences
    from anchors.report.ta import load_ta_results

    pooled = pooled_sentences(load_ta_results(ta_data / "deepseek-r1-distill-qwen-14b", alternatives=0))
    table = category_table(pooled, ["counterfactual_importance_kl", "forced_importance_kl"]).set_index(["metric", "tag"])
    cf = table.loc["counterfactual_importance_kl"]["mean"].sort_values(ascending=False)
    assert cf.index[0] == "plan_generation"
    assert table.loc["forced_importance_kl"]["mean"].idxmax() == "active_computation"
