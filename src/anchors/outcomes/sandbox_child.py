"""The child side of the python outcome: run one user grading function, answer with one JSON line.

Run as a script by `anchors.outcomes.python_call` (`python -I THIS_FILE`), never imported by anchors: it uses the
standard library only, so the child needs neither anchors nor the parent's PYTHONPATH. The request comes as one
JSON object on stdin; the reply goes to the original stdout, and anything the user's code prints goes to stderr.

Order matters: limits first, then the network is taken away (a new network namespace where the kernel allows
it, and Python-level socket creation blocked in any case), then the user's module is imported and called.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import json
import os
import socket
import sys
import traceback

_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.read())
    _set_limits(request["limits"])
    isolation = _drop_network(request.get("namespace", True))
    try:
        if request.get("require_namespace") and isolation != "namespace":
            raise PermissionError("no network namespace could be created here, and the outcome requires one")
        function = _load(request["module"], request["function"], request["paths"])
        value = None if request.get("probe") else function(request["answer"], request["context"])
        reply = {"ok": True, "value": _json_safe(value), "network": isolation}
    except BaseException as exc:  # noqa: BLE001 - whatever the user's code raises is reported, not raised
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000], "network": isolation,
                 "traceback": traceback.format_exc()[-4000:]}
    protocol.write(json.dumps(reply) + "\n")
    protocol.flush()


def _set_limits(limits: dict[str, int]) -> None:
    try:
        import resource
    except ImportError:  # not on this platform: the parent's wall-clock timeout still applies
        return
    for name, value in limits.items():
        kind = getattr(resource, name, None)
        if kind is None:
            continue
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):
            pass  # a hard limit below ours already applies


def _drop_network(namespace: bool) -> str:
    """'namespace' when the child has a network namespace of its own (no interface but a down loopback: no
    connection anywhere, also for processes it starts); 'sockets' when only Python-level creation is blocked."""
    isolation = "sockets"
    if namespace and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
                isolation = "namespace"
        except (OSError, AttributeError):
            pass
    _block_sockets()
    return isolation


def _block_sockets() -> None:
    """An audit hook (it cannot be removed, and it sees sockets made through `_socket` directly too): creating any
    socket but a Unix one, and name lookups, raise PermissionError. Unix sockets (multiprocessing) keep working."""
    unix = getattr(socket, "AF_UNIX", None)
    lookups = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"}

    def hook(event: str, args: tuple[object, ...]) -> None:
        if (event == "socket.__new__" and args[1] != unix) or event in lookups:
            raise PermissionError("network access is blocked inside the python outcome's sandbox")

    sys.addaudithook(hook)


def _load(module: str, function: str, paths: list[str]) -> object:
    for path in reversed(paths):
        sys.path.insert(0, path)
    if module.endswith(".py"):
        spec = importlib.util.spec_from_file_location("anchors_outcome_grader", module)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {module}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = loaded
        spec.loader.exec_module(loaded)
    else:
        loaded = importlib.import_module(module)
    found = getattr(loaded, function, None)
    if not callable(found):
        raise AttributeError(f"{module} has no function {function!r}")
    return found


def _json_safe(value: object) -> object:
    """bool, str, None, or a dict with 'key' / 'correct' / 'detail'; anything else is sent as its repr."""
    value = _plain_bool(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, dict):
        plain = {k: _plain_bool(v) for k, v in value.items() if k in ("key", "correct", "detail")}
        return {k: (v if v is None or isinstance(v, (bool, str)) else repr(v)) for k, v in plain.items()}
    return {"unusable": repr(value)[:200]}


def _plain_bool(value: object) -> object:
    """numpy's bool (what `(a == b).all()` returns) as a Python bool."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return bool(value) if kind == "b" and getattr(value, "shape", None) == () else value


if __name__ == "__main__":
    main()
