"""One problem folder of the Thought Anchors layout: every file name and field the authors use, read and checked.

A damaged file (missing, empty, truncated, not JSON, a field of the wrong type) raises `DamagedFile`, which names
the file and what is wrong; callers decide whether the file is required (the trace is skipped) or optional (it is
left out with a note, `ProblemFolder.optional`). Nothing outside this package knows the authors' file names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from anchors.errors import InputError
from anchors.traces.records import Trace

PROBLEM, BASE_SOLUTION, CHUNKS_LABELED = "problem.json", "base_solution.json", "chunks_labeled.json"
CHUNKS_RESAMPLED = "chunks_resampled.json"
STEP_IMPORTANCE = {"resampling": "step_importance.json", "suppression": "step_importance_supp.json"}
SOLUTIONS = "solutions.json"  # chunk_<i>/solutions.json: the rollouts resampled from sentence i on
FORCED_TREE_SUFFIX = "_forced_answer"  # <group>_forced_answer/<problem>/chunk_<i>/solutions.json: forced answers
MARKER_FILES = (PROBLEM, BASE_SOLUTION, CHUNKS_LABELED)  # any one of them makes a folder a problem folder
THINK_CLOSE = "</think>"
PAPER_TEMPLATE = "paper"
MAX_JSON_BYTES = 2**30  # a released chunks_resampled.json is ~2 MB; anything near 1 GiB is not this layout
T = TypeVar("T")


class DamagedFile(InputError):
    """A file of a problem folder that cannot be used: `path` and, in words, what is wrong with it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ProblemRecord(_Record):
    problem: str
    gt_answer: str | int | float | None = None
    level: Any = None
    type: Any = None
    nickname: str | None = None

    @field_validator("problem")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty")
        return value


class BaseSolutionRecord(_Record):
    solution: str
    prompt: str | None = None
    answer: str | int | float | None = None
    is_correct: bool | None = None

    @field_validator("solution")
    @classmethod
    def _closed_thinking(cls, value: str) -> str:
        thinking, closed, answer = value.partition(THINK_CLOSE)
        if not closed:
            raise ValueError(f"no {THINK_CLOSE!r}: the thinking must be closed before the answer")
        if not thinking.strip():
            raise ValueError(f"nothing before {THINK_CLOSE!r}: the trace has no thinking")
        if not answer.strip():
            raise ValueError(f"nothing after {THINK_CLOSE!r}: the trace has no final answer")
        return value


# The per-sentence metrics the authors store in chunks_labeled.json (methods.md §4 names; null where undefined).
CHUNK_METRICS = ("accuracy", "resampling_importance_accuracy", "resampling_importance_kl",
                 "counterfactual_importance_accuracy", "counterfactual_importance_kl", "forced_importance_accuracy",
                 "forced_importance_kl", "different_trajectories_fraction", "overdeterminedness")
_Metric = Annotated[float | None, Field(default=None, strict=True)]


class ChunkRecord(_Record):
    """One sentence of chunks_labeled.json: text, index, tags, dependencies and the authors' metrics."""

    chunk: str
    chunk_idx: StrictInt = Field(ge=0)
    function_tags: list[str] = []
    depends_on: list[int | str] = []
    accuracy: _Metric
    resampling_importance_accuracy: _Metric
    resampling_importance_kl: _Metric
    counterfactual_importance_accuracy: _Metric
    counterfactual_importance_kl: _Metric
    forced_importance_accuracy: _Metric
    forced_importance_kl: _Metric
    different_trajectories_fraction: _Metric
    overdeterminedness: _Metric

    def metrics(self) -> dict[str, float]:
        """The stored metrics this chunk has a value for (a null or absent field is left out)."""
        return {name: value for name in CHUNK_METRICS if (value := getattr(self, name)) is not None}


class SolutionRecord(_Record):
    """One rollout of chunk_<i>/solutions.json (unknown fields are kept)."""

    chunk_removed: str | None = None
    prefix_without_chunk: str | None = None
    chunk_resampled: str | None = None
    rollout: str | None = None
    full_cot: str | None = None
    answer: str | None = None
    is_correct: bool | None = None
    error: str | None = None


class TargetImpact(_Record):
    target_chunk_idx: StrictInt
    importance_score: float | None = None


class StepImportanceRecord(_Record):
    source_chunk_idx: StrictInt
    target_impacts: list[TargetImpact] = []


class ProblemFolder:
    """`path` below `root`: its trace id, and each file read (JSON parsed and checked) when first asked for.

    `optional(read)` turns a `DamagedFile` into None and records it in `damaged`, for files a command can do
    without; a missing optional file is None without a record (absent is normal, damaged is not) unless
    `missing_ok` is False (e.g. one of the two files that make up a trace).
    """

    def __init__(self, path: str | Path, root: str | Path) -> None:
        self.path, self.root = Path(path), Path(root)
        self.trace_id = trace_id_for(self.path, self.root)
        self.damaged: list[DamagedFile] = []
        self._cache: dict[str, Any] = {}

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def has_chunks(self) -> bool:
        return self.has(CHUNKS_LABELED)

    def has_resampled(self) -> bool:
        return self.has(CHUNKS_RESAMPLED)

    def optional(self, read: Callable[[], T], *, missing_ok: bool = True) -> T | None:
        try:
            return read()
        except DamagedFile as damage:
            if damage.reason != _MISSING or not missing_ok:
                self.damaged.append(damage)
            return None

    # --- the files ---------------------------------------------------------------------------------

    def problem(self) -> ProblemRecord:
        return self._record(PROBLEM, ProblemRecord)

    def base_solution(self) -> BaseSolutionRecord:
        return self._record(BASE_SOLUTION, BaseSolutionRecord)

    def chunks(self) -> list[ChunkRecord]:
        """chunks_labeled.json sorted by chunk_idx, checked to number the sentences 0..n-1."""
        if CHUNKS_LABELED not in self._cache:
            path = self.path / CHUNKS_LABELED
            chunks = sorted(_validate_list(path, _read(path), ChunkRecord, nonempty=True), key=lambda c: c.chunk_idx)
            if [c.chunk_idx for c in chunks] != list(range(len(chunks))):
                raise DamagedFile(path, f"chunk_idx values must number the sentences 0..{len(chunks) - 1} once each")
            self._cache[CHUNKS_LABELED] = chunks
        return self._cache[CHUNKS_LABELED]

    def resampled(self) -> dict[int, list[str]]:
        """chunks_resampled.json: {sentence index: first sentences of the rollouts resampled from it}."""
        path = self.path / CHUNKS_RESAMPLED
        data = _read(path)
        if not isinstance(data, dict):
            raise DamagedFile(path, f"expected an object {{chunk index: [sentences]}}, found {_kind(data)}")
        out = {}
        for key, texts in data.items():
            if not str(key).isdigit() or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise DamagedFile(path, f"entry {key!r}: expected a chunk index mapping to a list of strings")
            out[int(key)] = texts
        return out

    def step_importance(self, kind: str) -> list[StepImportanceRecord]:
        """The authors' sentence→sentence matrix of `kind` ('resampling' or 'suppression')."""
        path = self.path / STEP_IMPORTANCE[kind]
        return _validate_list(path, _read(path), StepImportanceRecord)

    def rollout_chunks(self) -> list[int]:
        """Sentence indices i with a chunk_<i>/solutions.json (the authors' full rollout layout), sorted."""
        found = (re.fullmatch(r"chunk_(\d+)", p.parent.name) for p in self.path.glob(f"chunk_*/{SOLUTIONS}"))
        return sorted(int(m.group(1)) for m in found if m)

    def solutions(self, index: int, *, forced: bool = False) -> list[SolutionRecord] | None:
        """The rollouts (or, `forced`, the forced answers) of sentence `index`; None when there is no such file."""
        folder = self.forced_folder() if forced else self.path
        path = folder / f"chunk_{index}" / SOLUTIONS
        if not path.is_file():
            return None
        return _validate_list(path, _read(path), SolutionRecord)

    def forced_folder(self) -> Path:
        """The sibling tree the authors keep forced answers in: <group>_forced_answer/<problem>/."""
        return self.path.parent.with_name(self.path.parent.name + FORCED_TREE_SUFFIX) / self.path.name

    def has_forced(self) -> bool:
        return self.forced_folder().is_dir()

    # --- derived ------------------------------------------------------------------------------------

    def has_trace(self) -> bool:
        """Whether the folder holds (at least part of) a trace: problem.json or base_solution.json."""
        return self.has(PROBLEM) or self.has(BASE_SOLUTION)

    def trace(self) -> Trace:
        """The trace this folder holds (needs problem.json and base_solution.json)."""
        problem, base = self.problem(), self.base_solution()
        thinking, _, answer_text = base.solution.partition(THINK_CLOSE)
        metadata = {"source": "thought-anchors", "source_dir": str(self.path), "answer": base.answer,
                    "is_correct": base.is_correct,
                    **{k: v for k, v in (("level", problem.level), ("type", problem.type),
                                         ("nickname", problem.nickname)) if v is not None}}
        return Trace(id=self.trace_id, problem=problem.problem, prompt=base.prompt, thinking=thinking,
                     answer_text=answer_text, gold_answer=None if problem.gt_answer is None else str(problem.gt_answer),
                     model=self.model_name(), template=PAPER_TEMPLATE, metadata=metadata)

    def model_name(self) -> str | None:
        """The model folder the trace sits in (e.g. deepseek-r1-distill-qwen-14b), if the path names one."""
        return next((part for part in reversed(self.path.parts) if "r1-distill" in part.lower()), None)

    def check_chunks_match(self, sentences: int) -> None:
        """chunks_labeled.json must hold one chunk per sentence the base solution splits into."""
        chunks = self.chunks()
        if len(chunks) != sentences:
            raise DamagedFile(self.path / CHUNKS_LABELED, f"{len(chunks)} chunks, but {BASE_SOLUTION}'s thinking "
                              f"splits into {sentences} sentences (paper mode): the two files disagree")

    def _record(self, name: str, model: type[T]) -> T:
        if name not in self._cache:
            path = self.path / name
            self._cache[name] = _validate(path, _read(path), model)
        return self._cache[name]


_MISSING = "file not found"


def trace_id_for(problem_dir: Path, root: Path) -> str:
    """The folder's path below `root` ('a/b/problem_1' -> 'a--b--problem_1'); its own name if it is the root."""
    relative = problem_dir.relative_to(root).parts or (problem_dir.name,)
    return re.sub(r"[^A-Za-z0-9._-]", "_", "--".join(relative))


def _read(path: Path) -> Any:
    if not path.is_file():
        raise DamagedFile(path, _MISSING)
    try:
        size = path.stat().st_size
        if size == 0:
            raise DamagedFile(path, "empty file")
        if size > MAX_JSON_BYTES:
            raise DamagedFile(path, f"{size / 2**30:.1f} GiB: too large for a file of this layout")
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DamagedFile(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        at_end = exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string")
        end = "truncated" if at_end else "not valid JSON"
        raise DamagedFile(path, f"{end} ({exc.msg}: line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise DamagedFile(path, "JSON nested too deeply to read") from None
    except OSError as exc:
        raise DamagedFile(path, f"cannot read ({exc.strerror or exc})") from None


def _validate(path: Path, data: Any, model: type[T], where: str = "") -> T:
    if not isinstance(data, dict):
        raise DamagedFile(path, f"{where}expected a JSON object, found {_kind(data)}")
    try:
        return model.model_validate(data)  # type: ignore[attr-defined]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(map(str, first["loc"])) or "(record)"
        got = first.get("input")
        shown = "" if isinstance(got, dict) else f" (got {_kind(got)})"
        raise DamagedFile(path, f"{where}field '{field}': {first['msg']}{shown}") from None


def _validate_list(path: Path, data: Any, model: type[T], *, nonempty: bool = False) -> list[T]:
    if not isinstance(data, list):
        raise DamagedFile(path, f"expected a JSON list, found {_kind(data)}")
    if nonempty and not data:
        raise DamagedFile(path, "empty list")
    return [_validate(path, item, model, where=f"item {k}: ") for k, item in enumerate(data)]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
