"""Prefix nesting groups and the weights fingerprint in a sampler's identity."""

from __future__ import annotations

from anchors.rollouts.fingerprint import weights_fingerprint
from anchors.rollouts.nesting import nesting_groups


def test_nested_prompts_share_the_longest_as_root() -> None:
    prompts = [(1, 2), (1, 2, 3, 4), (9,), (1, 2, 3), (9, 8), (1, 5)]
    assert nesting_groups(prompts) == [[1, 0, 3], [4, 2], [5]]
    assert nesting_groups([]) == []
    # identical prompts are one group (encoded once)
    assert nesting_groups([(1, 2), (1, 2)]) == [[0, 1]]


def test_fingerprint_changes_with_the_weights(tmp_path) -> None:
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 8)
    first = weights_fingerprint(tmp_path)
    weights_fingerprint.cache_clear()
    assert weights_fingerprint(tmp_path) == first and len(first) == 12
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\x01" + b"\x00" * 7)
    weights_fingerprint.cache_clear()
    assert weights_fingerprint(tmp_path) != first
    assert weights_fingerprint(tmp_path / "empty") == "nofiles"


def test_prompts_differing_in_their_last_tokens_join_with_max_tail() -> None:
    prompts = [(1, 2, 3, 4), (1, 2, 5), (1, 6, 7, 8)]  # (1, 2, 5): "…apples. " whose last token is not in the root
    assert nesting_groups(prompts) == [[0], [1], [2]]
    assert nesting_groups(prompts, max_tail=1) == [[0, 1], [2]]
    assert nesting_groups(prompts, max_tail=3) == [[0, 1, 2]]
