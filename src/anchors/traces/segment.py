"""Split a chain of thought into sentences with exact character spans.

Two modes (see docs/methods.md §2):

* ``mode="default"`` — our segmentation. Every sentence's ``text`` is ``text[start:end]`` (stripped, non-empty)
  and the whitespace between sentences is kept in ``separator``, so the input is rebuilt byte for byte::

      leading_text(text, sents) + join_sentences(sents) == text

  and, for any k, ``leading_text(text, sents) + join_sentences(sents[:k]) == text[:sents[k].start]`` (the exact
  resampling prefix before sentence k).  Boundaries: blank lines (any run), sentence-final punctuation followed by
  whitespace or the end, a single newline before a list item / markdown heading / code fence (and after a heading),
  CJK full stops (even without a following space).  Never inside LaTeX math or fenced code (a fenced block is one
  unit), nor after decimals, list markers, common abbreviations, or an ellipsis that the next word continues.
  Fragments with no letter or digit ("**", "---") are attached to the previous sentence (the next one if first).

* ``mode="paper"`` — reproduces the Thought Anchors authors' chunks exactly (their ``split_solution_into_chunks``,
  with the final chunk kept as in their released data).  ``text`` is the authors' chunk string: merged pieces are
  joined by a single space, so ``text[start:end]`` may differ from ``sentence.text``.  Spans still point into the
  *given* text (start of the first merged piece, end of the last, counting whatever precedes ``<think>``), so
  ``leading_text`` may contain ``<think>`` and the last separator may contain ``</think>`` and the answer.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from anchors.errors import InputError
from anchors.types import Mode

Span = tuple[int, int]

__all__ = ["Mode", "Sentence", "join_sentences", "leading_text", "split_sentences"]


@dataclass(frozen=True)
class Sentence:
    """One sentence: ``index`` in the trace, ``text``, character span ``[start, end)`` in the given text, and the
    ``separator`` that follows it (the given text between ``end`` and the next sentence's ``start``; for the last
    sentence, everything up to the end of the text)."""

    index: int
    text: str
    start: int
    end: int
    separator: str


def split_sentences(text: str, mode: Mode = "default") -> list[Sentence]:
    """Split ``text`` into sentences (see the module docstring for both modes); whitespace-only text gives []."""
    if mode == "paper":
        chunks = _paper_chunks(text)
    elif mode == "default":
        chunks = [(text[s:e], s, e) for s, e in _default_spans(text)]
    else:
        raise InputError(f"unknown segmentation mode {mode!r}: use 'default' or 'paper'")
    return _with_separators(text, chunks)


def join_sentences(sentences: list[Sentence], leading: str = "") -> str:
    """``leading`` + each sentence's text followed by its separator: the default-mode inverse of the split."""
    return leading + "".join(s.text + s.separator for s in sentences)


def leading_text(text: str, sentences: list[Sentence]) -> str:
    """What precedes the first sentence (leading whitespace; in paper mode also ``<think>``); all of it if none."""
    return text[: sentences[0].start] if sentences else text


def _with_separators(text: str, chunks: list[tuple[str, int, int]]) -> list[Sentence]:
    starts = [start for _, start, _ in chunks[1:]] + [len(text)]
    return [
        Sentence(index=i, text=chunk, start=start, end=end, separator=text[end:next_start])
        for i, ((chunk, start, end), next_start) in enumerate(zip(chunks, starts))
    ]


def _strip_span(text: str, start: int, end: int) -> Span:
    """The span of ``text[start:end].strip()`` (``str.strip`` semantics: Unicode whitespace)."""
    piece = text[start:end]
    left = len(piece) - len(piece.lstrip())
    return start + left, start + len(piece.rstrip())


# ---------------------------------------------------------------------------------------------------- paper mode


def _think_region(text: str) -> Span:
    """After the first ``<think>`` and before the next ``</think>``, each only if present."""
    start = text.find("<think>")
    start = 0 if start < 0 else start + len("<think>")
    end = text.find("</think>", start)
    return start, len(text) if end < 0 else end


def _paper_pieces(text: str, start: int, end: int) -> list[Span]:
    """The authors' character scan over ``text[start:end]``: close after a paragraph break's first newline, or
    after ``.?!`` followed by a space or newline.  Spans are stripped; empty pieces are skipped."""
    raw: list[Span] = []
    piece_start = start
    for i in range(start, end):
        paragraph = text.startswith("\n\n", i, end) or text.startswith("\r\n\r\n", i, end)
        if paragraph or (text[i] in ".?!" and i + 1 < end and text[i + 1] in " \n"):
            raw.append((piece_start, i + 1))
            piece_start = i + 1
    raw.append((piece_start, end))
    stripped = (_strip_span(text, s, e) for s, e in raw)
    return [(s, e) for s, e in stripped if s < e]


def _paper_chunks(text: str) -> list[tuple[str, int, int]]:
    """Pieces merged as the authors did: a chunk under 10 characters is prepended to the next one (re-checked),
    or appended to the previous one when it is last."""
    region_start, region_end = _strip_span(text, *_think_region(text))
    chunks = [[text[s:e], s, e] for s, e in _paper_pieces(text, region_start, region_end)]
    i = 0
    while i < len(chunks):
        if len(chunks[i][0]) < 10 and i < len(chunks) - 1:
            chunk, start, _ = chunks.pop(i)
            chunks[i][0], chunks[i][1] = chunk + " " + chunks[i][0], start
            continue
        if len(chunks[i][0]) < 10 and i > 0:
            chunk, _, end = chunks.pop(i)
            chunks[i - 1][0], chunks[i - 1][2] = chunks[i - 1][0] + " " + chunk, end
            continue
        i += 1
    return [(chunk, start, end) for chunk, start, end in chunks]


# -------------------------------------------------------------------------------------------------- default mode

# An opening delimiter of a region that is never split: code fences, then display math before inline math.
_OPENER = re.compile(r"```|~~~|\$\$|(?<!\\)\\\[|(?<!\\)\\\(|(?<![\\$])\$(?=[^\s$])")
_CLOSER = {
    "$$": re.compile(r"\$\$"),
    "\\[": re.compile(r"(?<!\\)\\\]"),
    "\\(": re.compile(r"(?<!\\)\\\)"),
    # Pandoc's rule, so that "$5 and $6" stays prose: no space before the closing $, no digit after it.
    "$": re.compile(r"(?<=\S)(?<!\\)\$(?!\d)"),
}
_WHITESPACE_RUN = re.compile(r"\s+")
# Sentence-final punctuation, then closing quotes/brackets/markdown emphasis, then whitespace or the end.
_TERMINAL = re.compile(r"([.?!…‼⁉]+)[\"'”’)\]*_]*(?=\s|\Z)")
_CJK_TERMINAL = re.compile(r"[。！？｡]+[」』）”’]*")
_LINE_OPENS_UNIT = re.compile(r"[^\S\n]*(?:[-*+•][^\S\n]|\d{1,3}[.)][^\S\n]|#{1,6}[^\S\n]|```|~~~)")
_HEADING = re.compile(r"[^\S\n]*#{1,6}[^\S\n]")
_LIST_NUMBER = re.compile(r"[^\S\n]*\d{1,3}")
# Abbreviations that (practically) never end a sentence, and ones that do only before a capital letter.
_NEVER_FINAL = frozenset({"mr", "mrs", "ms", "dr", "prof", "vs", "fig", "figs", "eq", "eqs", "approx", "cf"})
_FINAL_BEFORE_CAPITAL = frozenset({"e.g", "i.e", "etc", "al", "resp", "viz", "incl", "esp", "ca"})
# A sentence does not start with these: "5! = 120" is a factorial, not an exclamation.
_CONTINUES = frozenset("=<>+/^,;:)]}×·≠≤≥≈")


def _default_spans(text: str) -> list[Span]:
    paragraphs = _paragraph_runs(text)
    regions, fences = _protected_regions(text, [s for s, _ in paragraphs])
    breaks = {s for s, _ in paragraphs if not _covers(regions, s)}
    breaks |= _punctuation_breaks(text, regions) | _line_breaks(text, regions)
    breaks |= {pos for fence in fences for pos in fence}
    cuts = [0, *sorted(b for b in breaks if 0 < b < len(text)), len(text)]
    pieces = (_strip_span(text, s, e) for s, e in zip(cuts, cuts[1:]))
    return _attach_markup(text, [(s, e) for s, e in pieces if s < e])


def _line_break_count(run: str) -> int:
    # CRLF counts once, like LF; a lone CR (old Mac files) counts too.
    return run.count("\n") + run.count("\r") - run.count("\r\n")


def _paragraph_runs(text: str) -> list[Span]:
    """Whitespace runs holding a blank line (two or more line breaks)."""
    runs = (m.span() for m in _WHITESPACE_RUN.finditer(text))
    return [(s, e) for s, e in runs if _line_break_count(text[s:e]) >= 2]


def _protected_regions(text: str, paragraph_starts: list[int]) -> tuple[list[Span], list[Span]]:
    """Code fences and LaTeX math, scanned left to right so that a ``$`` inside code is not an opener.
    Returns (all regions, fences).  An unclosed fence runs to the end (a truncated trace); unclosed math is
    ignored, and math never crosses a blank line (a LaTeX error), which keeps a stray ``$`` from eating text."""
    regions: list[Span] = []
    fences: list[Span] = []
    no_closer: dict[str, Span] = {}  # opener -> a stretch known to hold no closer (keeps "$5 ... $6 ..." linear)
    pos = 0
    while (m := _OPENER.search(text, pos)) is not None:
        end = _region_end(text, m.group(), m.end(), paragraph_starts, no_closer)
        if end is None:
            pos = m.end()
            continue
        regions.append((m.start(), end))
        if m.group() in ("```", "~~~"):
            fences.append((m.start(), end))
        pos = end
    return regions, fences


def _region_end(
    text: str, opener: str, after: int, paragraph_starts: list[int], no_closer: dict[str, Span]
) -> int | None:
    if opener in ("```", "~~~"):
        close = text.find(opener, after)
        return len(text) if close < 0 else close + len(opener)
    i = bisect.bisect_left(paragraph_starts, after)
    limit = paragraph_starts[i] if i < len(paragraph_starts) else len(text)
    known_from, known_limit = no_closer.get(opener, (0, -1))
    if known_from <= after and limit == known_limit:
        return None
    close = _CLOSER[opener].search(text, after, limit)
    if close is None:
        no_closer[opener] = (after, limit)
        return None
    return close.end()


def _covers(regions: list[Span], pos: int) -> bool:
    """Whether ``pos`` lies in one of the sorted, disjoint ``regions``."""
    i = bisect.bisect_right(regions, (pos, float("inf"))) - 1
    return i >= 0 and pos < regions[i][1]


def _next_visible(text: str, pos: int) -> str:
    """The first non-whitespace character at or after ``pos`` ('' at the end)."""
    m = _WHITESPACE_RUN.match(text, pos)
    pos = m.end() if m else pos
    return text[pos] if pos < len(text) else ""


def _word_before(text: str, pos: int) -> str | None:
    """The lowercased abbreviation candidate ending at ``pos`` ("e.g" for "(e.g."); None after a digit ("1st")."""
    start = pos
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    if start > 0 and text[start - 1].isalnum():
        return None
    return text[start:pos].lstrip(".").lower()


def _ends_sentence(text: str, punct: Span, after: int) -> bool:
    """Whether the terminal punctuation ``text[punct[0]:punct[1]]`` (closers end at ``after``) ends a sentence."""
    following = _next_visible(text, after)
    if following == "":
        return True
    if following in _CONTINUES:
        return False
    run = text[punct[0] : punct[1]]
    if run == ".":
        if _is_list_marker(text, punct[0]):
            return False
        word = _word_before(text, punct[0])
        if word in _NEVER_FINAL or (word in _FINAL_BEFORE_CAPITAL and not following.isupper()):
            return False
    is_ellipsis = run.endswith("...") or run.endswith("…")
    return not (is_ellipsis and following.islower())


def _is_list_marker(text: str, dot: int) -> bool:
    """ "1." or "12." alone at the start of a line (after indentation): a list marker, not a sentence."""
    if dot == 0 or not text[dot - 1].isdigit():  # checked first: the line scan below is the slow part
        return False
    line_start = text.rfind("\n", 0, dot) + 1
    return _LIST_NUMBER.fullmatch(text, line_start, dot) is not None


def _punctuation_breaks(text: str, regions: list[Span]) -> set[int]:
    breaks = {
        m.end()
        for m in _TERMINAL.finditer(text)
        if not _covers(regions, m.start()) and _ends_sentence(text, m.span(1), m.end())
    }
    # CJK writing puts no space after a full stop, so those end a sentence wherever they are.
    breaks |= {m.end() for m in _CJK_TERMINAL.finditer(text) if not _covers(regions, m.start())}
    return breaks


def _line_breaks(text: str, regions: list[Span]) -> set[int]:
    """Single newlines before a list item, heading or fence, and after a heading line."""
    breaks = set()
    for m in re.finditer(r"\n", text):
        pos = m.start()
        if _covers(regions, pos):
            continue
        line_start = text.rfind("\n", 0, pos) + 1
        if _LINE_OPENS_UNIT.match(text, pos + 1) or _HEADING.match(text, line_start, pos):
            breaks.add(pos)
    return breaks


def _attach_markup(text: str, spans: list[Span]) -> list[Span]:
    """Join fragments without a letter or digit ("**", "---", "?") to the previous sentence, or to the next one
    when they come first; text made only of such fragments stays one sentence."""
    out: list[Span] = []
    pending: int | None = None  # start of markup seen before any real sentence
    for start, end in spans:
        if any(ch.isalnum() for ch in text[start:end]):
            out.append((start if pending is None else pending, end))
            pending = None
        elif out:
            out[-1] = (out[-1][0], end)
        elif pending is None:
            pending = start
    if pending is not None:  # nothing real came after it
        out.append((pending, spans[-1][1]))
    return out
