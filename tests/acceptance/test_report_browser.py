"""The HTML report in a real browser (headless Debian Chromium through Playwright): no console error, no
network request, the sentence list and every plot rendered, a click shows a sentence's details. Screenshots go
to build/test-artifacts/ (or $ANCHORS_ARTIFACTS).

Skipped with a reason when Playwright or Chromium is missing, unless ANCHORS_REQUIRE_BROWSER=1 (set by
.ci/run, which installs Chromium), where a missing browser fails the test instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from anchors.report.figures import STUDY_FIGURES, TRACE_FIGURES
from anchors.report.html import write_report, write_trace_report
from anchors.results import write_results
from anchors.report.synthetic import synthetic_results

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ANCHORS_ARTIFACTS", REPO / "build" / "test-artifacts"))
# Flags that work on these machines: no sandbox as root, no GPU, and no background traffic to Google.
HOSTILE = "</script><script>window.pwned = 1</script><img src=x onerror=\"window.pwned=2\">"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    return os.environ.get("ANCHORS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    required = os.environ.get("ANCHORS_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        (pytest.fail if required else pytest.skip)("the playwright package is not installed (pip install -e '.[dev]')")
    executable = _chromium()
    if executable is None:
        (pytest.fail if required else pytest.skip)("no Chromium found (Debian: apt-get install chromium; or set ANCHORS_CHROMIUM)")
    with sync_playwright() as playwright:
        # Playwright starts it headless with a fresh temporary profile (--user-data-dir) every time.
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Opened:
    page: object
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def open_report(browser: object, path: Path) -> Opened:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    opened = Opened(page)
    page.on("console", lambda m: opened.console_errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.console_errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: opened.requests.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=30_000)
    return opened


def scroll_through_plots(opened: Opened) -> list[str]:
    """Scroll every plot into view, as a reader would, and wait until each one has drawn its SVG."""
    page = opened.page
    names = page.eval_on_selector_all(".plot[data-spec]", "els => els.map(e => e.id)")
    for name in names:
        page.locator(f"#{name}").scroll_into_view_if_needed()
        page.wait_for_function(f"document.getElementById('{name}').dataset.rendered === '1'", timeout=30_000)
        assert page.locator(f"#{name} .main-svg").count() >= 1, f"{name} has no SVG"
    return names


def assert_clean(opened: Opened, path: Path) -> None:
    assert opened.console_errors == [], opened.console_errors
    assert set(opened.requests) == {path.resolve().as_uri()}, f"the report made requests: {opened.requests}"


def test_a_complete_report_renders_every_plot_and_links_sentences(browser: object, tmp_path: Path) -> None:
    results = synthetic_results(40, n_rollouts=10)
    table = results.sentences.copy()
    table.loc[1, "text"] = HOSTILE  # sentences are model output: they must stay text
    path = write_report(replace(results, sentences=table), tmp_path / "synthetic.html")
    opened = open_report(browser, path)
    page = opened.page
    assert page.locator("#sentence-list li").count() == 40
    assert "<img src=x" in page.locator("#sentence-list li").nth(1).inner_text()
    assert page.locator("#sentence-list li").nth(0).inner_text().startswith("0")
    rendered = scroll_through_plots(opened)
    assert sorted(rendered) == sorted(f"plot-{n}" for n in TRACE_FIGURES)
    assert page.locator(".plot-card[data-missing]").count() == 0
    page.locator("#sentence-list li").nth(13).click()
    assert page.locator("#detail h2").inner_text().startswith("Sentence 13")
    assert page.locator("#detail table tr").count() == 7  # accuracy and the six importance metrics
    assert "[" in page.locator("#detail table").inner_text()
    assert page.locator("#detail .alts li").count() == 5
    assert page.evaluate("window.pwned === undefined")
    page.evaluate("document.getElementById('plot-graph').emit('plotly_click', {points: [{customdata: [21]}]})")
    assert page.locator("#detail h2").inner_text().startswith("Sentence 21")  # a node click selects its sentence
    assert page.locator("#sentence-list li.selected").inner_text().startswith("21")
    page.evaluate("document.getElementById('plot-resampling_matrix').emit('plotly_click', {points: [{y: 4, x: 9, data: {}}]})")
    assert page.locator("#detail h2").inner_text().startswith("Sentence 4")  # a matrix cell selects its source row
    page.select_option("#tag-filter", "plan_generation")
    visible = page.eval_on_selector_all("#sentence-list li", "els => els.filter(e => e.style.display !== 'none').length")
    assert 0 < visible < 40
    page.select_option("#tag-filter", "")
    page.locator("#sentence-list").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"))
    page.screenshot(path=str(ARTIFACTS / "report_full.png"), full_page=True)
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
    assert_clean(opened, path)


def _bad(tmp_path: Path, case: str) -> Path:
    results = synthetic_results(1 if case == "single_sentence" else 12, trace_id=case)
    table = results.sentences.copy()
    if case == "nan_scores":
        for column in table.columns:
            if column.startswith(("counterfactual", "resampling")):
                table.loc[table.index[::2], column] = np.nan
    if case == "missing_files":
        results = replace(results, matrices={}, head_scores=None, vertical_scores=None, receiver_heads=(),
                          alternatives={}, early_answering=None)
    return write_results(replace(results, sentences=table), tmp_path)


@pytest.mark.parametrize("case", ["missing_files", "nan_scores", "single_sentence"])
def test_bad_input_still_renders_with_a_visible_note(browser: object, tmp_path: Path, case: str) -> None:
    path = write_trace_report(_bad(tmp_path, case))
    opened = open_report(browser, path)
    page = opened.page
    notes = page.locator("#notes")
    assert notes.is_visible()
    expected = {"missing_files": "not in these results of your own: sentence matrix", "nan_scores": "NaN for 6 of 12", "single_sentence": "single sentence"}[case]
    assert expected in notes.inner_text()
    scroll_through_plots(opened)
    if case == "missing_files":
        missing = page.locator(".plot-card[data-missing] .missing")
        assert missing.count() >= 3 and missing.first.is_visible()
    page.locator("#sentence-list li").first.click()
    assert page.locator("#detail h2").inner_text().startswith("Sentence 0")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # the notes are at the top
    page.screenshot(path=str(ARTIFACTS / f"report_{case}.png"))
    assert_clean(opened, path)


def test_a_report_of_the_authors_trace(browser: object, ta_data: Path, tmp_path: Path) -> None:
    from anchors.report.html import write_report
    from anchors.report.ta import ta_trace_results

    result = ta_trace_results(ta_data / "deepseek-r1-distill-qwen-14b" / "correct_base_solution" / "problem_330", ta_data)
    path = write_report(result, tmp_path / "problem_330.html")
    opened = open_report(browser, path)
    assert opened.page.locator("#sentence-list li").count() == 139
    assert len(scroll_through_plots(opened)) == 6  # no receivers, receiver profile or early answering in their data
    opened.page.screenshot(path=str(tmp_path / "ta.png"))
    assert_clean(opened, path)


def test_a_300_sentence_report_opens(browser: object, tmp_path: Path) -> None:
    big = synthetic_results(300, n_rollouts=100, n_layers=48, n_heads=40, trace_id="big")
    path = write_trace_report(write_results(big, tmp_path))
    opened = open_report(browser, path)
    assert opened.page.locator("#sentence-list li").count() == 300
    assert len(scroll_through_plots(opened)) == 9
    assert_clean(opened, path)


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`anchors analyze --methods all` on one short trace with the tiny random Qwen2: every panel has data."""
    import json

    from typer.testing import CliRunner

    from anchors.cli import app

    folder = tmp_path_factory.mktemp("analyzed")
    traces = folder / "one.jsonl"
    traces.write_text(json.dumps({"id": "arith-25", "problem": "What is 12 - 5 + 8?", "gold_answer": "15",
                                  "thinking": "First, 12 - 5 = 7.\n\nThen 7 + 8 = 15. So the answer is 15.",
                                  "answer_text": "\n\nThe answer is \\boxed{15}."}) + "\n")
    result = CliRunner().invoke(app, ["analyze", str(traces), "--model", "tiny-qwen2", "--device", "cpu", "--out",
                                      str(folder / "out"), "--rollouts", "2", "--max-new-tokens", "8", "--bootstrap", "50",
                                      "--samples", "1", "--tags", "offline"])
    assert result.exit_code == 0, result.output
    return folder / "out"


def test_the_analyze_report_shows_every_method_and_follows_the_selected_sentence(browser: object, analyzed: Path) -> None:
    path = analyzed / "arith-25" / "report.html"
    opened = open_report(browser, path)
    page = opened.page
    rendered = scroll_through_plots(opened)
    # every panel of what analyze runs; the studies (asked for separately) get no card at all when not run
    assert sorted(rendered) == sorted(f"plot-{n}" for n in TRACE_FIGURES if n not in STUDY_FIGURES)
    assert page.locator(".plot-card[data-missing]").count() == 0
    assert not [n for n in STUDY_FIGURES if page.locator(f'.plot-card[data-plot="{n}"]').count()]
    page.locator("#sentence-list li").nth(1).click()
    state = page.evaluate("""() => Array.from(document.querySelectorAll('.plot[data-spec]')).map(div => ({
        id: div.id, kind: window.anchorsReport.kindOf(div.id), selected: div.dataset.selected || null,
        listed: window.anchorsReport.tableRows(div.id).includes(1),
        points: (div.data || []).some(t => Array.isArray(t.selectedpoints) && t.selectedpoints.length > 0),
        band: ((div.layout || {}).shapes || []).some(s => s.name === 'anchors-selection'),
        row: (div.data || []).some(t => t.type === 'table' && JSON.stringify(((t.cells || {}).fill || {}).color || '').includes('#FFE7C2'))}))""")
    with_axis = [s for s in state if s["kind"]]
    assert {s["id"] for s in with_axis} >= {"plot-importance", "plot-graph", "plot-resampling_matrix", "plot-suppression_matrix",
                                            "plot-patching", "plot-vertical_profile", "plot-validity", "plot-agreement"}
    for s in with_axis:
        assert s["selected"] == "1", s
        shown = {"sentence-points": s["points"], "sentence-matrix": s["band"], "sentence-columns": s["band"],
                 "sentence-table": s["row"] == s["listed"]}[s["kind"]]  # a table lights the row when it lists the sentence
        assert shown, s
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "analyze_report.png"), full_page=True)
    assert_clean(opened, path)
