"""The python outcome: a user function in a sandboxed child, per call; hangs and crashes are results, not failures."""

from __future__ import annotations

import os
import socket
import textwrap
import time
from pathlib import Path

import pytest

from anchors.errors import InputError
from anchors.outcomes import OutcomeStatus, PythonConfig, PythonOutcome
from anchors.outcomes.python_call import interpret
from anchors.traces.records import Trace

GRADERS = '''
import os, socket, subprocess, sys, time

def contains_42(answer, context):
    return "42" in answer

def as_key(answer, context):
    return answer.strip().split()[-1]

def as_dict(answer, context):
    return {"key": "partial", "correct": False, "detail": "2/3 tests"}

def nothing(answer, context):
    return None

def weird(answer, context):
    return 3.5

def echo_context(answer, context):
    return {"key": f"{context['trace_id']}|{context['gold']}|{context['metadata'].get('tag')}|{answer!r}"}

def hang(answer, context):
    while True:
        time.sleep(0.05)

def hang_with_grandchild(answer, context):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(context["metadata"]["pid_file"], "w") as f:
        f.write(str(child.pid))
    while True:
        time.sleep(0.05)

def spin(answer, context):
    while True:
        pass

def boom(answer, context):
    raise ValueError("the tests could not be collected")

def die(answer, context):
    print("about to die", file=sys.stderr)
    os._exit(3)

def hog(answer, context):
    blob = bytearray(4 * 1024 ** 3)
    return "allocated"

def connect(answer, context):
    port = int(context["metadata"]["port"])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__

def connect_raw(answer, context):
    import _socket
    try:
        _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        return "created"
    except OSError as exc:
        return type(exc).__name__

def connect_from_grandchild(answer, context):
    code = ("import socket, sys\\n"
            "try:\\n    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2).close(); print('connected')\\n"
            "except OSError as e:\\n    print(type(e).__name__)")
    done = subprocess.run([sys.executable, "-c", code, context["metadata"]["port"]], capture_output=True, text=True)
    return done.stdout.strip()

def unix_pair(answer, context):
    a, b = socket.socketpair()
    a.sendall(b"ok")
    return b.recv(2).decode()

def environment(answer, context):
    return ",".join(sorted(os.environ))

def where(answer, context):
    return os.getcwd()
'''


@pytest.fixture
def graders(tmp_path: Path) -> Path:
    path = tmp_path / "graders.py"
    path.write_text(textwrap.dedent(GRADERS))
    return path


def outcome(graders: Path, function: str, **options: object) -> PythonOutcome:
    return PythonOutcome(PythonConfig(module=str(graders), function=function, **{"timeout_s": 10.0, **options}))  # type: ignore[arg-type]


def trace(**metadata: object) -> Trace:
    return Trace(id="t1", problem="p", thinking="x", answer_text="y", metadata=metadata)


def test_return_values_become_keys_and_verdicts(graders: Path) -> None:
    passed = outcome(graders, "contains_42").grade("<think>no</think> the answer is 42")
    assert (passed.key, passed.correct, passed.status) == ("pass", True, OutcomeStatus.OK)
    assert outcome(graders, "contains_42").grade("<think>42</think> no").key == "fail"  # the answer part only
    key = outcome(graders, "as_key").grade("so: blackmail", "blackmail")
    assert (key.key, key.correct) == ("blackmail", True)
    assert outcome(graders, "as_key").grade("so: comply").correct is None  # no gold, no verdict
    partial = outcome(graders, "as_dict").grade("x")
    assert (partial.key, partial.correct, partial.detail) == ("partial", False, "2/3 tests")
    assert outcome(graders, "nothing").grade("x").status is OutcomeStatus.NO_ANSWER
    weird = outcome(graders, "weird").grade("x")
    assert weird.status is OutcomeStatus.ERROR and "3.5" in weird.detail


def test_the_function_sees_the_trace_context(graders: Path) -> None:
    result = outcome(graders, "echo_context").grade("<think>a</think>b", " g ", trace=trace(tag="T"))
    assert result.key == "t1|g|T|'b'"


def test_a_hanging_function_times_out_and_the_next_call_works(graders: Path) -> None:
    hung = outcome(graders, "hang", timeout_s=1.5)
    started = time.monotonic()
    result = hung.grade("x")
    elapsed = time.monotonic() - started
    assert (result.key, result.status) == (None, OutcomeStatus.TIMEOUT) and "1.5 s" in result.detail
    assert elapsed < 1.5 + 10  # killed at the limit (slack for a loaded machine), not left to run
    assert outcome(graders, "contains_42").grade("42").key == "pass"


def test_a_timeout_kills_what_the_function_started(graders: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    result = outcome(graders, "hang_with_grandchild", timeout_s=3).grade("x", trace=trace(pid_file=str(pid_file)))
    assert result.status is OutcomeStatus.TIMEOUT
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_a_busy_loop_times_out_too(graders: Path) -> None:
    assert outcome(graders, "spin", timeout_s=1.0).grade("x").status is OutcomeStatus.TIMEOUT


def test_raising_dying_and_memory_are_errors(graders: Path) -> None:
    raised = outcome(graders, "boom").grade("x")
    assert (raised.status, raised.detail) == (OutcomeStatus.ERROR, "ValueError: the tests could not be collected")
    died = outcome(graders, "die").grade("x")
    assert died.status is OutcomeStatus.ERROR and "exited with 3" in died.detail and "about to die" in died.detail
    hog = outcome(graders, "hog", memory_mb=512).grade("x")
    assert hog.status is OutcomeStatus.ERROR and "MemoryError" in hog.detail


@pytest.fixture
def listening_port() -> int:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_no_network_inside_the_child(graders: Path, listening_port: int) -> None:
    meta = trace(port=str(listening_port))
    assert socket.create_connection(("127.0.0.1", listening_port), timeout=2)  # reachable from here
    assert outcome(graders, "connect").grade("x", trace=meta).key == "PermissionError"
    assert outcome(graders, "connect_raw").grade("x", trace=meta).key == "PermissionError"
    assert outcome(graders, "unix_pair").grade("x").key == "ok"  # Unix sockets (multiprocessing) still work
    sandboxed = outcome(graders, "connect_from_grandchild")
    from_grandchild = sandboxed.grade("x", trace=meta).key
    if sandboxed.network_isolation != "namespace":
        pytest.skip("no unprivileged network namespace here: only Python-level sockets are blocked")
    assert from_grandchild != "connected"  # a process the function starts has no network either


def test_require_network_isolation(graders: Path, listening_port: int) -> None:
    strict = outcome(graders, "connect", require_network_isolation=True)
    result = strict.grade("x", trace=trace(port=str(listening_port)))
    if strict.network_isolation == "namespace":
        assert result.key == "PermissionError"
    else:
        assert result.status is OutcomeStatus.ERROR and "namespace" in result.detail


def test_the_child_gets_a_clean_environment_and_its_own_folder(graders: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_JUDGE_API_KEY", "sk-secret-should-not-leak")
    monkeypatch.setenv("ANCHORS_PASS_ME", "1")
    names = outcome(graders, "environment").grade("x").key.split(",")
    assert "ANCHORS_JUDGE_API_KEY" not in names and "ANCHORS_PASS_ME" not in names
    assert {"PATH", "HOME", "TMPDIR"} <= set(names)
    assert "ANCHORS_PASS_ME" in outcome(graders, "environment", env=("ANCHORS_PASS_ME",)).grade("x").key.split(",")
    folder = outcome(graders, "where").grade("x").key
    assert folder != os.getcwd() and "anchors-outcome-" in folder and not Path(folder).exists()  # removed after


def test_dotted_modules_from_the_working_directory_or_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "mygraders"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "unit.py").write_text("def run(answer, context):\n    return answer == 'ok'\n")
    monkeypatch.chdir(tmp_path)
    assert PythonOutcome(PythonConfig("mygraders.unit", "run")).grade("ok").correct is True
    monkeypatch.chdir(Path(__file__).parent)
    elsewhere = PythonOutcome(PythonConfig("mygraders.unit", "run", paths=(str(tmp_path),)))
    assert elsewhere.grade("ok").correct is True
    missing = PythonOutcome(PythonConfig("mygraders.unit", "run")).grade("ok")  # not importable from here
    assert missing.status is OutcomeStatus.ERROR and "ModuleNotFoundError" in missing.detail


def test_check_loads_without_calling(graders: Path, tmp_path: Path) -> None:
    outcome(graders, "hang").check()  # found; not called, so it does not hang
    with pytest.raises(InputError, match="no function 'absent'"):
        outcome(graders, "absent").check()
    with pytest.raises(InputError, match="no such file"):
        PythonOutcome(PythonConfig(str(tmp_path / "nope.py"), "f")).check()
    with pytest.raises(InputError, match="ModuleNotFoundError"):
        PythonOutcome(PythonConfig("no_such_module_here", "f")).check()


def test_config_errors() -> None:
    with pytest.raises(InputError):
        PythonConfig("m", "")
    with pytest.raises(InputError):
        PythonConfig("m", "f", timeout_s=0)


@pytest.mark.parametrize(
    ("value", "gold", "expected"),
    [
        (True, None, ("pass", True, OutcomeStatus.OK)),
        (False, "pass", ("fail", False, OutcomeStatus.OK)),
        ("  ", None, (None, None, OutcomeStatus.NO_ANSWER)),
        ("B", "B", ("B", True, OutcomeStatus.OK)),
        ({"correct": True}, None, ("pass", True, OutcomeStatus.OK)),
        ({"key": "x"}, "y", ("x", False, OutcomeStatus.OK)),
        ({"key": "x", "correct": "yes"}, None, ("x", None, OutcomeStatus.OK)),  # a non-bool verdict is ignored
        ({"unusable": "<object>"}, None, (None, None, OutcomeStatus.ERROR)),
    ],
)
def test_interpret(value: object, gold: str | None, expected: tuple[object, object, OutcomeStatus]) -> None:
    result = interpret(value, gold)
    assert (result.key, result.correct, result.status) == expected


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")  # a zombie is dead


def test_python_level_blocking_alone(graders: Path, listening_port: int) -> None:
    """Where no namespace can be made (most containers), the audit hook still stops Python code."""
    meta = trace(port=str(listening_port))
    plain = outcome(graders, "connect", network_namespace=False)
    assert plain.grade("x", trace=meta).key == "PermissionError" and plain.network_isolation == "sockets"
    assert outcome(graders, "connect_raw", network_namespace=False).grade("x", trace=meta).key == "PermissionError"
    strict = outcome(graders, "connect", network_namespace=False, require_network_isolation=True).grade("x", trace=meta)
    assert strict.status is OutcomeStatus.ERROR and "namespace" in strict.detail


def test_numpy_booleans_count_as_booleans(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    path = tmp_path / "np_grader.py"
    path.write_text("import numpy as np\n"
                    "def whole(answer, context):\n    return np.array([1, 2]).sum() == 3\n"
                    "def inside(answer, context):\n    return {'correct': np.array([1]).all()}\n")
    assert outcome(path, "whole").grade("x").key == "pass"
    assert outcome(path, "inside").grade("x").correct is True
