"""Sentence segmentation: handwritten default-mode cases, paper-mode rules, and exact-span properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anchors.errors import InputError
from anchors.traces.segment import Sentence, join_sentences, leading_text, split_sentences


def texts(text: str, mode: str = "default") -> list[str]:
    return [s.text for s in split_sentences(text, mode=mode)]  # type: ignore[arg-type]


# (input, expected sentence texts) — default mode
CASES = {
    "plain": ("One. Two? Three! Four", ["One.", "Two?", "Three!", "Four"]),
    "decimals": ("Pi is 3.14 and e is 2.718. Next we add 0.5.", ["Pi is 3.14 and e is 2.718.", "Next we add 0.5."]),
    "short sentences stay": ("Wait. Hmm. No.", ["Wait.", "Hmm.", "No."]),
    "numbered list": (
        "Steps:\n1. First do x.\n2. Then y.\n10) Last.",
        ["Steps:", "1. First do x.", "2. Then y.", "10) Last."],
    ),
    "bullet list": ("We need:\n- apples\n* pears\n+ plums", ["We need:", "- apples", "* pears", "+ plums"]),
    "newline without list continues": ("This line\ncontinues here. Done.", ["This line\ncontinues here.", "Done."]),
    "abbreviations": (
        "We use e.g. the sum, i.e. a total. Dr. Smith and Mr. Jones agree vs. Mrs. Lee. See Fig. 3 for approx. two.",
        [
            "We use e.g. the sum, i.e. a total.",
            "Dr. Smith and Mr. Jones agree vs. Mrs. Lee.",
            "See Fig. 3 for approx. two.",
        ],
    ),
    "etc before a capital ends": ("Add apples, pears, etc. Then stop.", ["Add apples, pears, etc.", "Then stop."]),
    "etc before lowercase continues": ("Apples, pears, etc. are fruit.", ["Apples, pears, etc. are fruit."]),
    "ordinal is not an abbreviation": ("He came 1st. Then left.", ["He came 1st.", "Then left."]),
    "ellipsis continued": ("Hmm... maybe not. Wait… so what.", ["Hmm... maybe not.", "Wait… so what."]),
    "ellipsis then capital": ("Hmm... Maybe not.", ["Hmm...", "Maybe not."]),
    "inline latex": ("So \\(x = 3. y\\) holds. Next.", ["So \\(x = 3. y\\) holds.", "Next."]),
    "display latex": ("We get \\[ a. B! c \\] here. Next.", ["We get \\[ a. B! c \\] here.", "Next."]),
    "dollar math": ("Take $a. B$ and $$c? D$$ now. Next.", ["Take $a. B$ and $$c? D$$ now.", "Next."]),
    "currency is not math": ("It costs $5. Then $6. Done.", ["It costs $5.", "Then $6.", "Done."]),
    "escaped dollar": ("Pay \\$5. Then go.", ["Pay \\$5.", "Then go."]),
    "unclosed math is ignored": ("Let \\( x. Then y. Done.", ["Let \\( x.", "Then y.", "Done."]),
    "math never crosses a blank line": ("Is $x. \n\nYes. $ no", ["Is $x.", "Yes.", "$ no"]),
    "code block kept whole": (
        "Code:\n```py\nx = 1. \nprint(x)\n\n\ny = 2. Z\n```\nAfter.",
        ["Code:", "```py\nx = 1. \nprint(x)\n\n\ny = 2. Z\n```", "After."],
    ),
    "unclosed fence runs to the end": ("See:\n```\na. B\n\nc", ["See:", "```\na. B\n\nc"]),
    "crlf": ("Line one.\r\n\r\nLine two. Wait.\r\n- item", ["Line one.", "Line two.", "Wait.", "- item"]),
    "paragraph without punctuation": ("So we have\n\n\n\nthe result", ["So we have", "the result"]),
    "blank line with spaces": ("First part\n  \t\nsecond part", ["First part", "second part"]),
    "unicode": ("Ça coûte 5 €. Ünïcödé wörks! Ω≈π? Ja.", ["Ça coûte 5 €.", "Ünïcödé wörks!", "Ω≈π?", "Ja."]),
    "cjk full stops": ("这是第一句。这是第二句！好吗？Yes.", ["这是第一句。", "这是第二句！", "好吗？", "Yes."]),
    "closing quote and bracket": (
        'He said "stop." Then (it ended.) **Bold.** Next',
        ['He said "stop."', "Then (it ended.)", "**Bold.**", "Next"],
    ),
    "factorial": ("5! = 120 is a factorial. Wow!", ["5! = 120 is a factorial.", "Wow!"]),
    "markup attaches to previous": ("Done.\n\n---\n\nNext part.", ["Done.\n\n---", "Next part."]),
    "leading markup attaches to next": ("---\n\nStart here.", ["---\n\nStart here."]),
    "only markup": ("** --- **", ["** --- **"]),
    "heading": ("## Step 1\nCompute the sum.\n# Step 2\nDone.", ["## Step 1", "Compute the sum.", "# Step 2", "Done."]),
    "leading whitespace": ("  \n  Hello there. Bye.  ", ["Hello there.", "Bye."]),
    "empty": ("", []),
    "whitespace only": (" \n\t ", []),
}


@pytest.mark.parametrize("name", list(CASES))
def test_default_cases(name: str) -> None:
    text, expected = CASES[name]
    sentences = split_sentences(text)
    assert [s.text for s in sentences] == expected
    assert_exact(text, sentences)


def test_fields_and_separators() -> None:
    text = "  Wait.  The sum is 3.\n\nSo 3. "
    sentences = split_sentences(text)
    assert sentences[0] == Sentence(index=0, text="Wait.", start=2, end=7, separator="  ")
    assert [s.separator for s in sentences] == ["  ", "\n\n", " "]
    assert leading_text(text, sentences) == "  "
    assert join_sentences(sentences, leading="  ") == text
    assert join_sentences(sentences[:2]) == "Wait.  The sum is 3.\n\n"


def test_paper_like_reasoning_paragraph() -> None:
    text = (
        "Okay, so I need to find the equivalent annual rate. The monthly rate is \\( \\frac{0.06}{12} = 0.005 \\). "
        "Hmm, wait. Let me compute \\( (1.005)^{12} \\approx 1.0617 \\).\n\n"
        "So r is approx. 6.17%. But let me double-check:\n"
        "1. Compute 1.005^2 = 1.010025.\n"
        "2. Square it again.\n\n"
        "Therefore, the answer is \\boxed{6.17}."
    )
    assert texts(text) == [
        "Okay, so I need to find the equivalent annual rate.",
        "The monthly rate is \\( \\frac{0.06}{12} = 0.005 \\).",
        "Hmm, wait.",
        "Let me compute \\( (1.005)^{12} \\approx 1.0617 \\).",
        "So r is approx. 6.17%.",
        "But let me double-check:",
        "1. Compute 1.005^2 = 1.010025.",
        "2. Square it again.",
        "Therefore, the answer is \\boxed{6.17}.",
    ]


def test_unknown_mode() -> None:
    with pytest.raises(InputError, match="mode"):
        split_sentences("Hi.", mode="fancy")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------- paper mode


def test_paper_think_tags_are_stripped_and_spans_count_them() -> None:
    text = "Prompt <think>\n  First sentence here. Second sentence here.\n</think> Answer: 5. Ok."
    sentences = split_sentences(text, mode="paper")
    assert [s.text for s in sentences] == ["First sentence here.", "Second sentence here."]
    first, second = sentences
    assert text[first.start : first.end] == first.text
    assert text[second.start : second.end] == second.text
    assert leading_text(text, sentences) == "Prompt <think>\n  "
    assert second.separator == "\n</think> Answer: 5. Ok."


def test_paper_merges_short_chunk_into_the_next_and_rechecks() -> None:
    # "Hm." is prepended to "Ok."; "Hm. Ok." is still under 10 characters, so it is prepended again.
    text = "Hm. Ok. This is a long enough one."
    sentences = split_sentences(text, mode="paper")
    assert [s.text for s in sentences] == [text]
    assert (sentences[0].start, sentences[0].end) == (0, len(text))
    # Exactly 10 characters is long enough: "Hmm. Wait." stays a chunk of its own.
    assert texts("Hmm. Wait. This is a long enough one.", "paper") == ["Hmm. Wait.", "This is a long enough one."]


def test_paper_last_short_chunk_goes_to_the_previous() -> None:
    text = "A long enough first sentence.\n\nOk."
    sentences = split_sentences(text, mode="paper")
    # Joined with one space: the paragraph break collapses, so text differs from text[start:end].
    assert [s.text for s in sentences] == ["A long enough first sentence. Ok."]
    assert text[sentences[0].start : sentences[0].end] == text


def test_paper_single_short_chunk_is_kept() -> None:
    assert texts("Ok.", "paper") == ["Ok."]


def test_paper_paragraph_break_keeps_the_first_newline_and_final_text() -> None:
    # Paper mode splits only on ".?!" + space/newline or on blank lines; "3.14" and "e.g." do split there.
    text = "<think>Value is 3.14 e.g. here we go\n\nand a final chunk without stop"
    assert texts(text, "paper") == ["Value is 3.14 e.g.", "here we go", "and a final chunk without stop"]


def test_paper_splits_on_crlf_paragraphs() -> None:
    assert texts("First line here\r\n\r\nSecond line here", "paper") == ["First line here", "Second line here"]


def test_paper_does_not_split_on_punctuation_before_tab() -> None:
    text = "Sentence one is here.\tStill the same one."
    assert texts(text, "paper") == [text]


# ------------------------------------------------------------------------------------------------------ properties


def assert_exact(text: str, sentences: list[Sentence]) -> None:
    """The default-mode contract: exact, ordered, stripped spans whose gaps are whitespace and rebuild the text."""
    previous_end = 0
    for i, s in enumerate(sentences):
        assert s.index == i
        assert previous_end <= s.start < s.end <= len(text)
        assert text[s.start : s.end] == s.text
        assert s.text == s.text.strip() and s.text
        next_start = sentences[i + 1].start if i + 1 < len(sentences) else len(text)
        assert s.separator == text[s.end : next_start]
        # Whitespace only, never an exception; it may be empty (CJK stops, a fence glued to the text before it).
        assert s.separator.strip() == ""
        previous_end = s.end
    leading = leading_text(text, sentences)
    assert leading.strip() == ""
    assert join_sentences(sentences, leading=leading) == text
    for k, s in enumerate(sentences):  # every prefix is an exact prefix of the text
        assert join_sentences(sentences[:k], leading=leading) == text[: s.start]


FRAGMENTS = [
    "word", "The", "sum", "is", "3.14", "x", "e.g.", "i.e.", "etc.", "Dr.", "vs.", "1.", "2)", "10.", "- ", "* ",
    "# ", "## ", ". ", "? ", "! ", "...", "…", ".", "?!", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", "\r",
    "$", "$$", "\\(", "\\)", "\\[", "\\]", "```", "~~~", "**", "---", '"', "'", ")", "(", "=", ",", ":", "5!",
    "héllo", "Ünï", "你好", "。", "！", "？", "」", "\u00a0", "\u2028", "\u3000", "\x85", "\x0b", "\x1c", "🙂", "\ufeff",
]
sentence_like = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(sentence_like, st.text(max_size=200)))
def test_default_mode_spans_are_exact(text: str) -> None:
    assert_exact(text, split_sentences(text))


@settings(max_examples=300, deadline=None)
@given(st.one_of(sentence_like, st.text(max_size=200)))
def test_paper_mode_spans_are_ordered_and_contain_the_chunk_pieces(text: str) -> None:
    sentences = split_sentences(text, mode="paper")
    previous_end = 0
    for s in sentences:
        assert previous_end <= s.start < s.end <= len(text)
        assert s.text == s.text.strip() and s.text
        # Merged pieces are joined by one space; each piece is verbatim in the span.
        source = text[s.start : s.end]
        assert source.startswith(s.text.split(" ")[0]) and source.endswith(s.text.split(" ")[-1])
        previous_end = s.end
