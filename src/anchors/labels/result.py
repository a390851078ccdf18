"""The result of labelling one trace: a function tag per sentence, and where known, dependencies."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from anchors.traces.taxonomy import UNKNOWN, Taxonomy

RECORD_SCHEMA_VERSION = 1  # of the per-sentence records written by `anchors label --out`

if TYPE_CHECKING:
    import pandas as pd


class LabelWarning(UserWarning):
    """A labeller had to repair or give up on part of a reply (the affected sentences say `unknown`)."""


def warn(message: str) -> None:
    warnings.warn(message, LabelWarning, stacklevel=3)


@dataclass(frozen=True)
class SentenceLabels:
    """Function tags for the sentences of one trace, in order.

    `tags[i]` is sentence i's primary tag (what figures and the category table use); `all_tags[i]` every tag
    the labeller gave, primary first (never empty: `unknown` when nothing usable came back). `depends_on[i]` lists
    earlier sentence indices that sentence i uses (LLM labeller); None: not computed (offline labeller).
    `confidence[i]` is the offline classifier's probability of `tags[i]`; None: not computed (LLM labeller).
    `warnings` records every repair or give-up, also emitted as `LabelWarning`.
    """

    trace_id: str | None
    sentences: tuple[str, ...]
    all_tags: tuple[tuple[str, ...], ...]
    taxonomy: Taxonomy
    labeller: str
    depends_on: tuple[tuple[int, ...], ...] | None = None
    confidence: tuple[float, ...] | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.all_tags) != len(self.sentences):
            raise ValueError(f"{len(self.all_tags)} tag lists for {len(self.sentences)} sentences")
        if any(not tags for tags in self.all_tags):
            raise ValueError("every sentence needs at least one tag (use 'unknown')")

    @property
    def tags(self) -> tuple[str, ...]:
        """The primary (first) tag of each sentence."""
        return tuple(tags[0] for tags in self.all_tags)

    @property
    def colours(self) -> tuple[str, ...]:
        """Each sentence's primary-tag colour from the taxonomy (grey for `unknown`)."""
        palette = self.taxonomy.colours
        return tuple(palette.get(tag, palette[UNKNOWN]) for tag in self.tags)

    def __len__(self) -> int:
        return len(self.sentences)

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per sentence (what `anchors label --out` writes)."""
        return [
            {"schema_version": RECORD_SCHEMA_VERSION, "trace_id": self.trace_id, "index": i, "text": text, "tag": tags[0], "tags": list(tags),
             "depends_on": None if self.depends_on is None else list(self.depends_on[i]),
             "confidence": None if self.confidence is None else round(self.confidence[i], 4),
             "labeller": self.labeller, "taxonomy": self.taxonomy.name}
            for i, (text, tags) in enumerate(zip(self.sentences, self.all_tags))
        ]

    def to_pandas(self) -> pd.DataFrame:
        """One row per sentence: index, text, tag, tags, depends_on, confidence, colour."""
        import pandas as pd

        frame = pd.DataFrame(self.to_records()).drop(columns=["schema_version", "labeller", "taxonomy"])
        frame["colour"] = list(self.colours)
        return frame
