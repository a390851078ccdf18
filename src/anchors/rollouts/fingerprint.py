"""A cheap fingerprint of a model's weights: part of a sampler's identity, so stored rollouts of other
weights under the same name are never mistaken for these.

Hashing every byte of a 28 GB checkpoint takes a minute; the fingerprint hashes each safetensors file's
size, header (tensor names, dtypes, shapes, offsets) and 16 evenly spaced 4 KiB blocks of its data, which
changes with any fine-tune, re-quantisation or conversion while costing milliseconds.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

_BLOCKS = 16
_BLOCK_BYTES = 4096


@lru_cache(maxsize=32)
def weights_fingerprint(folder: Path) -> str:
    """12 hex digits identifying the safetensors weights in `folder` ('nofiles' when there are none)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return "nofiles"
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        _hash_file(path, digest)
    return digest.hexdigest()[:12]


def _hash_file(path: Path, digest: "hashlib._Hash") -> None:
    size = path.stat().st_size
    digest.update(size.to_bytes(8, "little"))
    with path.open("rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
        digest.update(handle.read(min(header_length, size)))
        for block in range(_BLOCKS):
            handle.seek(size * block // _BLOCKS)
            digest.update(handle.read(_BLOCK_BYTES))
