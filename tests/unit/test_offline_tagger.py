"""The offline tagger: the bundled model, plain-array storage, deterministic fitting, and `label_sentences`."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from anchors.errors import InputError
from anchors.labels import (LabelledSentence, LabelledTrace, OfflineTagger, bundled_labelled, fit_offline,
                            label_sentences, label_traces, read_labelled)
from anchors.labels.dataset import labelled_fingerprint
from anchors.labels.features import NOVELTY_FEATURES, dense_features, feature_names, novelty
from anchors.labels.offline import OfflineConfig
from anchors.traces.records import Trace
from anchors.traces.segment import split_sentences
from anchors.traces.taxonomy import THOUGHT_ANCHORS, UNKNOWN

THINKING = (
    "Okay, so I need to find how many apples Tom has at the end. "
    "Let me think about how to approach this. "
    "He starts with 12 apples and gives away 5, so 12 - 5 = 7. "
    "Then he buys 8 more, and 7 + 8 = 15. "
    "Wait, did he give away 5 or 6? "
    "Let me double-check: the problem says 5, so 12 - 5 = 7 is correct. "
    "So Tom has 15 apples. "
    "**Final Answer** \\boxed{15}"
)


@pytest.fixture(scope="module")
def small_set() -> list[LabelledTrace]:
    return bundled_labelled()[:8]


@pytest.fixture(scope="module")
def small_model(small_set: list[LabelledTrace]) -> OfflineTagger:
    return fit_offline(small_set, trained_on="small")


def test_project_set_is_large_enough_and_covers_every_tag() -> None:
    traces = bundled_labelled()
    tags = [tag for t in traces for tag in t.primary_tags]
    assert len(tags) >= 400
    assert {tag: tags.count(tag) >= 40 for tag in THOUGHT_ANCHORS.names} == dict.fromkeys(THOUGHT_ANCHORS.names, True)
    assert len({t.id for t in traces}) == len(traces)


def test_bundled_model_labels_a_trace_sensibly() -> None:
    result = label_sentences(THINKING, labeller="offline")
    assert len(result.tags) == 8 and set(result.tags) <= set(THOUGHT_ANCHORS.names)
    assert result.tags[0] == "problem_setup" and result.tags[-1] == "final_answer_emission"
    assert result.depends_on is None and result.confidence is not None
    assert all(0 < c <= 1 for c in result.confidence)
    assert result.labeller.startswith("offline:thought-anchors")


def test_bundled_model_was_fitted_on_the_bundled_set() -> None:
    model = OfflineTagger.bundled()
    assert model.meta["data_fingerprint"] == labelled_fingerprint(bundled_labelled())
    assert model.classes == tuple(sorted(THOUGHT_ANCHORS.names))


def test_label_sentences_accepts_traces_texts_and_sentences() -> None:
    trace = Trace(id="apples", problem="Tom's apples?", thinking=THINKING, answer_text="15")
    sentences = split_sentences(THINKING)
    by_trace = label_sentences(trace, labeller="offline")
    assert by_trace.trace_id == "apples"
    assert label_sentences(sentences, labeller="offline").tags == by_trace.tags
    assert label_sentences([s.text for s in sentences], labeller="offline").tags == by_trace.tags
    assert len(label_sentences(trace, labeller="offline", mode="paper")) == len(split_sentences(THINKING, mode="paper"))
    assert label_sentences([], labeller="offline").tags == ()


def test_result_frame_has_one_row_per_sentence_with_colours() -> None:
    frame = label_sentences(THINKING, labeller="offline").to_pandas()
    assert list(frame.columns) == ["trace_id", "index", "text", "tag", "tags", "depends_on", "confidence", "colour"]
    assert len(frame) == 8 and frame["colour"].str.match(r"#[0-9A-F]{6}").all()


def test_save_and_load_round_trip_without_pickle(tmp_path: Path, small_model: OfflineTagger) -> None:
    model = small_model
    path = model.save(tmp_path / "tagger.npz")
    with zipfile.ZipFile(path) as archive:  # every member a plain numeric or unicode array
        for name in archive.namelist():
            header = archive.read(name)[:128].decode("latin-1")
            assert "'O'" not in header and "|O" not in header, name
    loaded = OfflineTagger.load(path)
    texts = [s.text for s in split_sentences(THINKING)]
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts), rtol=0, atol=1e-12)
    assert loaded.meta["trained_on"] == "small" and loaded.classes == model.classes


def test_probabilities_match_scikit_learn(small_set: list[LabelledTrace], small_model: OfflineTagger) -> None:
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    model = small_model
    design = sparse.vstack([model.features(t.texts, t.problem) for t in small_set], format="csr")
    labels = [tag for t in small_set for tag in t.primary_tags]
    with threadpool_limits(limits=1):
        reference = LogisticRegression(C=model.config.C, class_weight="balanced", max_iter=5000).fit(design, labels)
    first = small_set[0]
    np.testing.assert_allclose(model.predict_proba(first.texts, first.problem),
                               reference.predict_proba(model.features(first.texts, first.problem)), atol=1e-8)


def test_fitting_is_deterministic(small_set: list[LabelledTrace], small_model: OfflineTagger) -> None:
    first, second = small_model, fit_offline(list(small_set))
    assert first.classes == second.classes
    np.testing.assert_array_equal(first.coef, second.coef)  # the same fit twice on one machine: bit for bit


def test_two_tag_training_set_gives_a_two_class_model() -> None:
    traces = [LabelledTrace(id=f"t{i}", sentences=[
        LabelledSentence(text="Let me compute 3 + 4 = 7.", tags=["active_computation"]),
        LabelledSentence(text="Wait, is that right?", tags=["uncertainty_management"]),
        LabelledSentence(text="Hmm, not sure.", tags=["unknown"])]) for i in range(3)]
    model = fit_offline(traces)
    assert model.classes == ("active_computation", "uncertainty_management")
    assert model.predict(["Then 5 * 6 = 30.", "Wait, did I get that wrong?"]) == ["active_computation", "uncertainty_management"]


def test_dense_features_shape_and_names() -> None:
    texts = [s.text for s in split_sentences(THINKING)]
    features = dense_features(texts, THOUGHT_ANCHORS)
    assert features.shape == (8, len(feature_names(THOUGHT_ANCHORS)))
    names = feature_names(THOUGHT_ANCHORS)
    column = names.index("cue_here_self_checking")
    assert features[5, column] == 1 and features[6, names.index("cue_previous_self_checking")] == 1
    assert features[0, names.index("position_first")] == 1 and features[7, names.index("position_last")] == 1


def test_novelty_features_say_where_numbers_and_words_come_from() -> None:
    problem = "A book has 488 pages. How many times is the digit 4 printed?"
    texts = ["The book has 488 pages.", "So 48 + 1 = 49.", "That gives 49 fours.", "Wait."]
    rows = novelty(texts, problem)
    column = {name: i for i, name in enumerate(NOVELTY_FEATURES)}
    assert rows[0, column["numbers_from_problem"]] == 1 and rows[0, column["words_from_problem"]] == 1  # book, pages
    assert rows[1, column["numbers_new"]] == 1 and rows[1, column["numbers_from_problem"]] == 0
    assert rows[2, column["numbers_from_trace"]] == 1 and rows[2, column["numbers_new"]] == 0
    assert rows[3, column["no_numbers"]] == 1 and rows[3, :3].sum() == 0
    without_problem = novelty(texts, None)
    assert without_problem[0, column["numbers_from_problem"]] == 0 and without_problem[0, column["numbers_new"]] == 1


def test_embeddings_add_the_sentence_and_its_neighbours(small_set: list[LabelledTrace], small_model: OfflineTagger) -> None:
    text_only = fit_offline(small_set, config=OfflineConfig(embedder=None), trained_on="small")
    first = small_set[0]
    with_embeddings, without = small_model.features(first.texts, first.problem), text_only.features(first.texts, first.problem)
    assert with_embeddings.shape == (len(first.texts), without.shape[1] + 3 * 384)
    block = with_embeddings[:, without.shape[1]:].toarray()
    sentence, previous, following = block[:, :384], block[:, 384:768], block[:, 768:]
    np.testing.assert_allclose(previous[1:], small_model.config.context_weight * sentence[:-1], atol=1e-7)
    np.testing.assert_allclose(following[:-1], small_model.config.context_weight * sentence[1:], atol=1e-7)
    assert not previous[0].any() and not following[-1].any()
    assert set(text_only.predict(first.texts, first.problem)) <= set(THOUGHT_ANCHORS.names)


def test_a_model_fitted_with_another_embedder_warns_on_load(tmp_path: Path, small_model: OfflineTagger) -> None:
    stranger = OfflineTagger(small_model.taxonomy, small_model.config, *small_model._vocabularies, small_model.coef,
                             small_model.intercept, small_model.classes,
                             {**small_model.meta, "embedder_identity": "all-MiniLM-L6-v2-0000000000"})
    path = stranger.save(tmp_path / "stranger.npz")
    with pytest.warns(UserWarning, match="fitted with sentence embedder all-MiniLM-L6-v2-0000000000"):
        OfflineTagger.load(path)


def test_a_model_of_an_older_format_is_refused_with_how_to_refit(tmp_path: Path, small_model: OfflineTagger) -> None:
    path = small_model.save(tmp_path / "current.npz")
    with np.load(path, allow_pickle=False) as arrays:
        data = {key: arrays[key] for key in arrays.files}
    meta = json.loads(str(data["meta"]))
    data["meta"] = np.array(json.dumps({**meta, "format": 1}))
    old = tmp_path / "old.npz"
    np.savez_compressed(old, **data)
    with pytest.raises(InputError, match=r"old.npz: tagger model format 1, this anchors reads 2; refit it with `anchors label --fit`"):
        OfflineTagger.load(old)


def test_labels_with_dependencies_become_a_labelled_trace() -> None:
    from anchors.labels import SentenceLabels
    from anchors.labels.dataset import labelled_from_result

    labels = SentenceLabels(trace_id="t", sentences=("Let x = 2.", "So 2x = 4."), taxonomy=THOUGHT_ANCHORS,
                            all_tags=(("problem_setup",), ("active_computation", "result_consolidation")),
                            labeller="llm:test", depends_on=((), (0,)))
    trace = labelled_from_result(labels, "t", "Double 2.")
    assert trace.problem == "Double 2." and trace.texts == ["Let x = 2.", "So 2x = 4."]
    assert trace.sentences[1].tags == ["active_computation", "result_consolidation"] and trace.sentences[1].depends_on == [0]
    assert trace.metadata["source"] == "llm:test"


def test_fit_rejects_tags_outside_the_taxonomy() -> None:
    bad = [LabelledTrace(id="t", sentences=[LabelledSentence(text="x = 1", tags=["calculation"]),
                                             LabelledSentence(text="So", tags=["plan_generation"])])]
    with pytest.raises(InputError, match="trace 't' sentence 0: tag 'calculation'"):
        fit_offline(bad)


def test_offline_tagger_refuses_a_taxonomy_it_was_not_fitted_for(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"name": "other", "tags": [{"name": "a", "definition": "A."}, {"name": "b", "definition": "B."}]}))
    with pytest.raises(InputError, match="fitted for taxonomy 'thought-anchors'"):
        label_sentences(THINKING, labeller="offline", taxonomy=path)


def test_read_labelled_reports_bad_lines_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "labelled.jsonl"
    good = {"id": "a", "sentences": [{"text": "Let me see.", "tags": ["plan_generation"]}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"id": "b", "sentences": []}) + "\n")
    with pytest.raises(InputError, match=r"labelled.jsonl:2: field 'sentences'"):
        read_labelled(path)


def test_unknown_tagged_sentences_are_not_trained_on() -> None:
    traces = bundled_labelled()[:3]
    marked = [LabelledTrace(id=t.id, sentences=[*t.sentences, LabelledSentence(text="Blah.", tags=[UNKNOWN])]) for t in traces]
    assert UNKNOWN not in fit_offline(marked).classes


def test_label_traces_labels_each_trace_with_one_labeller(monkeypatch: pytest.MonkeyPatch) -> None:
    traces = [Trace(id=f"t{i}", problem="Tom's apples?", thinking=THINKING, answer_text="15") for i in range(3)]
    seen: list[int] = []
    embedded_ahead: list[int] = []
    original = OfflineTagger.embed_ahead
    monkeypatch.setattr(OfflineTagger, "embed_ahead",
                        lambda self, texts: (embedded_ahead.append(len(texts)), original(self, texts))[1])

    def progress(items, description):  # type: ignore[no-untyped-def]
        seen.append(len(items))
        return items

    results = list(label_traces(traces, labeller="offline", progress=progress))
    assert [r.trace_id for r in results] == ["t0", "t1", "t2"] and seen == [3]
    assert embedded_ahead == [3 * len(split_sentences(THINKING))]  # every sentence, in one call before labelling
    assert results[0].tags == label_sentences(traces[0], labeller="offline").tags
