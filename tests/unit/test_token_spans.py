"""Sentence character spans → token spans, on small byte-level BPE tokenizers trained in the test."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from anchors.errors import InputError
from anchors.traces.segment import split_sentences
from anchors.traces.token_spans import SentenceTokens, check_token_spans, encode_with_spans, token_spans

CORPUS = [
    "Wait. The answer is 5.\n\nThe sum is 12. So the total is 17.",
    "Let me check. The value of x is 3.14, so x squared is about 9.86.\n\nThen we add them.",
    "Hmm, maybe not. Let me recompute: 2 + 3 = 5. Therefore the answer is \\boxed{5}.",
    "- first item\n- second item\n1. Compute the sum. Héllo wörld 你好。好的！",
] * 20

PROMPT = "User: What is 2 + 3?\nAssistant: <think>\n"
ANSWER = "\n</think>\n\nThe answer is \\boxed{5}."
THINKINGS = [
    "Wait. The answer is 5.\n\nThe sum is 12. So the total is 17.",
    "Let me check.  The value of x is 3.14, so x squared is about 9.86.\n\n\nThen we add them.",
    "- first item\n- second item\n1. Compute the sum. Héllo wörld 你好。 好的！ Ok.",
    "Hmm... maybe not. \\( x = 3. y \\) holds.\r\n\r\nSo 🙂 works? Yes!",
]


def train(pre_tokenizer: Any, vocab_size: int = 600) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<s>"],
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def byte_level(**kwargs: Any) -> Any:
    return pre_tokenizers.ByteLevel(add_prefix_space=False, **kwargs)


TOKENIZERS = {
    # GPT-2's regex pre-tokenizer: " The" carries its leading space; whitespace runs are their own tokens.
    "gpt2": lambda: train(byte_level()),
    # Whitespace glued to the end of the word before it: ".\n\n" and ". " become single tokens.
    "trailing whitespace": lambda: train(
        pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\S+\s*"), "isolated"), byte_level(use_regex=False)])
    ),
    # Whitespace glued to the next word: "\n\nThe" is one token, owned by the sentence "The" starts.
    "leading whitespace": lambda: train(
        pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\s*\S+"), "isolated"), byte_level(use_regex=False)])
    ),
}


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def raw_tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    return TOKENIZERS[request.param]()


@pytest.fixture(scope="module", params=["tokenizers", "transformers"])
def tokenizer(request: pytest.FixtureRequest, raw_tokenizer: Tokenizer) -> Any:
    return raw_tokenizer if request.param == "tokenizers" else PreTrainedTokenizerFast(tokenizer_object=raw_tokenizer)


@pytest.fixture(scope="module")
def gpt2() -> Tokenizer:
    return TOKENIZERS["gpt2"]()


def sentence_char_spans(thinking: str, offset: int) -> list[tuple[int, int]]:
    return [(s.start + offset, s.end + offset) for s in split_sentences(thinking)]


def full(thinking: str) -> tuple[str, list[tuple[int, int]]]:
    return PROMPT + thinking + ANSWER, sentence_char_spans(thinking, len(PROMPT))


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("thinking", THINKINGS)
def test_spans_decode_to_their_sentences(tokenizer: Any, thinking: str) -> None:
    text, char_spans = full(thinking)
    encoded = encode_with_spans(tokenizer, text, char_spans)
    check_token_spans(tokenizer, text, char_spans, encoded)
    assert list(encoded.spans) == token_spans(tokenizer, text, char_spans)
    assert_ordered(encoded.spans)
    for (start, end), (tok_start, tok_end) in zip(char_spans, encoded.spans):
        decoded = tokenizer.decode(list(encoded.input_ids[tok_start:tok_end]))
        # These tokenizers never merge across a sentence boundary's visible text: exact up to whitespace.
        assert squash(decoded) == squash(text[start:end])


def test_cjk_without_spaces_with_gpt2_pretokenizer(gpt2: Tokenizer) -> None:
    # GPT-2's regex puts "。" in its own pre-token, so sentences glued without a space still get their own tokens
    # (a pre-tokenizer that glues "。好" could leave a sentence with none: check_token_spans then names it).
    thinking = "Héllo wörld 你好。好的！Ok. Done."
    text, char_spans = full(thinking)
    for tok in (gpt2, PreTrainedTokenizerFast(tokenizer_object=gpt2)):
        encoded = encode_with_spans(tok, text, char_spans)
        check_token_spans(tok, text, char_spans, encoded)
        decoded = [tok.decode(list(encoded.input_ids[a:b])) for a, b in encoded.spans]
        assert [squash(d) for d in decoded] == ["Héllowörld你好。", "好的！", "Ok.", "Done."]


def test_boundary_tokens_are_merged_as_expected(raw_tokenizer: Tokenizer) -> None:
    text = "Wait. The answer is 5.\n\nThe sum is 12."
    pieces = raw_tokenizer.encode(text).tokens
    spans = token_spans(raw_tokenizer, text, sentence_char_spans(text, 0))
    assert len(spans) == 3 and all(b > a for a, b in spans)
    # Each tokenizer here merges whitespace into some word or punctuation token.
    assert any(re.search("[ĠĊ]", t) and re.search("[^ĠĊ]", t) for t in pieces), pieces


def test_token_owned_by_its_first_visible_character() -> None:
    # A hand-made vocabulary with one token straddling the boundary: ".ĠThe" starts in sentence 0.
    pieces = sorted(set("Ok.ĠThendisr")) + [".Ġ", ".ĠT", ".ĠTh", ".ĠThe", "ĠT", "ĠTh", "ĠThe"]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    merges = [(".", "Ġ"), (".Ġ", "T"), (".ĠT", "h"), (".ĠTh", "e"), ("Ġ", "T"), ("ĠT", "h"), ("ĠTh", "e")]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = byte_level(use_regex=False)
    tok.decoder = decoders.ByteLevel()
    text = "Ok. The end is here."
    char_spans = [(0, 3), (4, len(text))]
    encoded = encode_with_spans(tok, text, char_spans)
    assert ".ĠThe" in tok.encode(text).tokens
    assert encoded.spans[0] == (0, 3)  # "O", "k", ".ĠThe": the boundary token joins sentence 0
    assert tok.decode(list(encoded.input_ids[slice(*encoded.spans[0])])).endswith(". The")
    check_token_spans(tok, text, char_spans, encoded)  # "The" lost to the boundary token is allowed
    # A sentence entirely inside a neighbour's token maps to zero tokens: named in the error.
    with pytest.raises(InputError, match="sentence 1 .*zero tokens"):
        token_spans(tok, "Ok. The", [(0, 3), (4, 7)])


def test_special_tokens_are_owned_by_no_sentence(gpt2: Tokenizer) -> None:
    tok = Tokenizer.from_str(gpt2.to_str())
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    text, char_spans = full(THINKINGS[0])
    without = token_spans(tok, text, char_spans)
    with_bos = token_spans(tok, text, char_spans, add_special_tokens=True)
    assert with_bos == [(a + 1, b + 1) for a, b in without]


def test_attach_whitespace_tiles_the_thinking(gpt2: Tokenizer) -> None:
    text, char_spans = full(THINKINGS[1])
    tight = encode_with_spans(gpt2, text, char_spans)
    tiled = token_spans(gpt2, text, char_spans, attach_whitespace=True)
    assert all(a[1] == b[0] for a, b in zip(tiled, tiled[1:]))
    assert [a for a, _ in tiled] == [a for a, _ in tight.spans]
    for (_, tight_end), (_, end) in zip(tight.spans, tiled):
        assert all(not text[slice(*tight.offsets[i])].strip() for i in range(tight_end, end))


def test_bad_character_spans_are_input_errors(gpt2: Tokenizer) -> None:
    with pytest.raises(InputError, match="sentence 1: .*overlaps"):
        token_spans(gpt2, "Ab. Cd.", [(0, 3), (2, 7)])
    with pytest.raises(InputError, match="outside the text"):
        token_spans(gpt2, "Ab.", [(0, 9)])
    with pytest.raises(InputError, match="sentence 0 .*zero tokens"):
        token_spans(gpt2, "Ab.  Cd.", [(3, 5), (5, 8)])  # a whitespace-only "sentence"


def test_slow_tokenizer_is_refused() -> None:
    class Slow:
        is_fast = False

    with pytest.raises(InputError, match="fast tokenizer"):
        token_spans(Slow(), "Ab.", [(0, 3)])


def test_check_rejects_spans_that_miss_the_text(gpt2: Tokenizer) -> None:
    text = "Wait. The answer is 5."
    char_spans = sentence_char_spans(text, 0)
    encoded = encode_with_spans(gpt2, text, char_spans)
    shifted = SentenceTokens(encoded.input_ids, encoded.offsets, ((0, 1), encoded.spans[1]))
    with pytest.raises(InputError, match="sentence 0"):
        check_token_spans(gpt2, text, char_spans, shifted)


def assert_ordered(spans: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> None:
    assert all(a < b for a, b in spans)
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(spans, spans[1:]))


WORDS = ["The", "sum", "is", "3.14", "x", "héllo", "你好", "🙂", "e.g.", "Dr.", "12", "=", "$x$", "\\(y\\)", "**"]
SEPARATORS = [" ", ". ", "? ", "! ", "...", "\n", "\n\n", "\r\n\r\n", "\n- ", "\n1. ", "。", ", ", "  "]
reasoning = st.lists(st.sampled_from(WORDS + SEPARATORS), min_size=1, max_size=40).map("".join)


@settings(max_examples=200, deadline=None)
@given(reasoning)
def test_gpt2_spans_are_ordered_and_verified(gpt2: Tokenizer, thinking: str) -> None:
    text, char_spans = full(thinking)
    if not char_spans:
        return
    encoded = encode_with_spans(gpt2, text, char_spans)
    check_token_spans(gpt2, text, char_spans, encoded)
    assert_ordered(encoded.spans)
    for k, (tok_start, tok_end) in enumerate(encoded.spans):
        for i in range(tok_start, tok_end):
            piece = text[slice(*encoded.offsets[i])]
            visible = encoded.offsets[i][0] + len(piece) - len(piece.lstrip())
            assert not piece.strip() or char_spans[k][0] <= visible < char_spans[k][1]
