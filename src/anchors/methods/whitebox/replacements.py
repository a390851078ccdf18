"""Counterfactual replacements for activation patching: for sentence i of a trace, a text T_i to put in its place.

Sources (until the rollout store lands, see the patching docs):

* a JSONL file, one replacement per line: `{"trace_id": "t1", "sentence": 3, "text": "Let me try 7 instead."}`
  (a `.json` file may hold the same records as a list);
* rollouts resampled from S_i on (the black-box methods' R_i, any `Sampler`, or the rollout store through
  `collect_rollouts`): `replacements_from_rollouts` takes T_i = each rollout's first sentence;
* the Thought Anchors layout: `chunks_resampled.json` next to a trace's `base_solution.json`
  (`{chunk_idx: [first sentences of ~100 resampled rollouts]}`); the trace must come from that folder
  (`trace.metadata["source_dir"]`), and sentence indices are the authors' chunks (paper segmentation).

From a list of candidates, `pick_replacement` takes the first whose text differs from the original sentence
(ignoring surrounding whitespace): a resample that repeats S_i verbatim would patch nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anchors.errors import InputError
from anchors.rollouts.base import Rollout
from anchors.thought_anchors import ProblemFolder
from anchors.traces.jsonl import jsonl_values, loads_checked
from anchors.traces.records import TRACE_ID_PATTERN, Trace
from anchors.traces.segment import Mode, split_sentences

__all__ = [
    "Replacement",
    "pick_replacement",
    "read_replacements",
    "replacements_from_rollouts",
    "thought_anchors_replacements",
]

Replacements = Mapping[int, str]  # sentence index -> replacement text, for one trace


class Replacement(BaseModel):
    """One line of a replacements file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace_id: str = Field(pattern=TRACE_ID_PATTERN)
    sentence: int = Field(ge=0)
    text: str = Field(min_length=1)


def read_replacements(path: str | Path) -> dict[str, dict[int, str]]:
    """{trace id: {sentence index: text}} from a JSONL (or JSON list) file; InputError at the first bad record."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such replacements file (JSONL: {{\"trace_id\", \"sentence\", \"text\"}} per line)")
    out: dict[str, dict[int, str]] = {}
    for where, record in _records(path):
        try:
            item = Replacement.model_validate(record)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise InputError(f"{where}: field '{field}': {first['msg']}") from None
        if item.sentence in out.setdefault(item.trace_id, {}):
            raise InputError(f"{where}: a second replacement for trace {item.trace_id!r} sentence {item.sentence}")
        out[item.trace_id][item.sentence] = item.text
    return out


def _records(path: Path) -> list[tuple[str, object]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = loads_checked(text, str(path))
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of {{\"trace_id\", \"sentence\", \"text\"}} records")
        return [(f"{path}: record {k}", record) for k, record in enumerate(data)]
    return jsonl_values(path)


def pick_replacement(original: str, candidates: Sequence[str]) -> str | None:
    """The first candidate whose text differs from `original` (stripped), or None."""
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip() and candidate.strip() != original.strip():
            return candidate.strip()
    return None


def thought_anchors_replacements(trace: Trace, sentences: Sequence[str]) -> dict[int, str]:
    """Replacements for `trace` from the resampled first sentences (chunks_resampled.json) of its Thought Anchors folder."""
    source = trace.metadata.get("source_dir")
    folder = ProblemFolder(source, Path(source).parent) if source else None
    if folder is None or not folder.has_resampled():
        raise InputError(
            f"trace {trace.id!r}: no chunks_resampled.json found (its metadata.source_dir is {source!r}); "
            "load traces with --from-ta from a folder that has the resampled sentences, or give --replacements FILE"
        )
    resampled = folder.resampled()  # a damaged file raises, naming it: this trace is reported, the others run
    picked = {k: pick_replacement(text, resampled.get(k) or []) for k, text in enumerate(sentences)}
    return {k: text for k, text in picked.items() if text is not None}


def replacements_from_rollouts(
    sentences: Sequence[str], rollouts: Mapping[int, Sequence[Rollout]], mode: Mode = "default"
) -> dict[int, str]:
    """T_i for each sentence i with rollouts resampled from prefix S_1..S_{i-1}: the first sentence of the
    first successful rollout whose first sentence differs from S_i."""
    out = {}
    for k, batch in rollouts.items():
        firsts = [split_sentences(r.text, mode=mode)[:1] for r in batch if r.ok]
        picked = pick_replacement(sentences[k], [first[0].text for first in firsts if first])
        if picked is not None:
            out[k] = picked
    return out
