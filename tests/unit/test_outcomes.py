"""Outcomes (anchors.outcomes): the math outcome is today's grading, choice letters, regex classes, the forced-answer
suffixes and the spec strings. The python outcome and the judge have their own files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anchors.errors import InputError
from anchors.methods.blackbox.sampling import Grader
from anchors.models.templates import (
    FORCED_ANSWER_SUFFIX,
    PAPER_FORCED_ANSWER_SUFFIX,
    PromptTemplate,
    paper_template,
    r1_distill_template,
)
from anchors.outcomes import (
    ChoiceConfig,
    ChoiceOutcome,
    JudgeOutcome,
    MathConfig,
    MathOutcome,
    OutcomeStatus,
    PythonOutcome,
    RegexConfig,
    RegexOutcome,
    answer_part,
    closing_part,
    load_regex_config,
    parse_outcome,
)
from anchors.traces import grade_cache, grading
from anchors.traces.answers import GradeStatus, extract_answer, grade
from anchors.traces.records import Trace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_CACHE", str(tmp_path / "cache"))
    grade_cache.RESULTS.reset()


# ---------------------------------------------------------------------------------------------
# Math: exactly anchors.traces.answers.grade
# ---------------------------------------------------------------------------------------------

# (text, gold, mode, method): inputs of tests/unit/test_answers.py, and both modes' extractors.
MATH_CASES = [
    (r"<think>maybe \boxed{3}</think> so the answer is \boxed{0.5}", r"\frac{1}{2}", "default", None),
    (r"<think>maybe \boxed{3}</think> so the answer is \boxed{0.5}", "3", "paper", None),
    (r"\boxed{\dfrac{1}{2}}", None, "paper", None),
    (r"\boxed{4}", "  ", "default", None),
    (r"\boxed{42}", "42", "default", None),
    ("I am not sure.", "4", "default", None),
    ("the answer is 4", "4", "paper", None),
    ("So the answer is (C).", "C", "default", "choice"),
    (r"\boxed{B}", "(C)", "default", "choice"),
    ("The answer is x^{", "2", "default", "answer_is"),
    (r"first \boxed{3} then \boxed{4}", "4", "default", "boxed_first"),
    (r"cut off \boxed{12", "12", "paper", None),
    (r"\boxed{ 6 }", "6", "paper", None),
    (r"\boxed{10\%}", "10", "default", None),
    (r"\boxed{1,234}", "1234", "default", None),
    (r"so \boxed{\frac{2}{4}}", "0.5", "default", None),
    ("we get 17 apples", "17", "default", "auto"),
]


@pytest.mark.parametrize(("text", "gold", "mode", "method"), MATH_CASES)
def test_math_outcome_equals_todays_grading(text: str, gold: str | None, mode: str, method: str | None) -> None:
    today = grade(text, gold, mode=mode, method=method)  # type: ignore[arg-type]
    result = MathOutcome(MathConfig(mode=mode, method=method)).grade(text, gold)
    assert (result.answer, result.key, result.correct) == (today.answer, today.key, today.correct)
    assert result.status.value == {"parse_error": "error"}.get(today.status.value, today.status.value)


@pytest.mark.parametrize("mode", ["default", "paper"])
@pytest.mark.parametrize(("completion", "gold"), [("7}", "7"), ("0.5} apples", r"\frac{1}{2}"), ("seven", "7"), ("8}.", "7")])
def test_math_forced_answers_equal_the_samplers_grader(mode: str, completion: str, gold: str) -> None:
    template = paper_template() if mode == "paper" else r1_distill_template()
    outcome = MathOutcome(MathConfig(mode=mode))
    prompt = template.render("What is 3 + 4?", "Three plus four. ") + outcome.forced_suffix(template)
    # the sampler's grading of forced answers before outcomes were wired in, written out
    if mode == "paper":
        today = grade(prompt + completion, gold, mode="paper")
    else:
        today = grade("\\boxed{" + completion, gold, mode="default", method="boxed_first")
    result = outcome.grade_forced(completion, gold, prompt=prompt)
    assert (result.key, result.correct) == (today.key, today.correct)
    wired = Grader(outcome, Trace(id="t", problem="p", thinking="x", answer_text="y", gold_answer=gold), mode,
                   template.think_close).forced(completion, prompt)  # and the sampler now grades with the outcome
    assert (wired.answer, wired.correct) == (today.key, today.correct)


def test_math_status_mapping_keeps_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A comparison that timed out or failed to parse still has the answer's key (as today); only the verdict is missing."""
    monkeypatch.setenv("ANCHORS_NO_CACHE", "1")
    monkeypatch.setattr(grading, "compare_symbolic", lambda *a, **k: (None, GradeStatus.TIMEOUT))
    timed_out = MathOutcome().grade(r"\boxed{x^2+1}", "y", )
    assert (timed_out.key, timed_out.correct, timed_out.status) == ("x^2+1", None, OutcomeStatus.TIMEOUT)
    assert "timed out" in timed_out.detail
    monkeypatch.setattr(grading, "compare_symbolic", lambda *a, **k: (None, GradeStatus.PARSE_ERROR))
    failed = MathOutcome().grade(r"\boxed{x^2+2}", "y")
    assert (failed.key, failed.status) == ("x^2+2", OutcomeStatus.ERROR)


def test_math_forced_suffix_is_byte_identical_to_todays() -> None:
    assert MathOutcome().forced_suffix(r1_distill_template()) == FORCED_ANSWER_SUFFIX
    assert MathOutcome().forced_suffix(paper_template()) == PAPER_FORCED_ANSWER_SUFFIX
    assert MathOutcome(MathConfig(mode="paper")).forced_suffix(r1_distill_template()) == PAPER_FORCED_ANSWER_SUFFIX
    custom = PromptTemplate("x", "", "<think>\n", forced_answer_suffix="\n</think>\nFinal: \\boxed{")
    assert MathOutcome().forced_suffix(custom) == "\n</think>\nFinal: \\boxed{"


def test_math_config_rejects_an_unknown_mode() -> None:
    with pytest.raises(InputError, match="mode"):
        MathConfig(mode="exact")


# ---------------------------------------------------------------------------------------------
# Suffixes of the other outcomes: the template's close, then the outcome's lead
# ---------------------------------------------------------------------------------------------


def test_closing_part_follows_the_template() -> None:
    assert closing_part(r1_distill_template()) == "\n</think>\n\n"
    assert closing_part(paper_template()) == "\n</think>\n\n"  # the typo is in the lead, not the close
    other = PromptTemplate("o", "", "<reasoning>\n", think_close="</reasoning>",
                           forced_answer_suffix="</reasoning>\nAnswer: \\boxed{")
    assert closing_part(other) == "</reasoning>\n"
    assert ChoiceOutcome().forced_suffix(other) == "</reasoning>\nTherefore, the answer is ("
    no_close = PromptTemplate("n", "", "", think_close="</r>", forced_answer_suffix="So: \\boxed{")
    assert closing_part(no_close) == "\n</r>\n\n"


def test_non_math_forced_answers_are_read_with_their_lead() -> None:
    choice = ChoiceOutcome()
    assert choice.forced_suffix(r1_distill_template()) == "\n</think>\n\nTherefore, the answer is ("
    assert choice.grade_forced("C) since 12 is even", "C").correct is True
    regex = RegexOutcome(RegexConfig(classes=(("yes", r"\byes\b"), ("no", r"\bno\b"))))
    assert regex.forced_suffix(r1_distill_template()).startswith("\n</think>\n\nTherefore, in a few words")
    assert regex.grade_forced(" yes, I will", "yes").key == "yes"


def test_answer_part() -> None:
    assert answer_part("a </think> b </think> c") == " c"
    assert answer_part("no tag at all") == "no tag at all"
    assert answer_part("x</r>y", "</r>") == "y"


# ---------------------------------------------------------------------------------------------
# Choice
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("(B)", "B"),
        ("answer: C", "C"),
        (r"\boxed{D}", "D"),
        (r"\boxed{\text{(e)}}", "E"),
        ("The answer is (a).", "A"),
        ("Final answer: B. 42", "B"),
        ("A cat.", None),
        ("Therefore, the answer is (C", "C"),  # a forced answer cut after one token
        ("The answer is **(B)**.", "B"),
        (r"Answer: $\boxed{C}$", "C"),
        ("I choose option D.", "D"),
        ("so I will go with (B) here", "B"),
        ("The answer would be C, since the others fail.", "C"),
        ("The answer is B. Option A is wrong.", "B"),  # a mention of another option is no answer
        ("the answer is a number", None),  # a lower-case article is no letter
        ("I think (A) but the answer is (D).", "D"),
        (r"\boxed{A} ... wait, \boxed{C}", "C"),
        ("<think>the professor says (C)</think>\n\nAnswer: A", "A"),  # the thinking is not the answer
        ("<think>maybe (C)</think>\n\nI cannot tell.", None),
        ("The answer is F.", None),  # not one of A-E
    ],
)
def test_choice_letters(text: str, letter: str | None) -> None:
    result = ChoiceOutcome().grade(text, "C")
    assert result.key == letter
    assert result.status is (OutcomeStatus.OK if letter else OutcomeStatus.NO_ANSWER)
    assert result.correct == (None if letter is None else letter == "C")


def test_choice_agrees_with_todays_choice_extractor_on_its_inputs() -> None:
    for text in ["(B)", "answer: C", r"\boxed{D}", r"\boxed{\text{(e)}}", "The answer is (a).", "Final answer: B. 42", "A cat."]:
        assert ChoiceOutcome().extract(text) == extract_answer(text, "choice"), text


def test_choice_gold_forms_and_letters() -> None:
    outcome = ChoiceOutcome()
    assert [outcome.gold_letter(g) for g in ["C", "(c)", "C. 42", " ", None]] == ["C", "C", "C", None, None]
    bad = outcome.grade(r"\boxed{C}", "42")
    assert bad.status is OutcomeStatus.ERROR and "42" in bad.detail
    assert outcome.grade(r"\boxed{C}").correct is None
    wide = ChoiceOutcome(ChoiceConfig(letters="ABCDEFGH"))
    assert wide.grade("The answer is (G).", "G").correct is True and wide.spec == "choice:ABCDEFGH"
    assert wide.classes == tuple("ABCDEFGH")
    with pytest.raises(InputError):
        ChoiceConfig(letters="abc")


# ---------------------------------------------------------------------------------------------
# Regex classes
# ---------------------------------------------------------------------------------------------

CLASSES = (("refuse", r"\b(can't|cannot|won't)\s+help\b"), ("comply", r"\bhere (is|are)\b"))


def test_regex_first_listed_class_wins_and_none_matched_has_a_class() -> None:
    outcome = RegexOutcome(RegexConfig(classes=CLASSES))
    assert outcome.classes == ("refuse", "comply", "other")
    both = outcome.grade("Here is the plan. Actually I can't help with that.", "refuse")
    assert (both.key, both.correct, both.answer) == ("refuse", True, "can't help")
    assert outcome.grade("HERE ARE the files").key == "comply"  # ignore_case by default
    nothing = outcome.grade("Let me think about it.", "comply")
    assert (nothing.key, nothing.correct, nothing.status) == ("other", False, OutcomeStatus.OK)


def test_regex_last_in_text_rule_and_no_none_class() -> None:
    outcome = RegexOutcome(RegexConfig(classes=CLASSES, rule="last_in_text", none_class=None))
    assert outcome.grade("I can't help... no wait, here is the plan.").key == "comply"
    assert outcome.grade("Here is why I cannot help.").key == "refuse"
    missing = outcome.grade("Let me think.")
    assert (missing.key, missing.status) == (None, OutcomeStatus.NO_ANSWER)


def test_regex_reads_the_answer_part_unless_scope_all() -> None:
    text = "<think>I can't help? No.</think>\nHere is the code."
    assert RegexOutcome(RegexConfig(classes=CLASSES)).grade(text).key == "comply"
    assert RegexOutcome(RegexConfig(classes=CLASSES, scope="all")).grade(text).key == "refuse"


def test_regex_gold_is_a_class_name() -> None:
    outcome = RegexOutcome(RegexConfig(classes=CLASSES))
    assert outcome.grade("here is it", "Comply").correct is True  # names compare loosely
    wrong = outcome.grade("here is it", "blackmail")
    assert wrong.status is OutcomeStatus.ERROR and "blackmail" in wrong.detail


def test_regex_file_forms_and_errors(tmp_path: Path) -> None:
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"yes": r"\byes\b", "no": r"\bno\b"}))
    assert load_regex_config(short).classes == (("yes", r"\byes\b"), ("no", r"\bno\b"))
    full = tmp_path / "full.json"
    full.write_text(json.dumps({"classes": {"a": "x"}, "none": None, "rule": "last_in_text", "ignore_case": False}))
    config = load_regex_config(full)
    assert (config.none_class, config.rule, config.ignore_case) == (None, "last_in_text", False)
    bad = {"bad.json": "{not json", "list.json": "[1, 2]", "extra.json": json.dumps({"classes": {"a": "x"}, "colour": 1}),
           "rule.json": json.dumps({"classes": {"a": "x"}, "rule": "best"}),
           "clash.json": json.dumps({"classes": {"other": "x"}})}
    for name, content in bad.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(InputError, match=name):
            load_regex_config(tmp_path / name)
    (tmp_path / "re.json").write_text(json.dumps({"a": "(unclosed"}))
    with pytest.raises(InputError, match="bad regex"):
        RegexOutcome(load_regex_config(tmp_path / "re.json"))
    with pytest.raises(InputError, match="cannot read"):
        load_regex_config(tmp_path / "absent.json")


# ---------------------------------------------------------------------------------------------
# Spec strings
# ---------------------------------------------------------------------------------------------


def test_spec_strings_build_each_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    math = parse_outcome("math", mode="paper", answer_method="boxed_last")
    assert isinstance(math, MathOutcome) and math.config == MathConfig(mode="paper", method="boxed_last")
    assert isinstance(parse_outcome(), MathOutcome)
    assert parse_outcome("choice:ABCD").classes == ("A", "B", "C", "D")
    regex = parse_outcome(f"regex:{EXAMPLES / 'agentic_classes.json'}")
    assert isinstance(regex, RegexOutcome) and "blackmail" in regex.classes
    python = parse_outcome("python:examples/code_grader.py:grade", python_timeout_s=3)
    assert isinstance(python, PythonOutcome) and python.config.module == "examples/code_grader.py"
    assert python.config.function == "grade" and python.config.timeout_s == 3
    assert parse_outcome(r"python:C:\graders\g.py:run").config.module == r"C:\graders\g.py"
    judge = parse_outcome(f"judge:{EXAMPLES / 'agentic_rubric.md'}")
    assert isinstance(judge, JudgeOutcome) and judge.config.endpoint.base_url == "http://127.0.0.1:9/v1"
    assert judge.classes == ("blackmail", "whistleblow", "comply", "other")


@pytest.mark.parametrize("spec", ["", "maths", "math:x", "regex", "regex:", "python:mod", "python::fn", "judge:", "llm"])
def test_bad_specs_name_the_accepted_forms(spec: str) -> None:
    with pytest.raises(InputError, match="use one of"):
        parse_outcome(spec)


def test_judge_spec_without_an_endpoint_says_how_to_set_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANCHORS_JUDGE_BASE_URL", raising=False)
    with pytest.raises(InputError, match="ANCHORS_JUDGE_BASE_URL"):
        parse_outcome(f"judge:{EXAMPLES / 'agentic_rubric.md'}")
