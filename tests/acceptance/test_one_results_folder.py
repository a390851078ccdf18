"""The commands compose into one analysis: each writes the same results folder, the next reads what the last wrote,
the store is shared, and the report shows all of it. On the tiny random Qwen2 (fast); the bundled model's run of
`anchors analyze` is in test_analyze_bundled.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anchors.cli import app
from anchors.results import ResultsDir, read_trace_results

runner = CliRunner()
MODEL = ["--model", "tiny-qwen2", "--device", "cpu"]
FAST = ["--rollouts", "2", "--max-new-tokens", "8", "--bootstrap", "50", "--tags", "none"]


def invoke(*args: str) -> object:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def one_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("traces") / "one.jsonl"
    record = {"id": "arith-25", "problem": "What is 12 - 5 + 8?", "gold_answer": "15",
              "thinking": "First, 12 - 5 = 7.\n\nThen 7 + 8 = 15. So the answer is 15.",
              "answer_text": "\n\nThe answer is \\boxed{15}."}
    path.write_text(json.dumps(record) + "\n")
    return path


def store_keys(path: Path) -> list[str]:
    """One entry per stored rollout: its request key."""
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT request_key FROM rollouts")]


def store_rows(path: Path) -> list[tuple]:
    """What makes a stored rollout unique: (request key, sampler, params, prompt, seed, rollout index)."""
    with sqlite3.connect(path) as db:
        return db.execute("SELECT request_key, sampler, params, prompt_hash, request_seed, idx FROM rollouts").fetchall()


def test_suppression_results_show_in_the_report_and_the_figures(one_trace: Path, tmp_path: Path) -> None:
    """Issue: the report looked for `matrix` in [source, target] order, the writer saved `raw` [target, source]."""
    out = tmp_path / "R"
    invoke("suppress", str(one_trace), *MODEL, "--out", str(out))
    results = read_trace_results(out / "arith-25")
    assert "suppression" in results.matrices and results.damaged == ()
    assert not any("suppression" in note and "left out" in note for note in results.notes)
    figures = invoke("figures", str(out), "--format", "html", "--out", str(tmp_path / "figs"))
    assert (tmp_path / "figs" / "traces" / "arith-25" / "suppression_matrix.html").is_file()
    assert "suppression_matrix: not drawn" not in figures.stderr


def test_score_then_receivers_into_one_folder_reports_the_trace(one_trace: Path, tmp_path: Path) -> None:
    """Issue: receivers' run-level file made the results root look like a trace folder."""
    out = tmp_path / "c"
    invoke("score", str(one_trace), *MODEL, *FAST, "--out", str(out))
    invoke("receivers", str(one_trace), *MODEL, "--out", str(out))
    report = invoke("report", str(out))
    assert "arith-25: " in report.stdout and ResultsDir(out).trace_dirs() == [out / "arith-25"]
    figures = invoke("figures", str(out), "--format", "html", "--out", str(tmp_path / "figs"))
    drawn = {p.stem for p in (tmp_path / "figs" / "traces" / "arith-25").iterdir()}
    assert {"importance", "receiver_heads", "vertical_profile", "agreement"} <= drawn
    assert "0 file(s)" not in figures.stdout


def test_causality_results_make_a_report(one_trace: Path, tmp_path: Path) -> None:
    """Issue: `anchors report results/causality` found no trace folders (causality wrote flat files)."""
    out = tmp_path / "causality"
    invoke("causality", str(one_trace), "--tests", "validity,early", *MODEL, "--samples", "1", "--points", "3", "--out", str(out))
    invoke("report", str(out))
    results = read_trace_results(out / "arith-25")
    assert {"validity", "early_answering"} <= set(results.methods) and results.early_answering is not None
    page = (out / "arith-25" / "report.html").read_text()
    assert 'data-plot="early_answering"' in page and 'data-plot="validity"' in page


def test_resample_then_score_samples_nothing_new(one_trace: Path, tmp_path: Path) -> None:
    """Issue: resample and score used other request keys and seeds, so score sampled everything again."""
    store, out = tmp_path / "S.sqlite", tmp_path / "out"
    invoke("resample", str(one_trace), *MODEL, "--rollouts", "2", "--max-new-tokens", "8", "--store", str(store))
    resampled = store_keys(store)
    invoke("score", str(one_trace), *MODEL, *FAST, "--no-forced", "--out", str(out), "--store", str(store))
    after = store_keys(store)
    assert sorted(k for k in after if "/resample/" in k) == sorted(resampled)  # every R_i rollout was reused
    assert len(after) == len(resampled) + sum("/close/" in k for k in after)  # only the closing answers are new
    assert not (out / "rollouts.sqlite").exists()


def test_score_then_causality_resilience_reuses_every_planned_rollout(one_trace: Path, tmp_path: Path) -> None:
    """resample → score → causality --tests resilience: each rollout is sampled once (counted in the store); the
    resilience chains' first rounds are R_i and its baselines R_{i+1}, and --importance takes score's column."""
    out = tmp_path / "out"
    # resample's default store is OUT/rollouts.sqlite: the commands compose with --out alone
    invoke("resample", str(one_trace), *MODEL, "--rollouts", "2", "--max-new-tokens", "8", "--out", str(out))
    assert store_keys(out / "rollouts.sqlite")
    invoke("score", str(one_trace), *MODEL, *FAST, "--out", str(out))
    before = store_keys(out / "rollouts.sqlite")
    invoke("causality", str(one_trace), *MODEL, "--tests", "resilience", "--importance", "different_trajectories_fraction",
           "--continue-tokens", "8", "--chains", "2", "--continuations", "2", "--max-rounds", "2", "--out", str(out))
    after = store_keys(out / "rollouts.sqlite")
    new = [k for k in after if k not in set(before)]
    rows = store_rows(out / "rollouts.sqlite")
    assert len(rows) == len(set(rows)) and len(after) > len(before)  # every rollout once; the later rounds are new
    assert not [k for k in new if k.split("/")[1] == "resample" and k.split("/")[2].isdigit()]  # no R_i sampled twice
    entry = ResultsDir(out).trace_manifest("arith-25").methods["resilience"]
    assert entry.settings["importance"] == "different_trajectories_fraction"  # a column score always fills
    table = read_trace_results(out / "arith-25").tables["resilience"]
    assert table["selection"].tolist() == ["importance"]
    again = len(store_keys(out / "rollouts.sqlite"))
    invoke("causality", str(one_trace), *MODEL, "--tests", "resilience", "--importance", "different_trajectories_fraction",
           "--continue-tokens", "8", "--chains", "2", "--continuations", "2", "--max-rounds", "2", "--out", str(out))
    assert len(store_keys(out / "rollouts.sqlite")) == again  # a rerun samples nothing


def test_importance_by_name_needs_that_column(one_trace: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["causality", str(one_trace), *MODEL, "--tests", "resilience", "--importance",
                                 "counterfactual_importance_kl", "--out", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "run anchors score --out" in result.stderr


def test_a_conflicting_rerun_is_refused_before_any_work(one_trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    invoke("suppress", str(one_trace), *MODEL, "--out", str(out), "--sentences", "0")
    refused = runner.invoke(app, ["suppress", str(one_trace), *MODEL, "--out", str(out), "--sentences", "1"])
    assert refused.exit_code == 2 and "suppression results made with other settings" in refused.stderr
    assert "--overwrite" in refused.stderr and "suppressing" not in refused.stderr  # nothing ran
    invoke("suppress", str(one_trace), *MODEL, "--out", str(out), "--sentences", "1", "--overwrite")
    raw = np.load(out / "arith-25" / "suppression.npz")["raw"]
    assert np.isfinite(raw[1]).any() and np.isnan(raw[0]).all()


BUNDLED = ["--model", "smollm2-135m", "--device", "cpu"]
WRITTEN = Path(__file__).resolve().parents[2] / "examples" / "whitebox_trace_written.jsonl"


def test_analyze_equals_the_commands_one_after_another(one_trace: Path, tmp_path: Path) -> None:
    _analyze_against_commands(one_trace, "arith-25", MODEL, [], tmp_path)


@pytest.mark.slow
def test_analyze_equals_the_commands_on_the_bundled_model(tmp_path: Path) -> None:
    """The 38-sentence example trace on SmolLM2-135M, every method; one sentence (the black box, suppression, patching and the tests pick only it) keeps it CI-sized."""
    trace_id = json.loads(WRITTEN.read_text().splitlines()[0])["id"]
    _analyze_against_commands(WRITTEN, trace_id, BUNDLED, ["--sentences", "6"], tmp_path)


def _analyze_against_commands(traces: Path, trace_id: str, model: list[str], subset: list[str], tmp_path: Path) -> None:
    together, apart = tmp_path / "together", tmp_path / "apart"
    tests = ["--tests", "validity,early,filler", "--samples", "1"]
    score = ["--rollouts", "2", "--max-new-tokens", "8", "--bootstrap", "50", "--tags", "offline"]
    invoke("analyze", str(traces), *model, "--methods", "all", "--out", str(together), *score, *tests, *subset)
    invoke("score", str(traces), *model, *score, "--out", str(apart), *subset)
    invoke("label", str(traces), "--labeller", "offline", "--out", str(apart))
    invoke("receivers", str(traces), *model, "--out", str(apart))
    invoke("suppress", str(traces), *model, "--out", str(apart), *subset)
    invoke("patch", str(traces), *model, "--out", str(apart), *subset)
    invoke("causality", str(traces), *model, *tests, "--out", str(apart), *subset)
    a, b = ResultsDir(together).trace_manifest(trace_id), ResultsDir(apart).trace_manifest(trace_id)
    assert list(a.methods) == list(b.methods) == ["blackbox", "tags", "receivers", "suppression", "patching", "validity",
                                                  "early_answering", "filler"]
    for kind in a.methods:
        assert a.methods[kind].settings_hash == b.methods[kind].settings_hash, kind
        assert a.methods[kind].files == b.methods[kind].files, kind
        for name in a.methods[kind].files:
            _assert_same_file(together / trace_id / name, apart / trace_id / name)


def _assert_same_file(x: Path, y: Path) -> None:
    """Same seed, same machine, same code path: the same numbers, bit for bit (a real promise, not a tolerance)."""
    if x.suffix == ".npz":
        with np.load(x) as first, np.load(y) as second:
            assert first.files == second.files, x.name
            for key in first.files:
                assert np.array_equal(first[key], second[key], equal_nan=True), (x.name, key)
    else:
        assert x.read_text() == y.read_text(), x.name
