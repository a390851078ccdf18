"""A scripted OpenAI-compatible server on 127.0.0.1 for the server backend's failure tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (server, body) -> (status, payload as dict or raw text)
Behaviour = Callable[["FakeServer", dict[str, Any]], tuple[int, Any]]


def echo(server: FakeServer, body: dict[str, Any]) -> tuple[int, Any]:
    """n choices whose text is a function of (prompt, seed, choice index): deterministic, like a seeded server."""
    choices = [{"index": j, "text": f" r{body['seed'] % 1000}.{j}", "finish_reason": "stop", "logprobs": None}
               for j in range(body["n"])]
    return 200, {"object": "text_completion", "model": body["model"], "choices": choices,
                 "usage": {"prompt_tokens": 3, "completion_tokens": 4 * body["n"]}}


class FakeServer:
    def __init__(self, behaviour: Behaviour = echo, models: tuple[str, ...] = ("fake-model",)) -> None:
        self.behaviour, self.models = behaviour, models
        self.calls: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.calls.append(body)
                    server.headers.append(dict(self.headers))
                self._send(*server.behaviour(server, body))

            def _send(self, status: int, payload: Any) -> None:
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
