"""The OpenAI-compatible completions backend: vLLM, SGLang, llama.cpp servers and hosted providers.

Each request's rollouts are asked for in fixed units (indices [0, m), [m, 2m), …, m = `n_per_request`) as
raw-prompt `/v1/completions` calls with `n = m` and a seed derived from the unit's first rollout, so a resumed
job asks for exactly the units an uninterrupted one would. Calls run concurrently (at most `concurrency` in
flight per server) and are retried with exponential backoff on 429, 5xx, timeouts and dropped connections;
a unit that still fails becomes failed rollouts naming the server and the cause, and the job goes on. With
several base URLs, each server takes the next unit whenever one of its `concurrency` slots is free, so a long
trace is spread over every server and a slow server takes less; a server that gave up (two units in a row) takes
no more, and the units it gave up on go to the others.

The API key comes from an environment variable (`api_key_env`) at call time and is never stored or logged.
Servers strip stop strings from the text and keep generating past a boxed answer; the stop rules are
re-applied here, so a rollout reads the same as the local engine's (see `anchors.rollouts.stops`).
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from anchors.errors import AnchorsError
from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams, _digest, rollout_seed
from anchors.rollouts.stops import StopRule

# Sampling knobs servers apply by default unless told otherwise (llama.cpp: top_k 40, min_p 0.05, a repeat
# penalty; vLLM: the model's generation_config.json). Set neutral so temperature + top_p mean what they say.
NEUTRAL_SAMPLING = {
    "vllm": {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0, "include_stop_str_in_output": True},
    "sglang": {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0, "no_stop_trim": True},
    "llama.cpp": {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0},
    "openai": {},
}
# llama-cpp-python's server ignores `n` (one choice per call); the others sample n choices from one prefill.
DEFAULT_N_PER_REQUEST = {"vllm": 16, "sglang": 16, "llama.cpp": 1, "openai": 16}
# llama-cpp-python's server runs one call at a time and, by default, cuts a running call short when the next
# one arrives (`interrupt_requests`): one call in flight keeps every rollout whole.
DEFAULT_CONCURRENCY = {"vllm": 8, "sglang": 8, "llama.cpp": 1, "openai": 8}
RETRY_STATUS = {408, 409, 425, 429}


class ServerError(AnchorsError):
    """A server cannot be used at all (unreachable, wrong model, not OpenAI-compatible)."""


@dataclass(frozen=True)
class _Unit:
    request: PrefixRequest
    start: int
    stop: int
    url: str = ""  # the server that took it


class _GaveUp(Exception):
    """A server did not answer a unit (retries exhausted, or it is down): another server may."""


class OpenAICompatibleSampler:
    """Implements `Sampler` against one or more OpenAI-compatible servers."""

    def __init__(self, base_urls: Sequence[str], model: str, *, api_key_env: str = "OPENAI_API_KEY",
                 server_kind: str = "vllm", concurrency: int | None = None, timeout_s: float = 600.0, max_retries: int = 4,
                 backoff_s: float = 0.5, n_per_request: int | None = None, think_open: str = "<think>",
                 think_close: str = "</think>", tokenizer: Any = None, extra_body: dict[str, Any] | None = None,
                 check_model: bool = True) -> None:
        if not base_urls:
            raise ValueError("give at least one base URL")
        if server_kind not in NEUTRAL_SAMPLING:
            raise ValueError(f"server_kind must be one of {sorted(NEUTRAL_SAMPLING)}, not {server_kind!r}")
        self.base_urls = [_api_base(url) for url in base_urls]
        self.model, self.api_key_env, self.server_kind = model, api_key_env, server_kind
        self.concurrency = max(1, concurrency or DEFAULT_CONCURRENCY[server_kind])
        self.timeout_s = timeout_s
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.n_per_request = max(1, n_per_request or DEFAULT_N_PER_REQUEST[server_kind])
        self.think_open, self.think_close, self.tokenizer = think_open, think_close, tokenizer
        self.extra_body = {**NEUTRAL_SAMPLING[server_kind], **(extra_body or {})}
        self.check_model = check_model
        self._checked = False

    @property
    def identity(self) -> str:
        """The served model name and the extra sampling fields (they change the distribution)."""
        return f"openai:{self.model}" + (f"+{_digest(self.extra_body)}" if self.extra_body else "")

    def provenance(self) -> dict[str, object]:
        import httpx

        return {"engine": "anchors.openai", "base_urls": self.base_urls, "server_kind": self.server_kind,
                "n_per_request": self.n_per_request, "extra_body": self.extra_body, "httpx": httpx.__version__,
                "token_ids": "retokenized locally" if self.tokenizer is not None else "not available"}

    # -- public ---------------------------------------------------------------------------------------

    def check(self) -> None:
        """Fail fast with a clear error when a server is unreachable or does not serve `model`."""
        import httpx

        for url in self.base_urls:
            try:
                response = httpx.get(f"{url}/models", headers=self._headers(), timeout=min(self.timeout_s, 30.0))
            except httpx.HTTPError as error:
                raise ServerError(f"cannot reach {url} ({type(error).__name__}: {error}); is the server running "
                                  "and is the URL right (e.g. http://127.0.0.1:8000/v1)?") from None
            self._check_models_answer(url, response)
        self._checked = True

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        if self.check_model and not self._checked:
            self.check()
        units = self._plan(requests)
        if not units:
            return
        results: queue.Queue[list[Rollout] | BaseException] = queue.Queue()
        runner = _LoopThread(self._run_all(units, params, results))
        runner.start()
        try:
            for _ in units:
                item = results.get()
                if isinstance(item, BaseException):
                    raise item
                yield from item
        finally:
            runner.stop()

    # -- planning -------------------------------------------------------------------------------------

    def _plan(self, requests: Sequence[PrefixRequest]) -> list[_Unit]:
        units = []
        for request in requests:
            wanted = set(request.wanted_indices())
            for start in range(0, request.n, self.n_per_request):
                stop = min(start + self.n_per_request, request.n)
                if wanted.intersection(range(start, stop)):
                    units.append(_Unit(request, start, stop))
        return units

    def _body(self, unit: _Unit, params: SamplingParams) -> dict[str, Any]:
        request = unit.request
        body = {"model": self.model, "prompt": request.prompt_text, "n": unit.stop - unit.start,
                "max_tokens": params.max_new_tokens, "temperature": params.temperature, "top_p": params.top_p,
                "seed": rollout_seed(request.seed, unit.start), "stream": False, **self.extra_body}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.logprobs:
            body["logprobs"] = 0
        return body

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    # -- network --------------------------------------------------------------------------------------

    async def _run_all(self, units: list[_Unit], params: SamplingParams,
                       results: queue.Queue[list[Rollout] | BaseException]) -> None:
        import httpx

        work = _Work(units, {url: _Health() for url in self.base_urls})
        limits = httpx.Limits(max_connections=self.concurrency * len(self.base_urls))
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits, headers=self._headers()) as client:

            async def slot(url: str) -> None:
                while (unit := await work.next_for(url)) is not None:
                    try:
                        results.put(await self._unit(client, replace(unit, url=url), params, work.health[url]))
                    except _GaveUp as gave_up:
                        if not work.hand_on(unit, url):
                            results.put(self._failed(replace(unit, url=url), str(gave_up)))
                    except Exception as error:  # a bug here must reach the caller, not hang it
                        results.put(error)
                    work.finished()

            # slots started server by server in turn, so the first units go to every server alike
            await asyncio.gather(*(slot(url) for _ in range(self.concurrency) for url in self.base_urls))
        cause = "; ".join(f"{url}: server gave up on earlier calls ({health.cause}); not retried"
                          for url, health in work.health.items())
        for unit in work.todo:  # every server gave up
            results.put(self._failed(unit, cause))

    async def _unit(self, client: Any, unit: _Unit, params: SamplingParams, health: _Health) -> list[Rollout]:
        import httpx

        last = ""
        for attempt in range(self.max_retries + 1):
            if health.down:
                raise _GaveUp(f"{unit.url}: server gave up on earlier calls ({health.cause}); not retried")
            try:
                response = await client.post(f"{unit.url}/completions", json=self._body(unit, params))
            except (httpx.TimeoutException, httpx.TransportError) as error:
                last = f"{type(error).__name__}: {error}".rstrip(": ")
            else:
                if response.status_code == 200:
                    health.ok()
                    return self._parse(unit, params, response)
                last = f"HTTP {response.status_code}: {_server_message(response)}"
                if response.status_code < 500 and response.status_code not in RETRY_STATUS:
                    return self._failed(unit, f"{unit.url} refused the call: {last}")
            if attempt < self.max_retries:
                await asyncio.sleep(self._backoff(attempt))
        cause = f"no answer after {self.max_retries + 1} attempts (last: {last})"
        health.failed(cause)
        raise _GaveUp(f"{unit.url}: {cause}")

    def _backoff(self, attempt: int) -> float:
        return min(30.0, self.backoff_s * 2**attempt) * random.uniform(0.8, 1.2)

    # -- answers --------------------------------------------------------------------------------------

    def _parse(self, unit: _Unit, params: SamplingParams, response: Any) -> list[Rollout]:
        try:
            data = response.json()
            choices = sorted(data["choices"], key=lambda c: int(c.get("index", 0)))
            if len(choices) != unit.stop - unit.start or not all(isinstance(c["text"], str) for c in choices):
                raise ValueError(f"expected {unit.stop - unit.start} choices with text")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            snippet = response.text[:200].replace("\n", " ")
            return self._failed(unit, f"{unit.url} sent an answer that is not an OpenAI completions response "
                                      f"({type(error).__name__}: {error}); it began: {snippet!r}")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        wanted = set(unit.request.wanted_indices())
        return [self._rollout(unit.request, unit.start + j, choice, params, usage, len(choices))
                for j, choice in enumerate(choices) if unit.start + j in wanted]

    def _rollout(self, request: PrefixRequest, index: int, choice: dict[str, Any], params: SamplingParams,
                 usage: dict[str, Any], n: int) -> Rollout:
        text, finish = _apply_stops(request, choice, params, self.think_open, self.think_close)
        token_ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if self.tokenizer else []
        logprobs = _logprobs(choice) if params.logprobs else None
        counted = len(logprobs) if logprobs is not None else len(token_ids)
        if not counted and n == 1:
            counted = int(usage.get("completion_tokens") or 0)
        return Rollout(key=request.key, index=index, seed=rollout_seed(request.seed, index), text=text,
                       token_ids=token_ids, finish_reason=finish, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                       completion_tokens=counted, logprobs=logprobs)

    def _failed(self, unit: _Unit, message: str) -> list[Rollout]:
        request = unit.request
        wanted = set(request.wanted_indices())
        return [Rollout(key=request.key, index=k, seed=rollout_seed(request.seed, k), text="", finish_reason="error",
                        error=message) for k in range(unit.start, unit.stop) if k in wanted]

    def _check_models_answer(self, url: str, response: Any) -> None:
        if response.status_code in (401, 403):
            raise ServerError(f"{url} refused the API key (HTTP {response.status_code}); set the environment "
                              f"variable {self.api_key_env} to a valid key")
        if response.status_code != 200:
            return  # some providers have no model list; the completions call will say if the name is wrong
        try:
            served = [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as error:
            raise ServerError(f"{url}/models did not answer like an OpenAI-compatible server ({error}); "
                              f"it began: {response.text[:200]!r}") from None
        if self.model not in served:
            raise ServerError(f"{url} serves {served}, not {self.model!r}; pass one of those as the model name")


class _Health:
    """Per server: after two units in a row gave up, the server is treated as down (no more waiting)."""

    def __init__(self) -> None:
        self.failures, self.cause = 0, ""

    @property
    def down(self) -> bool:
        return self.failures >= 2

    def ok(self) -> None:
        self.failures = 0

    def failed(self, cause: str) -> None:
        self.failures += 1
        self.cause = cause


class _Work:
    """The units not yet taken, shared by every server's slots: each slot takes the next one when it is free. A
    unit a server gave up on is handed on to another server while one is still up."""

    def __init__(self, units: list[_Unit], health: dict[str, _Health]) -> None:
        self.todo, self.health = deque(units), health
        self.taken = 0  # units being worked on
        self.changed = asyncio.Event()

    async def next_for(self, url: str) -> _Unit | None:
        """The next unit for a slot of `url`; None when there is nothing left it could take."""
        while not self.health[url].down:
            if self.todo:
                self.taken += 1
                return self.todo.popleft()
            if not self.taken:
                return None
            self.changed.clear()
            await self.changed.wait()  # a unit in flight elsewhere may be handed on
        return None

    def hand_on(self, unit: _Unit, url: str) -> bool:
        """Put back a unit `url` gave up on, if another server is up (False: it fails)."""
        if not any(not health.down for other, health in self.health.items() if other != url):
            return False
        self.todo.appendleft(unit)
        return True

    def finished(self) -> None:
        self.taken -= 1
        self.changed.set()


class _LoopThread(threading.Thread):
    """Runs one coroutine on its own event loop in a daemon thread; `stop()` cancels it."""

    def __init__(self, coroutine: Any) -> None:
        super().__init__(daemon=True, name="anchors-openai")
        self._coroutine = coroutine
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[Any] | None = None

    def run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self._coroutine)
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.close()

    def stop(self) -> None:
        if self.is_alive() and self._task is not None:
            try:
                self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:
                pass  # the loop closed between the check and the call: the coroutine already finished
        self.join(timeout=10)


def _api_base(url: str) -> str:
    """'http://h:8000', 'http://h:8000/', 'http://h:8000/v1' → 'http://h:8000/v1'."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ServerError(f"{url!r} is not an http(s) URL; pass e.g. http://127.0.0.1:8000/v1")
    return url if url.endswith("/v1") else f"{url}/v1"


def _server_message(response: Any) -> str:
    try:
        error = response.json().get("error", response.json())
        message = error.get("message", error) if isinstance(error, dict) else error
        return str(message)[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


def _apply_stops(request: PrefixRequest, choice: dict[str, Any], params: SamplingParams, think_open: str,
                 think_close: str) -> tuple[str, str]:
    """The choice's text cut by our stop rules, and the finish reason in the local engine's terms."""
    text = choice["text"]
    stop_reason = choice.get("stop_reason")
    if isinstance(stop_reason, str) and stop_reason and not text.endswith(stop_reason):
        text += stop_reason  # the server trimmed the stop string; keep it, as the local engine does
    rule = StopRule.for_prompt(request.prompt_text, params.stop, params.stop_after_boxed_answer, think_open,
                               think_close)
    end = rule.end(text)
    if end is not None:
        return text[:end], "stop"
    reason = choice.get("finish_reason")
    return text, "length" if reason == "length" else "eos"


def _logprobs(choice: dict[str, Any]) -> list[float] | None:
    values = (choice.get("logprobs") or {}).get("token_logprobs")
    return [float(v) for v in values if v is not None] if isinstance(values, list) else None
