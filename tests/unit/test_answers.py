"""Answer extraction, normalisation and grading (anchors.traces.answers / anchors.traces.grading)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from anchors.errors import AnchorsError, InputError
from anchors.traces import grade_cache, grading
from anchors.traces.answers import (
    Grade,
    GradeStatus,
    answer_key,
    answers_equal,
    boxed_answers,
    clear_grade_cache,
    extract_answer,
    grade,
    shutdown_workers,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "thought-anchors-viewer"
# sympy builds 9^387420489 (370 million digits) inside C code: verified to run for over a minute,
# and no signal-based timeout can interrupt it.
PATHOLOGICAL = "9^{9^{9}}"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets an empty in-process cache and its own SQLite file."""
    monkeypatch.setenv("ANCHORS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ANCHORS_NO_CACHE", raising=False)
    grade_cache.RESULTS.reset()


@pytest.fixture(scope="module", autouse=True)
def _stop_workers() -> Iterator[None]:
    yield
    shutdown_workers()


def _no_worker(*args: object, **kwargs: object) -> None:
    raise AssertionError("the symbolic worker should not have been called")


def _sympy_latex_available() -> bool:
    return grading._sympy_latex_available()


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "method", "expected"),
    [
        (r"so \boxed{\frac{1}{2}}.", "boxed_last", r"\frac{1}{2}"),
        (r"\boxed{\frac{\sqrt{3}}{2}} done", "boxed_first", r"\frac{\sqrt{3}}{2}"),
        (r"first \boxed{3} then \boxed{4}", "boxed_first", "3"),
        (r"first \boxed{3} then \boxed{4}", "boxed_last", "4"),
        (r"empty \boxed{} and \boxed{ } then \boxed{7}", "boxed_first", "7"),
        (r"\boxed{7} and an empty \boxed{} last", "boxed_last", "7"),
        (r"\boxed {5}", "boxed_last", "5"),
        (r"\fbox{12}", "boxed_last", "12"),
        (r"\boxed{\boxed{8}}", "boxed_first", "8"),
        (r"\boxed{\{1, 2\}}", "boxed_last", r"\{1, 2\}"),
        (r"unclosed \boxed{3", "boxed_last", None),
        ("no answer here", "boxed_last", None),
        ("The answer is 42.", "answer_is", "42"),
        ("**Final Answer:** $\\frac{1}{2}$", "answer_is", r"\frac{1}{2}"),
        ("**Final Answer**: 7", "answer_is", "7"),
        ("final answer: x = 3.5. Because...", "answer_is", "x = 3.5"),
        ("The answer is **12**.", "answer_is", "12"),
        ("the final answer is $\\boxed{5}$.", "answer_is", "5"),
        ("the answer is \\(2\\sqrt{2}\\)", "answer_is", r"2\sqrt{2}"),
        ("I think the answer is 3.\nWait, the answer is 4.", "answer_is", "4"),
        ("To answer this we add.", "answer_is", None),
        ("it is -3", "last_number", "-3"),
        ("x-3", "last_number", "3"),
        ("a total of 1,234 items", "last_number", "1234"),
        ("about 3.5 m", "last_number", "3.5"),
        ("half is 1/2", "last_number", "1/2"),
        (r"so \frac{3}{4}", "last_number", "3/4"),
        ("1, 2, 3", "last_number", "3"),
        ("the end.", "last_number", None),
        ("(B)", "choice", "B"),
        ("answer: C", "choice", "C"),
        (r"\boxed{D}", "choice", "D"),
        (r"\boxed{\text{(e)}}", "choice", "E"),
        ("The answer is (a).", "choice", "A"),
        ("Final answer: B. 42", "choice", "B"),
        ("A cat.", "choice", None),
        (r"... \boxed{2} and the answer is 3", "auto", "2"),
        ("the answer is 3", "auto", "3"),
        ("we get 17 apples", "auto", "17"),
        ("nothing", "auto", None),
    ],
)
def test_extract_answer(text: str, method: str, expected: str | None) -> None:
    assert extract_answer(text, method) == expected


def test_boxed_answers_in_order_and_brace_matched() -> None:
    text = r"\boxed{a} \boxed{} \boxed{\frac{1}{2}} \boxed{x^{2}}"
    assert boxed_answers(text) == ["a", r"\frac{1}{2}", "x^{2}"]


def test_paper_extractor_matches_the_authors_quirks() -> None:
    assert extract_answer(r"first \boxed{3} then \boxed{4}", "paper") == "3"
    assert extract_answer(r"\boxed{} \boxed{5}", "paper") == "5"
    assert extract_answer(r"cut off \boxed{12", "paper") == "12"  # an unclosed box runs to the end
    assert extract_answer(r"\boxed{ 6 }", "paper") == " 6 "  # not stripped
    assert extract_answer(r"\fbox{6}", "paper") is None  # \boxed{ only


def test_unknown_method_or_mode_is_an_input_error() -> None:
    with pytest.raises(InputError):
        extract_answer("x", "nope")
    with pytest.raises(InputError):
        grade("x", mode="exact")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        grade(r"\boxed{1}", "1", timeout=0)


# ---------------------------------------------------------------------------------------------
# Keys (normalisation)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "key"),
    [
        (r"\dfrac{1}{2}", r"\frac12"),
        (r"\frac12", r"\frac12"),
        (r"\tfrac{3}{4}", r"\frac34"),
        (r"10\%", "10"),
        (r"10\text{ cm}", "10cm"),
        ("1 + 2", "1+2"),
        (r"\text{Monday}", "monday"),
        (r"3\times 4", "3*4"),
        (r"2 \cdot x", "2*x"),
        ("1,5", "1.5"),  # the authors turn a comma between digits into a decimal point
        (r"\pi", "pi"),
        (r"October\ 30", "october30"),
        (r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt3}2"),  # one level of braces only
        ("6.170", "6.170"),
        ("  ABC  ", "abc"),
    ],
)
def test_paper_key(answer: str, key: str) -> None:
    assert answer_key(answer, "paper") == key


@pytest.mark.parametrize(
    ("answer", "key"),
    [
        ("$6.170$", "6.17"),
        ("5.0", "5"),
        ("1,234,567", "1234567"),
        ("1,234.5", "1234.5"),
        ("(1, 234)", "(1,234)"),  # a pair, not a thousands separator
        (r"1{,}234", "1234"),
        ("1,2,3", "1,2,3"),
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"90^\circ", "90"),
        (r"10\%", "10"),
        (r"\$5", "5"),
        (r"\dfrac{1}{2}", r"\frac{1}{2}"),
        (r"10\text{ cm}", "10cm"),
        (r"2\cdot x", r"2\cdot x"),
        ("Monday", "Monday"),  # case is kept
        ("42.", "42"),
    ],
)
def test_default_key(answer: str, key: str) -> None:
    assert answer_key(answer) == key


def test_key_of_no_answer_is_none() -> None:
    assert answer_key(None) is None
    assert answer_key(None, "paper") is None


# ---------------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("0.5", r"\frac{1}{2}", True),
        ("6.170", "6.17", True),
        ("6.18", "6.17", False),
        (r"\frac{1}{2}\sqrt{3}", r"\frac{\sqrt{3}}{2}", True),
        ("1,234", "1234", True),
        (r"\frac{2}{4}", "0.5", True),
        ("0.25", r"\frac{1}{2}", False),
        ("x^2 + 2x + 1", "(x+1)^2", True),
    ],
)
def test_default_mode_equivalence(answer: str, gold: str, expected: bool) -> None:
    assert answers_equal(answer, gold) == (expected, GradeStatus.OK)


@pytest.mark.parametrize(("answer", "gold", "expected"), [
    ("90", "90", True), ("89", "90", False), ("090", "90", True), ("-0", "0", True), ("-7", "7", False),
    ("9" * 100_000, "9", False),  # past Python's 4,300-digit int() limit: compared as digit strings
    ("1" + "0" * 5000, "1" + "0" * 5000, True)])
def test_integers_are_decided_without_the_worker(
    monkeypatch: pytest.MonkeyPatch, answer: str, gold: str, expected: bool
) -> None:
    monkeypatch.setattr(grading, "compare_symbolic", _no_worker)
    assert answers_equal(answer, gold) == (expected, GradeStatus.OK)


@pytest.mark.parametrize(
    ("answer", "gold"),
    [(r"\dfrac{1}{2}", r"\frac12"), (r"10\%", "10"), (r"10\text{ cm}", "10 cm"), ("ABC", "abc")],
)
def test_paper_mode_equal_keys_need_no_worker(monkeypatch: pytest.MonkeyPatch, answer: str, gold: str) -> None:
    monkeypatch.setattr(grading, "compare_symbolic", _no_worker)
    assert answers_equal(answer, gold, mode="paper") == (True, GradeStatus.OK)


def test_paper_mode_symbolic_step_follows_sympy_availability() -> None:
    # parse_latex needs antlr4-python3-runtime 4.11; without it the authors' code says "not equal".
    assert answers_equal("6.18", "6.17", mode="paper") == (False, GradeStatus.OK)
    assert answers_equal("6.170", "6.17", mode="paper") == (_sympy_latex_available(), GradeStatus.OK)


def test_paper_prepare_for_sympy() -> None:
    assert grading.prepare_latex_for_sympy(r"\dfrac{1}{2} \cdot 3,000") == r"\frac{1}{2} * 3000"
    # Their non-greedy \boxed{(.*?)} unwrap stops at the first "}" (a published quirk, kept).
    assert grading.prepare_latex_for_sympy(r"\boxed{\frac{1}{2}}") == r"\frac{1{2}}"
    assert grading.prepare_latex_for_sympy(r"\left(\text{x}\right)") == "({x})"


def test_unparseable_answer_is_a_parse_error() -> None:
    assert answers_equal("x^{", "2") == (None, GradeStatus.PARSE_ERROR)
    assert grade("The answer is x^{", "2", method="answer_is") == Grade("x^{", "x^{", None, GradeStatus.PARSE_ERROR)


# ---------------------------------------------------------------------------------------------
# grade()
# ---------------------------------------------------------------------------------------------


def test_grade_default_mode_uses_the_last_box() -> None:
    text = r"<think>maybe \boxed{3}</think> so the answer is \boxed{0.5}"
    assert grade(text, r"\frac{1}{2}") == Grade("0.5", "0.5", True, GradeStatus.OK)
    assert grade(text, "3", mode="paper") == Grade("3", "3", True, GradeStatus.OK)


def test_grade_without_gold_has_no_verdict() -> None:
    assert grade(r"\boxed{\dfrac{1}{2}}", mode="paper") == Grade(r"\dfrac{1}{2}", r"\frac12", None, GradeStatus.OK)
    assert grade(r"\boxed{4}", "  ") == Grade("4", "4", None, GradeStatus.OK)  # empty gold = no gold


def test_numeric_gold_is_accepted_and_other_types_are_not() -> None:
    assert grade(r"\boxed{42}", 42).correct is True  # type: ignore[arg-type]
    with pytest.raises(InputError):
        grade(r"\boxed{42}", ["42"])  # type: ignore[arg-type]


def test_grade_no_answer() -> None:
    assert grade("I am not sure.", "4") == Grade(None, None, None, GradeStatus.NO_ANSWER)
    assert grade("the answer is 4", "4", mode="paper") == Grade(None, None, None, GradeStatus.NO_ANSWER)


def test_grade_multiple_choice() -> None:
    assert grade("So the answer is (C).", "C", method="choice") == Grade("C", "C", True, GradeStatus.OK)
    assert grade(r"\boxed{B}", "(C)", method="choice").correct is False


# ---------------------------------------------------------------------------------------------
# Worker: hard timeout off the main thread, restart, concurrency, lifecycle
# ---------------------------------------------------------------------------------------------


def _zombie_children() -> list[int]:
    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            zombies.append(int(stat.parent.name))
    return zombies


def test_pathological_comparison_times_out_from_a_worker_thread() -> None:
    assert answers_equal("0.5", r"\frac{1}{2}") == (True, GradeStatus.OK)  # worker started and warm
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        result = pool.submit(answers_equal, PATHOLOGICAL, "2", timeout=1.0).result(timeout=30)
        elapsed = time.monotonic() - started
    assert result == (None, GradeStatus.TIMEOUT)
    assert elapsed < 3.0
    # The killed worker was replaced: the next comparison works.
    assert answers_equal("0.25", r"\frac{1}{4}") == (True, GradeStatus.OK)
    if Path("/proc").is_dir():
        assert _zombie_children() == []


def test_timeouts_are_reported_by_grade_and_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    text = rf"\boxed{{{PATHOLOGICAL}}}"
    thread_result: list[Grade] = []
    worker = threading.Thread(target=lambda: thread_result.append(grade(text, "2", timeout=0.5)))
    worker.start()
    worker.join(timeout=30)
    assert thread_result == [Grade(PATHOLOGICAL, PATHOLOGICAL, None, GradeStatus.TIMEOUT)]
    monkeypatch.setattr(grading, "compare_symbolic", lambda *a, **k: (False, GradeStatus.OK))
    assert grade(text, "2", timeout=0.5).status is GradeStatus.OK  # recomputed, not the cached timeout


def test_concurrent_comparisons_from_many_threads() -> None:
    cases = [("0.5", r"\frac{1}{2}", True), (r"\frac{3}{6}", "0.5", True), ("0.3", r"\frac{1}{3}", False)] * 6
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda case: answers_equal(case[0], case[1]), cases))
    assert results == [(expected, GradeStatus.OK) for _, _, expected in cases]


def test_shutdown_then_compare_again_starts_a_fresh_worker() -> None:
    assert answers_equal("0.5", r"\frac{1}{2}")[0] is True
    shutdown_workers()
    assert grading._pool is None
    assert answers_equal("0.5", r"\frac{1}{2}")[0] is True


def test_importing_starts_no_worker() -> None:
    code = "import anchors.traces.answers, anchors.traces.grading as g\nassert g._pool is None\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_CPU backstop is checked on Linux")
def test_orphaned_worker_is_ended_by_its_cpu_limit() -> None:
    """If the parent dies mid-comparison nobody kills the worker: the kernel's CPU limit does."""
    worker = grading._Worker()
    request = {"id": 1, "mode": "default", "answer": PATHOLOGICAL, "gold": "2", "cpu_budget": 1.0}
    assert worker._send(request)
    proc = worker._proc
    assert proc is not None
    started = time.monotonic()
    returncode = proc.wait(timeout=30)
    assert returncode != 0 and time.monotonic() - started < 10
    worker.kill()


def test_worker_that_cannot_start_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grading, "_BOOT", "import sys; sys.exit(3)")
    worker = grading._Worker()
    with pytest.raises(AnchorsError, match="did not start"):
        worker.call("default", "1", "2", timeout=1.0)
    worker.kill()


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def test_cache_hit_skips_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    text = r"so \boxed{0.5}"
    first = grade(text, r"\frac{1}{2}")
    assert first == Grade("0.5", "0.5", True, GradeStatus.OK)
    monkeypatch.setattr(grading, "compare_symbolic", _no_worker)
    assert grade(text, r"\frac{1}{2}") == first  # in-process LRU
    clear_grade_cache()
    assert grade(text, r"\frac{1}{2}") == first  # the SQLite file
    assert (Path(os.environ["ANCHORS_CACHE"]) / "grading" / "grades.sqlite").is_file()


def test_cache_key_covers_mode_method_and_gold(monkeypatch: pytest.MonkeyPatch) -> None:
    text = r"\boxed{3} then \boxed{0.5}"
    assert grade(text, r"\frac{1}{2}").correct is True
    monkeypatch.setattr(grading, "compare_symbolic", lambda *a, **k: (False, GradeStatus.OK))
    assert grade(text, r"\frac{1}{3}").correct is False
    assert grade(text, "3", method="boxed_first").correct is True
    assert grade(text, "3", mode="paper").correct is True


def test_no_cache_env_skips_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_NO_CACHE", "1")
    text = r"\boxed{0.5}"
    assert grade(text, r"\frac{1}{2}").correct is True
    clear_grade_cache()
    monkeypatch.setattr(grading, "compare_symbolic", _no_worker)
    with pytest.raises(AssertionError, match="should not have been called"):
        grade(text, r"\frac{1}{2}")
    assert not (Path(os.environ["ANCHORS_CACHE"]) / "grading" / "grades.sqlite").exists()


def test_cache_false_skips_memory_too(monkeypatch: pytest.MonkeyPatch) -> None:
    assert grade(r"\boxed{0.5}", r"\frac{1}{2}").correct is True
    monkeypatch.setattr(grading, "compare_symbolic", _no_worker)
    with pytest.raises(AssertionError):
        grade(r"\boxed{0.5}", r"\frac{1}{2}", cache=False)


def test_deleting_the_cache_file_is_safe() -> None:
    text = r"\boxed{0.5}"
    grade(text, r"\frac{1}{2}")
    db = Path(os.environ["ANCHORS_CACHE"]) / "grading" / "grades.sqlite"
    for path in db.parent.iterdir():
        path.unlink()
    clear_grade_cache()
    assert grade(text, r"\frac{1}{2}").correct is True
    assert db.is_file()


def test_cache_stores_no_text() -> None:
    secret = "my-unique-prompt-text-1234 " + r"\boxed{7}"
    grade(secret, "7")
    blob = b"".join(p.read_bytes() for p in (Path(os.environ["ANCHORS_CACHE"]) / "grading").iterdir())
    assert b"my-unique-prompt-text" not in blob


# ---------------------------------------------------------------------------------------------
# The authors' released traces
# ---------------------------------------------------------------------------------------------


def _viewer_traces() -> list[Path]:
    return sorted(DATA.glob("*/*/problem_*")) if DATA.is_dir() else []


@pytest.mark.skipif(not DATA.is_dir(), reason=f"the authors' released traces are not at {DATA}")
def test_paper_mode_reproduces_is_correct_on_released_traces() -> None:
    checked, agree = 0, 0
    for folder in _viewer_traces():
        base = json.loads((folder / "base_solution.json").read_text())
        gold = json.loads((folder / "problem.json").read_text())["gt_answer"]
        after_think = base["solution"].split("</think>", 1)[-1]
        if not boxed_answers(after_think):
            continue
        # The authors took the first box of the whole solution, thinking included.
        assert extract_answer(base["solution"], "paper") == base["answer"], folder
        checked += 1
        agree += grade(after_think, gold, mode="paper").correct == base["is_correct"]
    assert checked == len(_viewer_traces()) > 0
    assert agree == checked
