"""Prompt templates: the exact text a model sees before (and including) the thinking prefix.

A template is plain data: the text before the problem, the text after it (ending with the
opening `<think>\\n`), and how to tokenise the result. Chat templates from a tokenizer are
rendered once with a placeholder problem and split there, so rendering later needs no
tokenizer and the template can be stored with results.

Tokenise a rendered prompt with `add_special_tokens=template.add_special_tokens`
(`ModelHandle.encode_prompt` does): templates that write the BOS themselves set it to False,
so the model never sees two BOS tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# Published forced-answer suffix, typo ("answers") included: paper mode reproduces it.
PAPER_FORCED_ANSWER_SUFFIX = "\n</think>\n\nTherefore, the final answers is \\boxed{"
FORCED_ANSWER_SUFFIX = "\n</think>\n\nTherefore, the final answer is \\boxed{"
# DeepSeek's recommended instruction for math problems, appended to the user message.
R1_USER_INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
R1_BOS = "<｜begin▁of▁sentence｜>"
TEMPLATE_NAMES = ("paper", "r1-distill", "qwen3", "chat")

_PLACEHOLDER = "\x00ANCHORS-PROBLEM\x00"


@dataclass(frozen=True)
class PromptTemplate:
    """How a problem and a partial chain of thought become the model's input text.

    `render(problem, prefix)` = before_problem + problem + after_problem + prefix, where
    `after_problem` ends with `think_open + "\\n"` and `prefix` is appended byte-exact.
    """

    name: str
    before_problem: str
    after_problem: str
    add_special_tokens: bool = False
    think_open: str = THINK_OPEN
    think_close: str = THINK_CLOSE
    forced_answer_suffix: str = FORCED_ANSWER_SUFFIX

    def render(self, problem: str, thinking_prefix: str = "") -> str:
        """The exact text up to and including `thinking_prefix` (reasoning already opened)."""
        return f"{self.before_problem}{problem}{self.after_problem}{thinking_prefix}"

    def render_forced_answer(self, problem: str, thinking_prefix: str = "") -> str:
        """The prompt that closes the reasoning after `thinking_prefix` and asks for the boxed answer."""
        return self.render(problem, thinking_prefix) + self.forced_answer_suffix


def paper_template() -> PromptTemplate:
    """Raw completion prompt of Thought Anchors (methods.md §1); the tokenizer adds its own BOS."""
    return PromptTemplate(
        name="paper",
        before_problem="Solve this math problem step by step. You MUST put your final answer in \\boxed{}. Problem: ",
        after_problem=" Solution: \n<think>\n",
        add_special_tokens=True,
        forced_answer_suffix=PAPER_FORCED_ANSWER_SUFFIX,
    )


def r1_distill_template() -> PromptTemplate:
    """DeepSeek-R1-Distill chat format, as its tokenizer's chat template writes it (BOS included)."""
    return PromptTemplate(
        name="r1-distill",
        before_problem=f"{R1_BOS}<｜User｜>",
        after_problem=f"{R1_USER_INSTRUCTION}<｜Assistant｜><think>\n",
    )


def chat_template(tokenizer: Any, name: str = "chat") -> PromptTemplate:
    """The tokenizer's own chat template with a generation prompt, then `<think>\\n` if absent.

    `name="qwen3"` also passes `enable_thinking=True` (Qwen3 templates close an empty
    reasoning block when it is False).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"template {name!r} needs a tokenizer with a chat template; this one has none")
    extra = {"enable_thinking": True} if name == "qwen3" else {}
    messages = [{"role": "user", "content": _PLACEHOLDER + R1_USER_INSTRUCTION}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
    before, found, after = text.partition(_PLACEHOLDER)
    if not found:
        raise ValueError(f"the chat template of this tokenizer does not copy the user message verbatim ({name!r})")
    return PromptTemplate(name=name, before_problem=before, after_problem=_open_thinking(after))


def _open_thinking(text: str) -> str:
    # Some templates (R1-distill, recent Qwen3) already end with the opening tag.
    if text.endswith(THINK_OPEN + "\n"):
        return text
    if text.endswith(THINK_OPEN):
        return text + "\n"
    return text + THINK_OPEN + "\n"


def auto_template_name(model_name: str, config: Any = None, tokenizer: Any = None) -> str:
    """Pick a template from the model's name/config: R1 distills, Qwen3, any chat model, else paper."""
    names = f"{model_name} {getattr(config, '_name_or_path', '') or ''}".lower()
    model_type = str(getattr(config, "model_type", "") or "").lower()
    if "r1-distill" in names or "r1_distill" in names:
        return "r1-distill"
    if "qwen3" in names or model_type.startswith("qwen3"):
        return "qwen3"
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return "chat"
    return "paper"


def make_template(
    template: str | PromptTemplate | None, model_name: str, config: Any = None, tokenizer: Any = None
) -> PromptTemplate:
    """Resolve `template` (a name, a ready PromptTemplate, or None for the automatic choice)."""
    if isinstance(template, PromptTemplate):
        return template
    name = template or auto_template_name(model_name, config, tokenizer)
    if name == "paper":
        return paper_template()
    if name == "r1-distill":
        return r1_distill_template()
    if name in ("qwen3", "chat"):
        return chat_template(tokenizer, name)
    raise ValueError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATE_NAMES)}")
