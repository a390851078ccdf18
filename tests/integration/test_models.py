"""anchors.models on the tiny random Qwen2 / Llama models (built once into cache/models). On the CPU, except the
bridge parity test, which runs on ANCHORS_TEST_DEVICE (tests/integration/devices.py)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import torch

from anchors.errors import ModelLoadError
from anchors.models import PromptTemplate, available_models, build_tiny_model, load_model
from anchors.models import hub as hub_module
from anchors.models import tiny as tiny_module
from anchors.rollouts.reference import _finish, sample
from anchors.models.loading import resolve_dtype
from anchors.models.storage import build_atomically
from anchors.models.templates import auto_template_name, chat_template
from devices import load_on_test_device, tolerance

TINY = ["tiny-qwen2", "tiny-llama"]
PROBLEM = "What is 12 + 35?"
PREFIX = "Okay, so I need to add 12 and 35.  Let me check:\n12 + 35 = 47."


def load(name, **options):
    """load_model on the CPU, where these tests' expectations (fp32, CPU-reproducible samples) hold."""
    return load_model(name, device="cpu", **options)


@pytest.fixture(scope="module", params=TINY)
def handle(request):
    return load(request.param)


@pytest.fixture(scope="module")
def qwen():
    return load("tiny-qwen2")


# --- building and loading ---------------------------------------------------------------------


def _digest(folder: Path) -> dict[str, str]:
    files = ("model.safetensors", "tokenizer.json", "config.json")
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in files}


def test_tiny_build_is_deterministic(tmp_path):
    first = build_tiny_model("qwen2", tmp_path / "a")
    second = build_tiny_model("tiny-qwen2", tmp_path / "b")
    assert _digest(first) == _digest(second)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folders left behind"


def test_tiny_build_reuses_the_cache(monkeypatch):
    folder = build_tiny_model("tiny-llama")

    def must_not_rebuild(*args, **kwargs):
        raise AssertionError("a cached tiny model was rebuilt")

    monkeypatch.setattr(tiny_module, "_write_tiny_model", must_not_rebuild)
    assert build_tiny_model("tiny-llama") == folder


def test_interrupted_build_leaves_nothing(tmp_path):
    def fail(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_atomically(tmp_path / "model", fail, {"kind": "test"})
    assert list(tmp_path.iterdir()) == []


def test_handle_describes_the_model(handle):
    config = handle.hf_model.config
    assert (handle.n_layers, handle.n_heads, handle.context_length) == (2, 4, 2048)
    assert config.num_key_value_heads == 2  # grouped-query attention, as in the R1 distills
    assert config._attn_implementation == "eager"
    assert not handle.hf_model.training
    assert handle.tokenizer.is_fast
    assert handle.device == torch.device("cpu") and handle.dtype == torch.float32
    assert "tiny random test model" in handle.source
    assert handle.template.name == "chat"  # the tiny tokenizers carry a ChatML template


def test_tiny_qwen2_has_qkv_bias(qwen):
    attention = qwen.hf_model.model.layers[0].self_attn
    assert attention.q_proj.bias is not None and attention.o_proj.bias is None


def test_think_tags_are_single_tokens(handle):
    for tag in ("<think>", "</think>", "<|im_start|>", "<|im_end|>"):
        assert len(handle.encode(tag)) == 1
    ids = handle.encode("so 47.\n</think>\n\nThe answer")
    assert handle.tokenizer.convert_tokens_to_ids("</think>") in ids


def test_offsets_map_tokens_to_text(handle):
    text = "Wait, 12 + 35 = 47.</think>"
    encoding = handle.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    pieces = [text[start:end] for start, end in encoding["offset_mapping"]]
    assert "".join(pieces) == text


def test_eos_ids_include_every_end_marker(handle):
    vocab = handle.tokenizer.get_vocab()
    assert {vocab["<|im_end|>"], vocab["<|endoftext|>"]} <= handle.eos_token_ids


def test_dtype_and_device_choices():
    assert resolve_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert resolve_dtype(None, torch.device("cpu")) is torch.float32
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        resolve_dtype("int3", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            load_model("tiny-qwen2", device="cuda:1")
    half = load("tiny-llama", dtype="bfloat16")
    assert next(half.hf_model.parameters()).dtype is torch.bfloat16


# --- templates ----------------------------------------------------------------------------------


def test_paper_template_is_exactly_the_published_prompt(qwen):
    template = load("tiny-qwen2", template="paper").template
    expected = (
        "Solve this math problem step by step. You MUST put your final answer in \\boxed{}. "
        f"Problem: {PROBLEM} Solution: \n<think>\n{PREFIX}"
    )
    assert template.render(PROBLEM, PREFIX) == expected
    assert template.render(PROBLEM) == expected[: -len(PREFIX)]
    assert template.forced_answer_suffix == "\n</think>\n\nTherefore, the final answers is \\boxed{"


def test_r1_distill_template_matches_the_deepseek_chat_format(qwen):
    template = load("tiny-qwen2", template="r1-distill").template
    assert template.render(PROBLEM, PREFIX) == (
        f"<｜begin▁of▁sentence｜><｜User｜>{PROBLEM}\nPlease reason step by step, and put your final answer "
        f"within \\boxed{{}}.<｜Assistant｜><think>\n{PREFIX}"
    )
    assert template.forced_answer_suffix == "\n</think>\n\nTherefore, the final answer is \\boxed{"


@pytest.mark.parametrize("name", ["chat", "qwen3"])
def test_chat_templates_follow_the_tokenizer(handle, name):
    template = chat_template(handle.tokenizer, name)
    user = PROBLEM + "\nPlease reason step by step, and put your final answer within \\boxed{}."
    rendered = handle.tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    assert template.render(PROBLEM, PREFIX) == rendered + "<think>\n" + PREFIX


def test_chat_template_does_not_open_thinking_twice():
    class R1LikeTokenizer:
        chat_template = "r1"

        def apply_chat_template(self, messages, **_):
            return f"<s><｜User｜>{messages[0]['content']}<｜Assistant｜><think>\n"

    template = chat_template(R1LikeTokenizer(), "qwen3")
    assert template.render("p").endswith("<｜Assistant｜><think>\n")
    assert template.render("p").count("<think>") == 1


def test_automatic_template_choice(qwen):
    assert auto_template_name("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B") == "r1-distill"
    assert auto_template_name("/models/DeepSeek-R1-Distill-Llama-8B") == "r1-distill"
    assert auto_template_name("Qwen/Qwen3-8B") == "qwen3"
    assert auto_template_name("tiny-qwen2", qwen.hf_model.config, qwen.tokenizer) == "chat"
    assert auto_template_name("some-base-model") == "paper"
    custom = PromptTemplate("custom", "Q: ", "\nA: <think>\n")
    assert load("tiny-qwen2", template=custom).template is custom


@pytest.mark.parametrize("name", ["paper", "r1-distill", "chat", "qwen3"])
def test_prompts_carry_exactly_one_bos(name):
    llama = load("tiny-llama", template=name)  # its tokenizer adds a BOS, like R1-Distill-Llama
    bos = llama.tokenizer.convert_tokens_to_ids("<｜begin▁of▁sentence｜>")
    ids = llama.encode_prompt(PROBLEM, PREFIX)
    assert ids[0] == bos and ids.count(bos) == 1


@pytest.mark.parametrize("name", ["paper", "r1-distill", "chat"])
def test_thinking_prefix_survives_byte_exact(name):
    qwen = load("tiny-qwen2", template=name)
    prefix = "  Odd   spacing,\ttabs,\n\nand é accents \\frac{1}{2} "
    text = qwen.template.render(PROBLEM, prefix)
    assert text.endswith("<think>\n" + prefix)
    assert qwen.decode(qwen.encode_prompt(PROBLEM, prefix)) == text


# --- the TransformerLens bridge ---------------------------------------------------------------


@pytest.mark.parametrize("name", TINY)
def test_bridge_logits_equal_hf_logits(name):
    fresh = load_on_test_device(name)
    ids = torch.tensor([fresh.encode_prompt(PROBLEM, PREFIX)], device=fresh.device)
    with torch.no_grad():
        reference = fresh.hf_model(ids).logits
        bridge = fresh.bridge()
        bridged = bridge(ids)
        after_boot = fresh.hf_model(ids).logits
    assert fresh.bridge() is bridge  # booted once, then cached
    assert (bridged - reference).abs().max().item() < tolerance(1e-4)
    assert (after_boot - reference).abs().max().item() < tolerance(1e-4)  # hf_model stays usable
    _, cache = bridge.run_with_cache(ids, names_filter=lambda hook: hook.endswith("attn.hook_pattern"))
    assert cache["blocks.1.attn.hook_pattern"].shape == (1, 4, ids.shape[1], ids.shape[1])


# --- sampling -----------------------------------------------------------------------------------


def test_same_seed_same_samples(qwen):
    prompt = qwen.encode_prompt(PROBLEM)
    state = torch.random.get_rng_state()
    first = sample(qwen, prompt, max_new_tokens=12, seed=7, num_samples=3)
    assert torch.equal(torch.random.get_rng_state(), state), "the global RNG is left alone"
    assert sample(qwen, prompt, max_new_tokens=12, seed=7, num_samples=3) == first
    assert sample(qwen, prompt, max_new_tokens=12, seed=8, num_samples=3) != first
    assert len({s.token_ids for s in first}) == 3
    assert all(s.finish_reason == "length" and len(s.token_ids) == 12 for s in first)
    assert all(s.text == qwen.decode(list(s.token_ids)) for s in first)


def test_stop_strings_cut_the_text_after_the_stop(qwen):
    prompt = qwen.encode_prompt(PROBLEM)
    free = sample(qwen, prompt, max_new_tokens=20, seed=3)[0]
    stop = free.text[6:9]
    stopped = sample(qwen, prompt, max_new_tokens=20, seed=3, stop_strings=[stop])[0]
    cut = free.text.index(stop) + len(stop)
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[:cut]
    assert qwen.decode(list(stopped.token_ids)).startswith(stopped.text)
    assert stopped.token_ids == free.token_ids[: len(stopped.token_ids)]


def test_end_tokens_end_a_sample(qwen):
    im_end, pad = qwen.tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|pad|>"])
    words = qwen.encode(" the answer")
    finished = _finish(qwen, [*words, im_end, pad, pad], ())
    assert finished.finish_reason == "eos" and finished.token_ids == tuple(words)
    assert finished.text == " the answer"


# --- sources that fail ----------------------------------------------------------------------------


def test_unreachable_hub_fails_fast_and_says_what_to_do(monkeypatch):
    # A host that can never resolve (RFC 6761), so the test behaves the same with or without a network.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_module, "_probe_target", lambda: ("hub.anchors-test.invalid", 443))
    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as raised:
        load("anchors-test/DeepSeek-R1-Distill-Qwen-0B-missing")
    elapsed = time.perf_counter() - started
    message = str(raised.value)
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert "no model hub was reachable" in message and "--model /path/to/folder" in message
    assert "hub.anchors-test.invalid" in message  # the underlying error, in one line


def test_offline_mode_fails_immediately(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set"):
        load("anchors-test/missing-model")


def test_bad_paths_fail_clearly(tmp_path):
    with pytest.raises(ModelLoadError, match="not a file, a folder"):
        load(str(tmp_path / "no" / "such" / "folder"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        load(tmp_path)
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        load(tmp_path / "missing.gguf")


def test_available_models_lists_aliases_and_tiny_models():
    build_tiny_model("tiny-qwen2")
    rows = {row.name: row for row in available_models()}
    assert rows["smollm2-135m"].kind == "bundled"
    assert rows["tiny-qwen2"].status == "built" and rows["tiny-qwen2"].size_bytes > 0
    assert rows["tiny-llama"].kind == "tiny"
