"""Shards of a set of traces: `I/N` keeps the traces whose id hashes to I modulo N.

The assignment depends on the trace id alone (a sha256, not Python's salted `hash`), so it is the same on every
machine, run and input order: N machines given `--shard 0/N` … `--shard N-1/N` over the same traces split them
with nothing left out and nothing twice, and their stores merge into the unsharded one (`anchors store merge`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from anchors.errors import InputError

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def shard_of(trace_id: str, count: int) -> int:
    """The shard (0 .. count-1) trace `trace_id` belongs to among `count`."""
    digest = hashlib.sha256(trace_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") % count


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise InputError(f"shard {self.index}/{self.count}: need 0 <= I < N, e.g. 0/4 … 3/4")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'I/N' (e.g. '0/4') → Shard(0, 4)."""
        match = _SPEC.fullmatch(text)
        if match is None:
            raise InputError(f"--shard {text!r}: expected I/N, e.g. 0/4 for the first of four shards")
        return cls(int(match[1]), int(match[2]))

    def holds(self, trace_id: str) -> bool:
        return shard_of(trace_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
