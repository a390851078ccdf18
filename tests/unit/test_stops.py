"""Stop rules shared by the local engine and the server backend."""

from __future__ import annotations

from anchors.rollouts.stops import StopRule, first_boxed_end, first_stop_end


def test_first_stop_end_picks_the_earliest_and_keeps_it() -> None:
    text = "abc STOP def END"
    assert first_stop_end(text, ["END", "STOP"]) == text.index("STOP") + 4
    assert first_stop_end(text, ["nope"]) is None
    # ties at one start: the longer stop string wins
    assert first_stop_end("x\n\n\ny", ["\n", "\n\n"]) == 3


def test_boxed_end_matches_nested_braces_and_waits_for_the_close() -> None:
    assert first_boxed_end(r"so \boxed{\frac{1}{2}} done") == len(r"so \boxed{\frac{1}{2}}")
    assert first_boxed_end(r"so \boxed{\frac{1}{2") is None
    assert first_boxed_end("no box here") is None


def test_boxed_stop_only_after_the_thinking_closes() -> None:
    rule = StopRule.for_prompt("<think>\nLet me", stop=(), boxed=True)
    thinking_box = r" try \boxed{3} hmm"
    assert rule.end(thinking_box) is None  # a boxed guess inside the thinking does not end the rollout
    text = thinking_box + "</think>\nThe answer is \\boxed{4}. Extra"
    assert text[: rule.end(text)].endswith("\\boxed{4}")


def test_forced_answer_prompt_stops_at_the_brace_that_closes_it() -> None:
    prompt = "<think>\nsteps\n</think>\n\nTherefore, the final answer is \\boxed{"
    rule = StopRule.for_prompt(prompt, stop=(), boxed=True)
    assert rule.end("42} and more") == 3
    assert rule.end("\\frac{1}{2}}.") == len("\\frac{1}{2}}")
    assert rule.end("42") is None


def test_a_boxed_answer_complete_in_the_prompt_is_not_a_stop() -> None:
    prompt = "<think>\nx\n</think>\n\\boxed{1} and again "
    rule = StopRule.for_prompt(prompt, stop=(), boxed=True)
    assert rule.end("more \\boxed{2} tail") == len("more \\boxed{2}")


def test_stop_strings_and_boxed_together_take_the_earliest() -> None:
    rule = StopRule.for_prompt("<think>\n", stop=("\n\n",), boxed=True)
    assert rule.end("a</think>\\boxed{1}\n\nb") == len("a</think>\\boxed{1}")
    assert rule.end("a\n\nb</think>\\boxed{1}") == 3
    assert rule.trigger_chars() == frozenset({"\n", "}"})
    assert not StopRule.for_prompt("p", stop=(), boxed=False).active
