"""A trace as one token sequence for a model: prompt + thinking + closing tag + answer, with each thinking
sentence's token span (methods.md §6: "full trace as one sequence; each sentence has a token span").

Tokenisation: the exact text is encoded once. The tokenizer's special tokens (BOS) are added unless the
prompt already starts with the BOS text (chat templates such as R1-distill write it themselves), so the
model sees exactly one BOS. Errors name the trace and, where one is at fault, the sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from anchors.errors import InputError
from anchors.traces.records import Trace
from anchors.traces.segment import Mode, Sentence, split_sentences
from anchors.traces.token_spans import (
    SentenceTokens,
    Span,
    check_token_spans,
    encode_with_spans,
)

if TYPE_CHECKING:
    from anchors.models.handle import ModelHandle

__all__ = ["TraceSequence", "encode_trace", "full_text_parts"]


@dataclass(frozen=True)
class TraceSequence:
    """Token ids of a whole trace and where its parts sit in them (spans are `[start, end)` token indices)."""

    trace_id: str
    text: str
    input_ids: tuple[int, ...]
    sentences: tuple[Sentence, ...]  # character spans index into the trace's thinking text
    spans: tuple[Span, ...]  # token span of each sentence
    answer_span: Span  # tokens of the answer text after the closing tag (empty if it owns none)
    thinking_offset: int  # character offset of the thinking text in `text`

    @property
    def n_sentences(self) -> int:
        return len(self.sentences)

    @property
    def thinking_end(self) -> int:
        """Token index just after the last sentence (what the attention methods need to run)."""
        return self.spans[-1][1]

    def owners(self, length: int | None = None, attach: Sequence[Span] | None = None) -> list[int]:
        """For each token, the index of the sentence owning it, else `n_sentences` ("none")."""
        owner = [self.n_sentences] * (len(self.input_ids) if length is None else length)
        for k, (a, b) in enumerate(attach if attach is not None else self.spans):
            for t in range(a, min(b, len(owner))):
                owner[t] = k
        return owner


def full_text_parts(trace: Trace, handle: ModelHandle) -> tuple[str, str]:
    """(prompt, text after the thinking): the trace's prompt (rendered from the model's template when the
    trace has none) and the closing tag + answer text."""
    prompt = trace.prompt if trace.prompt is not None else handle.template.render(trace.problem)
    return prompt, handle.template.think_close + trace.answer_text


def encode_trace(
    trace: Trace, handle: ModelHandle, *, mode: Mode = "default", attach_whitespace: bool = False
) -> TraceSequence:
    """Tokenise a trace for `handle` and locate its sentences; InputError naming the trace if it cannot."""
    sentences = split_sentences(trace.thinking, mode=mode)
    if not sentences:
        raise InputError(f"trace {trace.id!r}: the thinking text has no sentences")
    prompt, tail = full_text_parts(trace, handle)
    text = prompt + trace.thinking + tail
    offset = len(prompt)
    char_spans = [(offset + s.start, offset + s.end) for s in sentences]
    answer = (offset + len(trace.thinking) + len(handle.template.think_close), len(text))
    spans_in = char_spans + ([answer] if answer[1] > answer[0] else [])
    encoded = encode_with_spans(
        handle.tokenizer, text, spans_in, add_special_tokens=adds_bos(handle.tokenizer, prompt),
        attach_whitespace=attach_whitespace,
    )
    try:
        check_token_spans(handle.tokenizer, text, char_spans, _without_answer(encoded, len(sentences)))
    except InputError as error:
        raise InputError(f"trace {trace.id!r}: {error}") from None
    return TraceSequence(
        trace_id=trace.id, text=text, input_ids=encoded.input_ids, sentences=tuple(sentences),
        spans=encoded.spans[: len(sentences)],
        answer_span=encoded.spans[len(sentences)] if len(encoded.spans) > len(sentences) else (len(encoded.input_ids),) * 2,
        thinking_offset=offset,
    )


def adds_bos(tokenizer: Any, prompt: str) -> bool:
    """Whether to let the tokenizer add its special tokens: not when the prompt already starts with BOS."""
    bos = getattr(tokenizer, "bos_token", None)
    return not (bos and prompt.startswith(bos))


def _without_answer(encoded: SentenceTokens, n_sentences: int) -> SentenceTokens:
    return replace(encoded, spans=encoded.spans[:n_sentences])


def check_length(sequence: TraceSequence, length: int, context_length: int, what: str) -> None:
    """InputError naming the trace when `length` tokens do not fit the model's context."""
    if context_length and length > context_length:
        raise InputError(
            f"trace {sequence.trace_id!r}: {what} is {length} tokens, longer than the model's context of "
            f"{context_length} tokens (sentence {_first_sentence_past(sequence, context_length)} is the first "
            "that does not fit); use a model with a longer context or shorten the trace"
        )


def _first_sentence_past(sequence: TraceSequence, context_length: int) -> int | str:
    for k, (_, end) in enumerate(sequence.spans):
        if end > context_length:
            return k
    return "none: the answer"
