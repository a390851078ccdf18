"""Tiny random test models with the R1-distill architectures and a locally trained tokenizer.

`tiny-qwen2` (Qwen2: qkv bias, grouped-query attention, no BOS, like DeepSeek-R1-Distill-Qwen's
base) and `tiny-llama` (Llama: GQA, a BOS token the tokenizer adds and the chat template writes,
like R1-Distill-Llama). Weights are random from a fixed seed; the byte-level BPE tokenizer is
trained in a second on a corpus generated here, so tests need no download. Both are built once
and cached under cache/models/<name>.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anchors.models.storage import build_atomically, is_complete, model_folder

# Bump when the recipe below changes, so cached copies of the old recipe are rebuilt.
TINY_RECIPE_VERSION = 2
TINY_SEED = 0
TINY_VOCAB_SIZE = 1024

BOS = "<｜begin▁of▁sentence｜>"
END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|pad|>"
# Special tokens (skipped by decode(skip_special_tokens=True)).
END_OF_SENTENCE = "<｜end▁of▁sentence｜>"
SPECIAL_TOKENS = [END_OF_TEXT, IM_START, IM_END, PAD, BOS, END_OF_SENTENCE, "<｜User｜>", "<｜Assistant｜>"]
# Added but not special, as in the R1-distill tokenizers: decoding keeps the reasoning markers.
THINK_TOKENS = ["<think>", "</think>"]

# Qwen2's split: contractions, letter runs, single digits, punctuation runs, newlines, spaces.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

_CHATML = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """One tiny architecture: the HF config class name, its extra fields, and BOS behaviour."""

    name: str
    config_class: str
    adds_bos: bool
    extra_config: tuple[tuple[str, Any], ...] = ()


TINY_SPECS: dict[str, TinySpec] = {
    "tiny-qwen2": TinySpec("tiny-qwen2", "Qwen2Config", adds_bos=False),
    "tiny-llama": TinySpec("tiny-llama", "LlamaConfig", adds_bos=True, extra_config=(("attention_bias", False),)),
}
_ARCH_ALIASES = {"qwen2": "tiny-qwen2", "llama": "tiny-llama"}


def tiny_model_names() -> list[str]:
    return list(TINY_SPECS)


def resolve_tiny_name(arch: str) -> str | None:
    """'qwen2' / 'tiny-qwen2' → 'tiny-qwen2'; None when `arch` is not a tiny model."""
    key = arch.lower()
    return key if key in TINY_SPECS else _ARCH_ALIASES.get(key)


def tiny_record(name: str) -> dict[str, Any]:
    return {"kind": "tiny", "name": name, "recipe": TINY_RECIPE_VERSION, "seed": TINY_SEED}


def build_tiny_model(arch: str, path: str | Path | None = None) -> Path:
    """Build (or reuse) the tiny model `arch` ('tiny-qwen2', 'tiny-llama', 'qwen2', 'llama').

    With `path`, write it there instead of cache/models/<name> (rebuilt when absent or from an
    older recipe). Returns the folder, loadable with `load_model(folder)`.
    """
    name = resolve_tiny_name(arch)
    if name is None:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {tiny_model_names()}")
    dest = Path(path) if path is not None else model_folder(name)
    record = tiny_record(name)
    if is_complete(dest, record):
        return dest
    return build_atomically(dest, lambda tmp: _write_tiny_model(TINY_SPECS[name], tmp), record)


def _write_tiny_model(spec: TinySpec, folder: Path) -> None:
    import torch
    import transformers

    tokenizer = _make_tokenizer(spec)
    config = _make_config(spec, tokenizer)
    # Fixed seed: the same random weights on every machine and every build.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = transformers.AutoModelForCausalLM.from_config(config)
    model.generation_config = _make_generation_config(tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _make_config(spec: TinySpec, tokenizer: Any) -> Any:
    import transformers

    config_class = getattr(transformers, spec.config_class)
    return config_class(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **dict(spec.extra_config),
    )


def _make_generation_config(tokenizer: Any) -> Any:
    import transformers

    # Several end tokens, as real chat models have (<|im_end|> ends a turn, <|endoftext|> a document).
    ends = [tokenizer.convert_tokens_to_ids(token) for token in (IM_END, END_OF_TEXT, END_OF_SENTENCE)]
    return transformers.GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=ends, pad_token_id=tokenizer.pad_token_id
    )


def _make_tokenizer(spec: TinySpec) -> Any:
    from transformers import PreTrainedTokenizerFast

    backend = _train_byte_level_bpe()
    _set_bos_behaviour(backend, spec.adds_bos)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS if spec.adds_bos else None,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,
        chat_template=("{{ bos_token }}" + _CHATML) if spec.adds_bos else _CHATML,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )


def _train_byte_level_bpe() -> Any:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    # Qwen2's pre-tokenisation (one digit per token, NFC): transformers 5 rebuilds a qwen2
    # tokenizer with exactly this pipeline on load, so training with it keeps the saved and the
    # loaded tokenizer identical.
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(training_corpus(), trainer=trainer)
    backend.add_tokens([AddedToken(token, special=False, normalized=False) for token in THINK_TOKENS])
    return backend


def _set_bos_behaviour(backend: Any, adds_bos: bool) -> None:
    from tokenizers import processors

    if adds_bos:  # like R1-Distill-Llama: every encoding starts with the BOS token
        bos_id = backend.token_to_id(BOS)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
        )
    else:  # like Qwen2: no BOS; keep offsets untrimmed so they cover every character
        backend.post_processor = processors.ByteLevel(trim_offsets=False)


# --- training corpus: reasoning-flavoured English, digits, arithmetic and LaTeX --------------

_OPENERS = ["Okay, so", "Let me", "First,", "Wait,", "Hmm,", "Now", "So", "Therefore,", "Alternatively,", "Then"]
_VERBS = ["compute", "check", "add", "subtract", "multiply", "divide", "verify", "simplify", "consider", "count"]
_NOUNS = ["the sum", "the product", "the remainder", "the answer", "the number", "each term", "the fraction",
          "the total", "both sides", "the equation", "the base", "the digits"]
_CLOSERS = ["again.", "carefully.", "step by step.", "first.", "to be sure.", "once more.", "here."]
# A broad word bank so BPE finds ~1k merges (a narrow corpus stops merging early).
_WORDS = """
a about above after again all almost also always among an and another answer any are area as at average
back base be because been before being below between both but by calculate can case cases certain change
check choose circle clearly coefficient common compare complete condition consider constant contains
correct could count decimal define denominator derivative determine did difference different digit digits
divide divisible division does double down each easy either else end equal equals equation even every
exactly example expand expression factor factors false final find first five following for four fraction
from function gives given good greater half has have hence here how however hundred if imagine in
increase integer integers interesting into is it its just know largest last least left length less let
like likely line list look make many mathematical maximum maybe mean means might minimum minus missing
mistake modulo more most multiply must need negative next no not note nothing now number numerator odd
of off on once one only or order other our out over pair part perhaps plus point polynomial positive
possible prime probability problem product proof prove question quickly radius rather ratio real really
reason remainder result right root same second see sequence set seven should side sides simple simplify
since six small smallest so solution solve some something sqrt square squares start step steps still
subtract sum suppose sure take ten term terms than that the their them then there therefore these they
thing think third this those three through thus times to together total triangle true try twice two
under unit until up us use using value values variable verify wait want was way we well were what when
where whether which while whole why will with without work works would write wrong yes yet zero
""".split()


def training_corpus(n_lines: int = 6000) -> list[str]:
    """Deterministic text for training the tiny tokenizer (same lines on every call)."""
    rng = random.Random(TINY_SEED)
    makers = [_reasoning_line, _arithmetic_line, _latex_line, _chat_line, _word_line, _word_line]
    return [makers[i % len(makers)](rng) for i in range(n_lines)]


def _reasoning_line(rng: random.Random) -> str:
    return f"{rng.choice(_OPENERS)} I need to {rng.choice(_VERBS)} {rng.choice(_NOUNS)} {rng.choice(_CLOSERS)}"


def _word_line(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(6, 14))
    return " ".join(words).capitalize() + rng.choice([".", "?", ",", "!", ":"])


def _arithmetic_line(rng: random.Random) -> str:
    a, b = rng.randint(0, 999), rng.randint(1, 99)
    op, value = rng.choice([("+", a + b), ("-", a - b), ("*", a * b), ("/", round(a / b, 2))])
    return f"{a} {op} {b} = {value}, so the result is {value}."


def _latex_line(rng: random.Random) -> str:
    a, b, c = rng.randint(1, 60), rng.randint(1, 60), rng.randint(0, 16)
    return rng.choice([
        f"The answer is \\boxed{{{a + b}}}.",
        f"We get \\frac{{{a}}}{{{b}}} = \\frac{{{a * 2}}}{{{b * 2}}}, and $x^{c} + {a}$.",
        f"Therefore, the final answer is \\boxed{{\\frac{{{a}}}{{{b}}}}}.",
        f"In base {c + 2}, the number {a}{b} has {c} digits; $\\sqrt{{{a * a}}} = {a}$.",
    ])


def _chat_line(rng: random.Random) -> str:
    a, b = rng.randint(1, 99), rng.randint(1, 99)
    problem = f"What is {a} + {b}?"
    answer = f"<think>\n{a} + {b} = {a + b}.\n</think>\n\n\\boxed{{{a + b}}}"
    return f"{IM_START}user\n{problem}{IM_END}\n{IM_START}assistant\n{answer}"
