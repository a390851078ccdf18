"""Grades the code tasks of code_tasks.jsonl through the python outcome:

    --outcome python:examples/code_grader.py:grade

anchors calls `grade(answer, context)` in a sandboxed child process (see docs/outcomes.md): `answer` is the reply
after the thinking, `context["metadata"]["tests"]` the task's assert statements. Running the model's code is what
grading code means, so it is executed here on purpose; that is why the python outcome runs it in a fresh child
with a clean environment, no network and a hard timeout (a solution that loops forever gives status `timeout`).
"""

from __future__ import annotations

import re
from typing import Any

FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(answer: str) -> str | None:
    """The last fenced code block of the reply, or None."""
    blocks = FENCE.findall(answer)
    return blocks[-1] if blocks else None


def grade(answer: str, context: dict[str, Any]) -> dict[str, Any] | None:
    """pass (every test holds) or fail, with how many tests passed; None when the reply has no code block."""
    code = extract_code(answer)
    if code is None:
        return None
    tests = context["metadata"]["tests"]
    namespace: dict[str, Any] = {}
    try:
        exec(compile(code, "<answer>", "exec"), namespace)  # noqa: S102 - see the module docstring
    except Exception as exc:  # noqa: BLE001 - a broken solution fails; it does not stop the grading
        return {"key": "fail", "correct": False, "detail": f"the code does not run: {type(exc).__name__}: {exc}"}
    passed = sum(_holds(test, namespace) for test in tests)
    ok = passed == len(tests)
    return {"key": "pass" if ok else "fail", "correct": ok, "detail": f"{passed}/{len(tests)} tests passed"}


def _holds(test: str, namespace: dict[str, Any]) -> bool:
    try:
        exec(test, dict(namespace))  # noqa: S102
    except Exception:  # noqa: BLE001 - a failing or crashing test is a failed test
        return False
    return True
