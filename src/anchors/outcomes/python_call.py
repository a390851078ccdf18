"""The python outcome: a user function `module:function` decides each rollout, in a sandboxed child process.

The function is called as `function(answer, context)`: `answer` is the answer part of the rollout (after
`</think>`; the whole text when it has none), `context` a dict with `text` (the whole text), `gold`, `trace_id`,
`problem` and `metadata` (the trace's). It returns one of:
* True / False: key "pass" / "fail", correct = the value (unit tests for code);
* a string: the key; correct = key == gold when there is a gold;
* a dict with "key" and/or "correct" (and an optional "detail");
* None: no answer.

Every call runs in a fresh child interpreter (`python -I`, so one rollout's code cannot leave state for the
next), killed with its whole process group after `timeout_s` of wall-clock time: a function that hangs gives
status `timeout`, one that raises (or dies) gives `error`, and the run goes on. The sandbox, exactly:
* environment: empty except PATH, HOME and TMPDIR (a fresh temporary folder, also the working directory), a
  UTF-8 locale and one-thread BLAS settings, plus the variables named in `PythonConfig.env`; so API keys and
  tokens in the parent's environment are not visible. `-I` ignores PYTHON* variables and the user site.
* network: on Linux the child first moves into a new user + network namespace (unprivileged; only a loopback,
  which is down), which cuts every connection, also from processes it starts or from C code. Then, in any case,
  an audit hook makes creating any non-Unix socket, and name lookups, raise PermissionError. Where the kernel
  refuses the namespace (many containers, macOS) only that hook applies, which C extensions calling the socket
  API themselves, ctypes or a spawned `curl` get past; `network_isolation` says which applied, and
  `require_network_isolation=True` makes that case an error. Inside the namespace files show as owned by
  "nobody": `network_namespace=False` skips it for a grader that checks ownership.
* limits (setrlimit, where available): address space `memory_mb`, CPU time timeout + 1 s, files written
  64 MiB each, no core files.
* NOT sandboxed: the file system (the child can read and write whatever the user can; only its working
  directory is a temporary one), other system calls, and the number of processes it starts (they are killed
  with it, unless they leave its process group).
Cost: one interpreter start per call (tens of milliseconds; see docs/outcomes.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchors.errors import InputError
from anchors.outcomes.base import WORDS_LEAD, Outcome, OutcomeResult, OutcomeStatus, answer_part, trace_context

if TYPE_CHECKING:
    from anchors.traces.records import Trace

log = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("sandbox_child.py")
FILE_LIMIT_BYTES = 64 * 1024 * 1024
PROBE_TIMEOUT_S = 60.0
_STDERR_TAIL = 1500


@dataclass(frozen=True)
class PythonConfig:
    """module: a dotted module name (importable from the working directory or `paths`) or a `.py` file;
    function: its name. timeout_s: wall-clock limit of one call, interpreter start included. memory_mb:
    address-space limit (0: none). env: names of environment variables passed through to the child."""

    module: str
    function: str
    timeout_s: float = 10.0
    memory_mb: int = 2048
    paths: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    network_namespace: bool = True  # False: skip the namespace (inside it, files show as owned by "nobody")
    require_network_isolation: bool = False
    think_close: str = "</think>"
    answer_lead: str = WORDS_LEAD

    def __post_init__(self) -> None:
        if not self.module or not self.function:
            raise InputError(f"the python outcome needs MODULE:FUNCTION; got {self.module!r}:{self.function!r}")
        if not self.timeout_s > 0:
            raise InputError(f"the python outcome's timeout must be positive; got {self.timeout_s!r}")


class PythonOutcome(Outcome):
    """See the module docstring."""

    forced_tokens = 256  # graders mostly read code

    def __init__(self, config: PythonConfig) -> None:
        self.config = config
        self.spec = f"python:{config.module}:{config.function}"
        self.answer_lead = config.answer_lead
        self.network_isolation: str | None = None  # "namespace" or "sockets", once a child has run
        self._warned = False

    def grade(self, text: str, gold: str | None = None, *, trace: Trace | None = None) -> OutcomeResult:
        gold = (gold.strip() or None) if gold is not None else None
        context = {**trace_context(trace), "text": text, "gold": gold}
        reply, problem = self._run({"answer": answer_part(text, self.config.think_close), "context": context},
                                   self.config.timeout_s)
        if problem is not None:
            return problem
        if not reply.get("ok"):
            return OutcomeResult(None, None, OutcomeStatus.ERROR, detail=str(reply.get("error", "the function failed")))
        return interpret(reply.get("value"), gold)

    def check(self) -> None:
        """Import the module and find the function in a child (nothing is called); InputError if that fails."""
        if self.config.module.endswith(".py") and not Path(self.config.module).is_file():
            raise InputError(f"python outcome: no such file {self.config.module!r}")
        reply, problem = self._run({"probe": True, "answer": "", "context": {}}, max(self.config.timeout_s, PROBE_TIMEOUT_S))
        if problem is not None or not reply.get("ok"):
            why = problem.detail if problem is not None else reply.get("error")
            raise InputError(f"python outcome {self.spec}: cannot load the function ({why})")

    def _run(self, payload: dict[str, Any], timeout: float) -> tuple[dict[str, Any], OutcomeResult | None]:
        """(the child's reply, None) or ({}, a timeout/error result)."""
        with tempfile.TemporaryDirectory(prefix="anchors-outcome-", ignore_cleanup_errors=True) as scratch:
            request = {**payload, **self._request_base()}
            stderr_path = Path(scratch) / ".stderr"
            command = [sys.executable, "-I", str(CHILD)]
            with stderr_path.open("wb") as stderr, subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=scratch,
                env=self._child_env(scratch), start_new_session=True,
            ) as proc:  # fmt: skip
                try:
                    out: bytes | None = proc.communicate(json.dumps(request).encode("utf-8"), timeout=timeout)[0]
                except subprocess.TimeoutExpired:
                    out = None
                finally:
                    _kill_group(proc)  # whatever it started ends with it
            if out is None:
                return {}, OutcomeResult(None, None, OutcomeStatus.TIMEOUT,
                                         detail=f"{self.spec} did not finish within {timeout:g} s")
            reply = _last_json_line(out)
            if reply is None:
                tail = stderr_path.read_bytes()[-_STDERR_TAIL:].decode("utf-8", "replace").strip()
                return {}, OutcomeResult(None, None, OutcomeStatus.ERROR,
                                         detail=f"{self.spec}: the child {_ending(proc.returncode)} without a result"
                                                + (f": {tail}" if tail else ""))
        self._note_isolation(str(reply.get("network")))
        return reply, None

    def _request_base(self) -> dict[str, Any]:
        module = self.config.module
        if module.endswith(".py"):
            module = str(Path(module).resolve())
        paths = [os.getcwd(), *(str(Path(p).resolve()) for p in self.config.paths)]
        return {"module": module, "function": self.config.function, "paths": paths, "limits": self._limits(),
                "namespace": self.config.network_namespace, "require_namespace": self.config.require_network_isolation}

    def _limits(self) -> dict[str, int]:
        limits = {"RLIMIT_CPU": int(self.config.timeout_s) + 1, "RLIMIT_FSIZE": FILE_LIMIT_BYTES, "RLIMIT_CORE": 0}
        if self.config.memory_mb > 0:
            limits["RLIMIT_AS"] = self.config.memory_mb * 1024 * 1024
        return limits

    def _child_env(self, scratch: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8",
               "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env.update({name: os.environ[name] for name in self.config.env if name in os.environ})
        return env

    def _note_isolation(self, isolation: str) -> None:
        self.network_isolation = isolation
        if isolation != "namespace" and self.config.network_namespace and not self._warned:
            self._warned = True
            log.warning("python outcome %s: no network namespace available here; only Python-level sockets are "
                        "blocked in the grading child (see docs/outcomes.md)", self.spec)


def interpret(value: Any, gold: str | None) -> OutcomeResult:
    """The function's return value as a result (see the module docstring)."""
    if value is None:
        return OutcomeResult(None, None, OutcomeStatus.NO_ANSWER)
    if isinstance(value, bool):
        return OutcomeResult("pass" if value else "fail", value, OutcomeStatus.OK)
    if isinstance(value, str):
        key = value.strip()
        if not key:
            return OutcomeResult(None, None, OutcomeStatus.NO_ANSWER)
        return OutcomeResult(key, None if gold is None else key == gold, OutcomeStatus.OK)
    if isinstance(value, dict) and ("key" in value or "correct" in value):
        correct = value.get("correct") if isinstance(value.get("correct"), bool) else None
        key = value["key"].strip() if isinstance(value.get("key"), str) else ""
        if not key and correct is not None:
            key = "pass" if correct else "fail"
        if correct is None and key and gold is not None:
            correct = key == gold
        detail = value.get("detail") if isinstance(value.get("detail"), str) else ""
        return OutcomeResult(key or None, correct, OutcomeStatus.OK if key else OutcomeStatus.NO_ANSWER, detail=detail)
    return OutcomeResult(None, None, OutcomeStatus.ERROR, detail=f"the function returned {value!r}; expected a bool, "
                                                                 "a string, a dict with 'key'/'correct', or None")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _ending(returncode: int) -> str:
    """'exited with 3', or 'was killed by SIGXCPU' (its CPU-time limit), for a message."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with {returncode}"


def _last_json_line(out: bytes) -> dict[str, Any] | None:
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            found = json.loads(line)
            if isinstance(found, dict):
                return found
    return None
