"""On-disk trace records: one reasoning trace per record, validated, versioned."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

# Trace ids name result folders (`DIR/<trace id>/`), so they must be safe path components.
TRACE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"


class SamplingSettings(BaseModel):
    """How a trace (or a rollout) was sampled; None means 'not recorded'."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_new_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None


class Trace(BaseModel):
    """A reasoning trace: the exact prompt, the thinking text and the answer text after it.

    `prompt + thinking + think_close + answer_text` is what the model saw and wrote; `thinking` is kept
    byte-exact (sentence spans index into it). `prompt` may be None when the exact prompt is unknown:
    the model's template then renders one from `problem`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    id: str = Field(pattern=TRACE_ID_PATTERN)
    problem: str = Field(min_length=1)
    prompt: str | None = None
    thinking: str
    answer_text: str
    gold_answer: str | None = None
    model: str | None = None
    template: str | None = None
    sampling: SamplingSettings | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(f"schema_version {value} is newer than this anchors supports ({SCHEMA_VERSION}); upgrade anchors")
        if value < 1:
            raise ValueError("schema_version must be >= 1")
        return value

    @field_validator("thinking")
    @classmethod
    def _thinking_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the thinking text is empty; a trace needs reasoning sentences to analyse")
        return value

    @field_validator("answer_text")
    @classmethod
    def _answer_not_blank(cls, value: str) -> str:
        # Every method here asks what causes the final answer: a trace that never answered can't be scored.
        if not value.strip():
            raise ValueError("the answer text is empty; the trace has no final answer after its thinking")
        return value

    def to_json_line(self) -> str:
        """One JSONL line (no trailing newline), unicode kept as is."""
        return self.model_dump_json(exclude_none=True)


class Problem(BaseModel):
    """A problem to generate traces for (`anchors generate --problems FILE.jsonl`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=TRACE_ID_PATTERN)
    problem: str = Field(min_length=1)
    gold_answer: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
