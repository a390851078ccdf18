"""The offline labeller: TF-IDF n-grams + position, cue and novelty features + sentence embeddings of each
sentence and its neighbours -> multinomial logistic regression.

Fitted models are stored as plain arrays in a `.npz` file (vocabularies, idf weights, coefficients, and a JSON
string of metadata) and loaded with `allow_pickle=False`: nothing executable is ever read. The bundled model is
fitted on the project's own labelled set (`anchors/data/tag_sentences.jsonl`) by `fit_offline` with the default
`OfflineConfig`; fitting is deterministic (lbfgs, no random state involved), so refitting reproduces it (to
float rounding of the embeddings on another machine).
"""

from __future__ import annotations

import importlib.resources
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float
from scipy import sparse

from anchors.errors import InputError
from anchors.labels.dataset import LabelledTrace, check_tags, labelled_fingerprint
from anchors.labels.features import dense_features, feature_names, normalise_text, shifted
from anchors.models.embeddings import DEFAULT_EMBEDDER, SentenceEmbedder
from anchors.traces.taxonomy import UNKNOWN, Taxonomy, load_taxonomy

MODEL_FORMAT = 2
BUNDLED_MODEL = "tagger_thought_anchors.npz"


@dataclass(frozen=True)
class OfflineConfig:
    """How the offline classifier is built; the defaults made the bundled model."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    # Character n-grams are many; keep the most frequent so the stored model stays small (~2 MB).
    max_char_features: int = 20000
    dense_weight: float = 1.0  # scale of the position/cue block relative to the unit-norm TF-IDF rows
    # Inverse L2 strength of the logistic regression. Strong regularisation transfers best to other people's
    # labels: C = 1 beat 4 and 16 on both transfer checks of benchmarks/taxonomy.py (see the README).
    C: float = 1.0
    balanced: bool = True  # weight classes inversely to their frequency (rare tags still count)
    # Sentence embeddings of each sentence and (scaled by context_weight) of the one before and after it: what
    # the words mean, not only which words. None leaves them out: a text-only model, much faster to label.
    embedder: str | None = DEFAULT_EMBEDDER
    embedding_weight: float = 1.0
    context_weight: float = 0.5


@dataclass(frozen=True)
class _Vocabulary:
    terms: tuple[str, ...]
    idf: np.ndarray


class OfflineTagger:
    """A fitted offline classifier for one taxonomy; `predict_proba` labels the sentences of one trace."""

    def __init__(self, taxonomy: Taxonomy, config: OfflineConfig, word: _Vocabulary, char: _Vocabulary,
                 coef: np.ndarray, intercept: np.ndarray, classes: Sequence[str], meta: dict[str, Any]) -> None:
        self.taxonomy, self.config, self.meta = taxonomy, config, meta
        self.classes = tuple(classes)
        self.coef, self.intercept = coef, intercept
        self._word, self._char = _vectorizer(config, "word", word), _vectorizer(config, "char", char)
        self._vocabularies = (word, char)

    @property
    def name(self) -> str:
        return f"offline:{self.taxonomy.name}@{self.meta.get('trained_on', 'unknown')}"

    def features(self, texts: Sequence[str], problem: str | None = None) -> sparse.csr_matrix:
        """The design matrix of one trace's sentences (rows in order); `problem` is the problem statement."""
        normalised = [normalise_text(t) for t in texts]
        dense = dense_features(texts, self.taxonomy, problem) * self.config.dense_weight
        blocks = [self._word.transform(normalised), self._char.transform(normalised), sparse.csr_matrix(dense)]
        if self.config.embedder is not None:
            blocks.append(sparse.csr_matrix(self._embedding_block(texts)))
        return sparse.hstack(blocks, format="csr")

    def embed_ahead(self, texts: Sequence[str]) -> None:
        """Embed the sentences of many traces in one go, into the embedding cache, before labelling them.

        One call sorts all sentences by length, so its batches pad little: labelling the 20 released traces this
        way was ~1.7x faster than embedding trace by trace (~200 against ~118 sentences/s on 2 cores).
        """
        if self.config.embedder is not None:
            _embedder(self.config.embedder).embed(_embeddable(texts))

    def _embedding_block(self, texts: Sequence[str]) -> np.ndarray:
        vectors = _embedder(self.config.embedder).embed(_embeddable(texts)).astype(float)
        context = self.config.context_weight
        return np.hstack([vectors, context * shifted(vectors, 1), context * shifted(vectors, -1)]) * self.config.embedding_weight

    def predict_proba(self, texts: Sequence[str], problem: str | None = None) -> Float[np.ndarray, "sent tag"]:
        """Probabilities over `self.classes` for each sentence of one trace (in trace order).

        `problem`: the problem statement; optional, but the bundled model was fitted with problems (the novelty
        features compare each sentence's numbers and words with it).
        """
        if not texts:
            return np.zeros((0, len(self.classes)))
        scores = self.features(texts, problem) @ self.coef.T + self.intercept
        scores -= scores.max(axis=1, keepdims=True)
        weights = np.exp(scores)
        return weights / weights.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[str], problem: str | None = None) -> list[str]:
        probs = self.predict_proba(texts, problem)
        return [self.classes[i] for i in probs.argmax(axis=1)]

    def save(self, path: str | Path) -> Path:
        """Write the model as plain arrays (.npz, no pickle)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        word, char = self._vocabularies
        meta = {**self.meta, "format": MODEL_FORMAT, "config": asdict(self.config), "taxonomy": self.taxonomy.to_dict()}
        with target.open("wb") as handle:
            np.savez_compressed(handle, word_terms=np.array(word.terms, dtype=str), word_idf=word.idf,
                                char_terms=np.array(char.terms, dtype=str), char_idf=char.idf, coef=self.coef,
                                intercept=self.intercept, classes=np.array(self.classes, dtype=str),
                                meta=np.array(json.dumps(meta)))
        return target

    @classmethod
    def load(cls, path: str | Path) -> OfflineTagger:
        """Read a model written by `save` (arrays only: `allow_pickle=False`)."""
        try:
            with np.load(Path(path), allow_pickle=False) as arrays:
                data = {key: arrays[key] for key in arrays.files}
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not an anchors tagger model (.npz of plain arrays): {exc}") from None
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != MODEL_FORMAT:
            raise InputError(f"{path}: tagger model format {meta.get('format')!r}, this anchors reads {MODEL_FORMAT}; refit it with `anchors label --fit`")
        config = OfflineConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
        taxonomy = Taxonomy.from_dict(meta["taxonomy"], source=f"{path} (taxonomy)")
        word = _Vocabulary(tuple(data["word_terms"].tolist()), data["word_idf"])
        char = _Vocabulary(tuple(data["char_terms"].tolist()), data["char_idf"])
        _check_embedder(config, meta, path)
        return cls(taxonomy, config, word, char, data["coef"], data["intercept"], data["classes"].tolist(), meta)

    @classmethod
    def bundled(cls) -> OfflineTagger:
        """The model fitted on the project's labelled set (shipped as package data)."""
        resource = importlib.resources.files("anchors") / "data" / BUNDLED_MODEL
        with importlib.resources.as_file(resource) as path:
            return cls.load(path)


def _embeddable(texts: Sequence[str]) -> list[str]:
    """A blank sentence (a stray line break) still needs a row: it is embedded as a neutral '.'."""
    return [t.strip() or "." for t in texts]


@lru_cache(maxsize=2)
def _embedder(name: str | None) -> SentenceEmbedder:
    """One embedder per name and process (the bundled all-MiniLM-L6-v2 unless the model names a folder)."""
    return SentenceEmbedder(name or DEFAULT_EMBEDDER)


def _check_embedder(config: OfflineConfig, meta: dict[str, Any], path: str | Path) -> None:
    """Warn when this machine's embedder is not the one the model was fitted with (its features would differ)."""
    fitted_with = meta.get("embedder_identity")
    if config.embedder is None or fitted_with is None:
        return
    here = _embedder(config.embedder).identity
    if here != fitted_with:
        warnings.warn(f"{path}: fitted with sentence embedder {fitted_with}, this machine has {here}; "
                      "tags may be off: refit with `anchors label --fit`", stacklevel=3)


def _vectorizer(config: OfflineConfig, kind: str, vocabulary: _Vocabulary) -> Any:
    vectorizer = _new_vectorizer(config, kind)
    vectorizer.vocabulary_ = {term: i for i, term in enumerate(vocabulary.terms)}
    vectorizer.idf_ = np.asarray(vocabulary.idf, dtype=float)
    return vectorizer


def _new_vectorizer(config: OfflineConfig, kind: str, max_features: int | None = None) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    if kind == "word":
        # Keep one-character tokens ("=", "0", "x"): in maths they carry the sentence's function.
        return TfidfVectorizer(ngram_range=config.word_ngrams, token_pattern=r"[^\s\w]|\w+", sublinear_tf=True,
                               lowercase=False)
    return TfidfVectorizer(analyzer="char_wb", ngram_range=config.char_ngrams, sublinear_tf=True, lowercase=False,
                           max_features=max_features)


def fit_offline(traces: Sequence[LabelledTrace], taxonomy: Taxonomy | str | Path | None = None,
                config: OfflineConfig | None = None, *, trained_on: str = "custom") -> OfflineTagger:
    """Fit the offline classifier on labelled traces (each sentence's first tag; `unknown` ones are skipped).

    Each trace's `problem` feeds the novelty features: label traces without a problem the same way.
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    taxonomy, config = load_taxonomy(taxonomy), config or OfflineConfig()
    check_tags(list(traces), taxonomy, source=trained_on)
    texts = [normalise_text(t) for trace in traces for t in trace.texts]
    labels = np.array([tag for trace in traces for tag in trace.primary_tags])
    keep = labels != UNKNOWN
    if len(set(labels[keep])) < 2:
        raise InputError(f"{trained_on}: need sentences of at least two different tags to fit a classifier")
    word = _new_vectorizer(config, "word").fit([t for t, k in zip(texts, keep) if k])
    char = _new_vectorizer(config, "char", config.max_char_features).fit([t for t, k in zip(texts, keep) if k])
    vocab = (_vocabulary_of(word), _vocabulary_of(char))
    meta = {"trained_on": trained_on, "data_fingerprint": labelled_fingerprint(list(traces)),
            "sentences": int(keep.sum()), "traces": len(traces), "dense_features": feature_names(taxonomy),
            "embedder_identity": _embedder(config.embedder).identity if config.embedder else None}
    draft = OfflineTagger(taxonomy, config, *vocab, np.zeros((1, 1)), np.zeros(1), [], meta)
    design = sparse.vstack([draft.features(trace.texts, trace.problem) for trace in traces], format="csr")[keep]
    model = LogisticRegression(C=config.C, class_weight="balanced" if config.balanced else None, max_iter=5000)
    # One thread: on a few thousand rows OpenMP's threads mostly wait on each other (3-4x slower on a busy
    # 2-core machine, measured), and the result is identical.
    with threadpool_limits(limits=1):
        model.fit(design, labels[keep])
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # two classes: sklearn keeps one score s; softmax([0, s]) is the same probability
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    return OfflineTagger(taxonomy, config, *vocab, coef, intercept, model.classes_.tolist(), meta)


def _vocabulary_of(vectorizer: Any) -> _Vocabulary:
    terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
    return _Vocabulary(tuple(terms), np.asarray(vectorizer.idf_, dtype=float))
