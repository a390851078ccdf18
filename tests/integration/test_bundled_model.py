"""The bundled SmolLM2-135M-Instruct: GGUF conversion, reload, generation, bridge parity.

Slow: the first run converts the GGUF (~20 s) into cache/models/smollm2-135m; later runs reuse it.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import time

import pytest
import torch

from anchors.models import load_model
from anchors.rollouts.reference import sample
from anchors.models import gguf as gguf_module
from anchors.models.bundled import BUNDLED_MODELS, bundled_gguf_path

pytestmark = pytest.mark.slow

SMOLLM2 = BUNDLED_MODELS["smollm2-135m"]


def _installed() -> bool:
    try:
        importlib.metadata.distribution(SMOLLM2.distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return bundled_gguf_path(SMOLLM2) is not None


requires_smollm2 = pytest.mark.skipif(not _installed(), reason=f"needs {SMOLLM2.install_hint}")


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m", device="cpu")


@requires_smollm2
def _forbid_conversion(monkeypatch):
    def must_not_convert(*args, **kwargs):
        raise AssertionError("the cached conversion was redone")

    monkeypatch.setattr(gguf_module, "convert_gguf", must_not_convert)


def test_converts_once_then_reloads_from_the_cache(smollm2, monkeypatch):
    config = json.loads((smollm2.path / "config.json").read_text())
    assert "quantization_config" not in config
    assert (smollm2.path / "model.safetensors").is_file()
    _forbid_conversion(monkeypatch)
    again = load_model("smollm2-135m", device="cpu")
    assert again.path == smollm2.path
    assert "bundled GGUF" in again.source
    assert (again.n_layers, again.n_heads) == (30, 9)
    assert again.template.name == "chat"


@requires_smollm2
def test_writes_coherent_text_from_its_chat_template(smollm2):
    prompt = smollm2.encode_prompt("What is 12 + 35?")
    (greedy,) = sample(smollm2, prompt, max_new_tokens=48, temperature=0, seed=0)
    print(f"\nSmolLM2 greedy: {greedy.text!r} ({greedy.finish_reason})")
    words = re.findall(r"[A-Za-z]+", greedy.text)
    assert re.search(r"\d", greedy.text), "an arithmetic answer mentions numbers"
    assert len(greedy.text.strip()) > 10
    assert all(word.isascii() for word in words)
    sampled = sample(smollm2, prompt, max_new_tokens=16, seed=1, num_samples=2)
    assert sampled == sample(smollm2, prompt, max_new_tokens=16, seed=1, num_samples=2)


@requires_smollm2
def test_bridge_logits_equal_hf_logits(record_property):
    handle = load_model("smollm2-135m", device="cpu")  # a handle of its own: booting wraps the model in place
    ids = torch.tensor([handle.encode_prompt("What is 12 + 35?", "Okay, so I add the tens first: 10 + 30 = 40.")])
    with torch.no_grad():
        reference = handle.hf_model(ids).logits
        started = time.perf_counter()
        bridge = handle.bridge()
        boot_s = time.perf_counter() - started
        difference = (bridge(ids) - reference).abs().max().item()
    record_property("bridge_max_abs_diff", difference)
    print(f"\nSmolLM2 bridge boot {boot_s:.2f} s, max |bridge - HF| logits = {difference:.3g}")
    assert difference < 1e-4
    _, cache = bridge.run_with_cache(ids, names_filter=lambda hook: hook == "blocks.0.attn.hook_pattern")
    assert cache["blocks.0.attn.hook_pattern"].shape == (1, 9, ids.shape[1], ids.shape[1])


@requires_smollm2
def test_a_gguf_path_converts_into_its_own_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ANCHORS_CACHE", str(tmp_path))
    gguf = bundled_gguf_path(SMOLLM2)
    handle = load_model(gguf, device="cpu")
    assert handle.path.parent == tmp_path / "models" and handle.path.name.startswith("gguf-SmolLM2")
    assert handle.source.startswith("GGUF ")
    _forbid_conversion(monkeypatch)
    assert load_model(str(gguf), device="cpu").path == handle.path
