"""A minimal client for an OpenAI-compatible chat-completions endpoint, with retries.

Speaks `POST {base_url}/chat/completions` (OpenAI, vLLM, llama.cpp's servers, …) through the standard
library, so labelling needs no extra dependency. Transport failures (connection refused, timeouts, HTTP 429
and 5xx) are retried with exponential backoff. Servers differ in the structured output they accept, so a
request rejected with 400/422 (or a 500 naming response_format) steps down one `response_format` and tries again (remembered afterwards):
"json_schema" (OpenAI, vLLM, llama.cpp's llama-server) -> "json_object_schema" ({"type": "json_object",
"schema": ...}, llama-cpp-python's server) -> "json_object" -> "none" (the prompt alone asks for JSON).
The API key is read from an environment variable at request time and never stored, logged or put in an error
message.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

from anchors.errors import AnchorsError
from anchors.labels.result import warn

ResponseFormat = Literal["json_schema", "json_object_schema", "json_object", "none"]
_FALLBACK: dict[str, ResponseFormat] = {"json_schema": "json_object_schema", "json_object_schema": "json_object",
                                        "json_object": "none"}
_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class EndpointError(AnchorsError):
    """The endpoint could not be reached or refused the request after every retry."""


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how to call the chat endpoint.

    `base_url` ends before `/chat/completions` (e.g. `http://127.0.0.1:8080/v1`). `api_key_env` names the
    environment variable holding the key (unset or empty: no Authorization header, as local servers need).
    """

    base_url: str
    model: str = "default"
    api_key_env: str = "ANCHORS_LABEL_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 3  # transport retries per request (after the first try)
    backoff_s: float = 1.0  # first retry delay; doubles each time
    temperature: float = 0.0
    response_format: ResponseFormat = "json_schema"


class ChatClient:
    """Sends chat requests; remembers a `response_format` downgrade for the rest of its life."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.response_format: ResponseFormat = config.response_format
        self.requests_sent = 0

    @property
    def url(self) -> str:
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def chat(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int | None = None) -> str:
        """The assistant message's text (possibly empty); raises EndpointError when every retry failed."""
        while True:
            body = self._body(messages, schema, max_tokens)
            try:
                return _message_text(self._send_with_retries(body))
            except _BadRequest as exc:
                if self.response_format == "none" or "response_format" not in body:
                    raise EndpointError(f"{self.url}: the endpoint rejected the request: {exc}") from None
                fallback = _FALLBACK[self.response_format]
                warn(f"{self.url} rejected response_format={self.response_format!r} ({exc}); retrying with {fallback!r}")
                self.response_format = fallback

    def _body(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "messages": messages, "temperature": self.config.temperature}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if self.response_format == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "sentence_tags", "schema": schema}}
        elif self.response_format == "json_object_schema":
            body["response_format"] = {"type": "json_object", "schema": schema}
        elif self.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def _send_with_retries(self, body: dict[str, Any]) -> Any:
        delay, attempts = self.config.backoff_s, self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._send(body)
            except _Retryable as exc:
                if attempt == attempts - 1:
                    raise EndpointError(f"{self.url}: no usable response after {attempts} tries (last: {exc}); "
                                        "check that the server is up, or raise --max-retries") from None
                warn(f"{self.url}: {exc}; retrying in {delay:.1f} s ({attempt + 1}/{attempts - 1})")
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _send(self, body: dict[str, Any]) -> Any:
        self.requests_sent += 1
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _classify(exc) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # refused, reset, timed out, cut short
            raise _Retryable(f"connection failed: {getattr(exc, 'reason', exc)}") from None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Retryable(f"the response body is not JSON ({raw[:80]!r}…)") from None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.config.api_key_env, "") if self.config.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers


class _Retryable(Exception):
    pass


class _BadRequest(Exception):
    pass


def _classify(exc: urllib.error.HTTPError) -> Exception:
    detail = _error_detail(exc)
    if exc.code in (400, 422) or (exc.code == 500 and "response_format" in detail):
        # 422: FastAPI servers' validation error; llama-cpp-python answers an unsupported response_format with 500
        return _BadRequest(f"HTTP {exc.code} {detail}".strip())
    if exc.code in _RETRYABLE_STATUS:
        return _Retryable(f"HTTP {exc.code} {detail}".strip())
    hint = " (is the key in the environment variable named by api_key_env?)" if exc.code in (401, 403) else ""
    return EndpointError(f"HTTP {exc.code} from the endpoint{hint}: {detail}")


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read().decode("utf-8", "replace")
    except OSError:
        return ""
    try:
        error = json.loads(text).get("error", text)
        text = error.get("message", str(error)) if isinstance(error, dict) else str(error)
    except (json.JSONDecodeError, AttributeError):
        pass
    return " ".join(text.split())[:300]


def _message_text(response: Any) -> str:
    """choices[0].message.content, or '' when the response has another shape (treated as a bad reply)."""
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""
