"""The machinery behind `anchors.traces.answers.grade`: killable symbolic comparison and the result cache.

Symbolic equivalence (math-verify in default mode, sympy's LaTeX parser in paper mode) can take
minutes or never finish on hostile input (`9^{9^{9}}` makes sympy build a 370-million-digit integer
inside C code, where no signal can interrupt it). Both libraries time out with `signal.alarm`, which
only works on the main thread. So the comparison runs in a long-lived child process that is killed
and replaced when a comparison overruns: a hard wall-clock limit that works from any thread.

Why a plain `subprocess` speaking JSON lines rather than `multiprocessing`: a fresh interpreter
(`spawn` semantics, never `fork` of a process that may hold torch threads), no pickling of model
output, and no re-import of the user's `__main__` (a script without an `if __name__ == "__main__"`
guard would otherwise crash or re-run itself). Workers start on first use, never at import.

Both ends of the worker protocol live here because they must change together. The result cache is in
`grade_cache.py`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import IO, Any

from anchors.errors import AnchorsError

log = logging.getLogger(__name__)


class GradeStatus(str, Enum):
    """How grading ended: only `ok` carries a verdict."""

    OK = "ok"
    NO_ANSWER = "no_answer"
    TIMEOUT = "timeout"
    PARSE_ERROR = "parse_error"


# A worker that cannot import math-verify within this long is broken, not slow.
STARTUP_TIMEOUT_S = 120.0
# CPU seconds a comparison may use beyond its wall-clock timeout before the kernel ends the worker
# (only matters when the parent died and cannot kill it any more).
CPU_MARGIN_S = 30.0
# Address-space cap for a worker: a giant power then fails inside the worker instead of
# swapping the machine to death. Override with ANCHORS_GRADER_MEMORY_MB (0 = no cap).
DEFAULT_WORKER_MEMORY_MB = 4096

# ---------------------------------------------------------------------------------------------
# Paper-mode symbolic check: the authors' `get_latex_equivalent`, rewritten from its steps.
# ---------------------------------------------------------------------------------------------

# The authors strip these before sympy's LaTeX parser, in this order (regex -> replacement).
_SYMPY_PREP: tuple[tuple[str, str], ...] = (
    (r"\\dfrac", r"\\frac"),
    (r"\\tfrac", r"\\frac"),
    (r"\\cdot", "*"),
    (r"\\times", "*"),
    (r"\\div", "/"),
    (r"\\left", ""),
    (r"\\right", ""),
    (r"\\textbf", ""),
    (r"\\text", ""),
    (r"\\mathrm", ""),
    (r"\\!", ""),
    (",", ""),
)


def prepare_latex_for_sympy(latex: str) -> str:
    """The authors' clean-up before `parse_latex` (non-greedy `\\boxed{}` unwrap, then `_SYMPY_PREP`)."""
    latex = re.sub(r"\\boxed\{(.*?)\}", r"\1", latex)
    for pattern, replacement in _SYMPY_PREP:
        latex = re.sub(pattern, replacement, latex)
    return latex


def paper_symbolic_equal(answer: str, gold: str) -> bool:
    """`parse_latex(answer).equals(parse_latex(gold))`; any exception (or an undecided `None`) is False.

    sympy's parser needs antlr4-python3-runtime 4.11 exactly; with any other version the import
    raises and, as in the authors' code, every such comparison is "not equal".
    """
    try:
        from sympy.parsing.latex import parse_latex

        left = parse_latex(prepare_latex_for_sympy(answer))
        right = parse_latex(prepare_latex_for_sympy(gold))
        return bool(left.equals(right))
    except Exception:  # noqa: BLE001 - the published behaviour: any failure means "not equal"
        return False


def default_symbolic_equal(answer: str, gold: str) -> tuple[bool | None, GradeStatus]:
    """math-verify on both answers wrapped in `\\boxed{}`; its own signal timeouts are off (we kill)."""
    from math_verify import parse, verify

    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)  # type: ignore[arg-type]
    pred_parsed = parse(f"\\boxed{{{answer}}}", parsing_timeout=None)  # type: ignore[arg-type]
    if not gold_parsed or not pred_parsed or _has_expr(gold_parsed) != _has_expr(pred_parsed):
        # Nothing extracted, or one side fell back to a raw string: a False would only mean
        # "failed to parse", which is not the same as "wrong".
        return None, GradeStatus.PARSE_ERROR
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None)), GradeStatus.OK  # type: ignore[arg-type]


def _has_expr(parsed: list[Any]) -> bool:
    return any(not isinstance(item, str) for item in parsed)


def _compare_here(mode: str, answer: str, gold: str) -> tuple[bool | None, GradeStatus]:
    if mode == "paper":
        return paper_symbolic_equal(answer, gold), GradeStatus.OK
    return default_symbolic_equal(answer, gold)


# ---------------------------------------------------------------------------------------------
# Worker process side
# ---------------------------------------------------------------------------------------------

_BOOT = "from anchors.traces.grading import worker_main; worker_main()"


def worker_main() -> None:
    """Entry point of a grading worker: JSON requests on stdin, one JSON reply per line on stdout."""
    protocol = _claim_stdout()
    _limit_memory()
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout disabled" is on purpose
    try:
        import math_verify  # noqa: F401 - warm the import so the first comparison is not slow
    except Exception as exc:  # noqa: BLE001 - report any import failure to the parent, then stop
        _send(protocol, {"ready": False, "error": repr(exc)})
        return
    _send(protocol, {"ready": True, "paper_latex": _sympy_latex_available()})
    for line in sys.stdin:
        _send(protocol, _serve(json.loads(line)))


def _serve(request: dict[str, Any]) -> dict[str, Any]:
    _limit_cpu(request.get("cpu_budget"))
    try:
        equal, status = _compare_here(request["mode"], request["answer"], request["gold"])
    except Exception as exc:  # noqa: BLE001 - a bad input must not kill the worker
        return {"id": request.get("id"), "equal": None, "status": "parse_error", "error": repr(exc)}
    return {"id": request["id"], "equal": equal, "status": status.value}


def _claim_stdout() -> IO[str]:
    """Keep fd 1 for the protocol; anything a library prints goes to stderr instead."""
    protocol = os.fdopen(os.dup(1), "w", encoding="ascii")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol


def _send(stream: IO[str], message: dict[str, Any]) -> None:
    stream.write(json.dumps(message) + "\n")  # ASCII-only JSON: one message, one line
    stream.flush()


def _limit_memory() -> None:
    megabytes = int(os.environ.get("ANCHORS_GRADER_MEMORY_MB", DEFAULT_WORKER_MEMORY_MB))
    if megabytes <= 0:
        return
    with contextlib.suppress(ImportError, ValueError, OSError):  # no RLIMIT_AS on some platforms
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _limit_cpu(budget: float | None) -> None:
    """Backstop for an orphan: if our parent dies (SIGKILL) mid-comparison, nobody kills us, and
    a signal handler cannot run while sympy is inside one long C call. A CPU-time limit is enforced
    by the kernel (SIGXCPU), so a runaway comparison ends `budget` CPU seconds after it started."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = resource.RLIM_INFINITY if budget is None else int(usage.ru_utime + usage.ru_stime + budget) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))


def _sympy_latex_available() -> bool:
    try:
        from sympy.parsing.latex import parse_latex

        parse_latex("1")
        return True
    except Exception:  # noqa: BLE001 - ImportError for a wrong antlr version, among others
        return False


# ---------------------------------------------------------------------------------------------
# Parent side: one worker process, then a small pool of them
# ---------------------------------------------------------------------------------------------

_DIED = object()  # put on a reply queue when the worker's stdout closes


class _Worker:
    """One child process; used by one thread at a time (the pool hands it out)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._replies: queue.Queue[Any] = queue.Queue()
        self._ready = False
        self._next_id = 0
        self._closed = False  # set by the pool's shutdown: never start again
        self.paper_latex: bool | None = None

    def start(self) -> None:
        """Launch the process without waiting for it to be ready (it imports while we work)."""
        if self._closed:
            return
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, env=_child_env(), text=True, encoding="ascii",
            )  # fmt: skip
        except OSError as exc:
            raise AnchorsError(f"Could not start the answer-grading worker with {sys.executable!r}: {exc}") from exc
        self._replies, self._ready = queue.Queue(), False
        threading.Thread(target=_pump, args=(self._proc.stdout, self._replies), daemon=True).start()

    def call(self, mode: str, answer: str, gold: str, timeout: float | None) -> tuple[bool | None, GradeStatus]:
        """Compare in the child; on overrun kill it, start a fresh one and report a timeout."""
        self._next_id += 1
        budget = None if timeout is None else timeout + CPU_MARGIN_S
        request = {"id": self._next_id, "mode": mode, "answer": answer, "gold": gold, "cpu_budget": budget}
        if not self._send(request):  # the child died while idle (e.g. killed from outside): once more
            self.restart()
            if not self._send(request):
                return None, GradeStatus.PARSE_ERROR
        return self._await_reply(self._next_id, timeout)

    def _send(self, request: dict[str, Any]) -> bool:
        self._ensure_ready()
        try:
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            return True
        except OSError:
            return False

    def _await_reply(self, request_id: int, timeout: float | None) -> tuple[bool | None, GradeStatus]:
        while True:
            try:
                reply = self._replies.get(timeout=timeout)
            except queue.Empty:
                self.restart()
                return None, GradeStatus.TIMEOUT
            if reply is _DIED:  # crashed mid-comparison (memory cap, GMP abort): bad input
                self.restart()
                return None, GradeStatus.PARSE_ERROR
            if reply.get("id") == request_id:
                return reply.get("equal"), GradeStatus(reply.get("status", "parse_error"))

    def _ensure_ready(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self.start()
        if self._proc is None:
            raise AnchorsError("The answer-grading workers were shut down while this comparison waited")
        if self._ready:
            return
        try:
            hello = self._replies.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            hello = {"error": f"no reply within {STARTUP_TIMEOUT_S:.0f} s"}
        if hello is _DIED or not hello.get("ready"):
            self.kill()
            detail = "it exited" if hello is _DIED else hello.get("error")
            raise AnchorsError(f"The answer-grading worker did not start ({detail}); is math-verify installed?")
        self._ready, self.paper_latex = True, bool(hello.get("paper_latex"))

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self._closed = True
        self.kill()

    def kill(self) -> None:
        """Kill and reap the child (no zombie), closing our ends of its pipes."""
        proc, self._proc, self._ready = self._proc, None, False
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _pump(stream: IO[str], replies: queue.Queue[Any]) -> None:
    """Reader thread: a blocking readline here lets the caller wait on a queue with a timeout."""
    with contextlib.suppress(ValueError, OSError):  # the stream is closed under us on kill
        for line in stream:
            with contextlib.suppress(json.JSONDecodeError):
                replies.put(json.loads(line))
    replies.put(_DIED)


def _child_env() -> dict[str, str]:
    """Our environment, plus the folder holding `anchors` so the child imports this same copy."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")  # the worker does scalar sympy work only
    return env


class _Pool:
    """Up to `size` workers; a thread borrows one for a comparison. Processes start on demand."""

    def __init__(self, size: int) -> None:
        self._workers = [_Worker() for _ in range(size)]
        # LIFO: a single-threaded caller keeps reusing the same (already started) worker.
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        for worker in reversed(self._workers):
            self._idle.put(worker)

    def compare(self, mode: str, answer: str, gold: str, timeout: float | None) -> tuple[bool | None, GradeStatus]:
        worker = self._idle.get()
        try:
            result = worker.call(mode, answer, gold, timeout)
            if mode == "paper" and worker.paper_latex is False:
                _warn_paper_latex_once()
            return result
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        for worker in self._workers:
            worker.close()


_pool: _Pool | None = None
_pool_lock = threading.Lock()
_paper_warning_given = False


def _get_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None:
            size = max(1, int(os.environ.get("ANCHORS_GRADER_WORKERS", "2")))
            _pool = _Pool(size)
            _register_exit_hook()
        return _pool


@functools.lru_cache(maxsize=None)
def _register_exit_hook() -> None:
    atexit.register(shutdown_workers)  # once per process, however often the pool is rebuilt


def shutdown_workers() -> None:
    """Stop every grading worker now (also runs at exit); the next comparison starts a fresh one."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


def _warn_paper_latex_once() -> None:
    global _paper_warning_given
    if not _paper_warning_given:
        _paper_warning_given = True
        log.warning(
            "sympy.parsing.latex.parse_latex is unavailable here (it needs antlr4-python3-runtime==4.11): "
            "paper-mode answers that differ after normalisation count as not equal, as the authors' "
            "code does whenever that parser fails."
        )


def compare_symbolic(mode: str, answer: str, gold: str, timeout: float | None) -> tuple[bool | None, GradeStatus]:
    """Symbolic equivalence of `answer` to `gold` in a worker process, killed after `timeout` seconds."""
    return _get_pool().compare(mode, answer, gold, timeout)




def _after_fork_in_child() -> None:
    """A forked child must not share our worker pipes or locks."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
