"""Sampling and embedding on a Ray cluster (`pip install 'anchors[ray]'`).

What runs where: the driver (the process running an anchors command) plans the requests, cuts them into *work
units* and alone writes the rollout store. Each Ray actor holds one sampler of its own — a local engine on a GPU
(or a CPU node), or a client of the OpenAI-compatible server on its node — and turns the units it is sent into
rollouts, which go back to the driver as each unit finishes. The actors embed sentences for the black-box metrics
too (`RayEmbedder`), on the same workers, between sampling jobs.

Work units: consecutive requests of the job's request list (each request is one block of ≤ 10 rollouts of one
prompt, see anchors.rollouts.plan), never split, up to `rollouts_per_unit` rollouts a unit. The cut depends on the
request list alone — not on the number of workers, on which worker takes a unit, on what the store already holds,
or on retries — and a worker's engine sees exactly the unit's requests. So a Ray run's rollouts are bit-identical
on any number of workers of one machine type, after a lost worker, and after a killed and rerun driver; they equal
an in-process run of the same units. Against one engine sampling the whole request list they differ only as a
different batch layout does (the last float bits, rarely a near-tied token): each is still rollout k of its own
seed. A unit lost with its worker (killed process, dead node) is sent to another worker, and a replacement worker
is started while the cluster has room for one; with no worker left the rest fails as failed rollouts, which a
rerun retries.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from anchors.errors import AnchorsError
from anchors.rollouts.base import PrefixRequest, Rollout, Sampler, SamplingParams, rollout_seed

RAY_HINT = "the Ray backend needs the ray package: pip install 'anchors[ray]'"
# Two units queued per worker: it starts the next one as soon as one ends, while its results travel back.
IN_FLIGHT = 2
EMBED_CHUNK = 512  # sentences per embedding task
START_TIMEOUT_S = 600.0  # a worker loads its model before it answers; a large one from a slow disk takes minutes


class ClusterError(AnchorsError):
    """The Ray cluster cannot be used (ray not installed, no address, workers that disagree)."""


def connect(address: str, *, cpus: int | None = None) -> None:
    """Join a Ray cluster: 'local' starts one on this machine that listens on the loopback interface only (no
    dashboard, no usage report), 'auto' joins the running one (RAY_ADDRESS, or the one `ray start` left), anything
    else is a cluster address. A process already connected stays on its cluster."""
    if address == "local":
        # Read by ray when it is imported and by every process it starts: node address 127.0.0.1, every port
        # bound to loopback. Without it a local cluster listens on all interfaces, and anyone who can reach the
        # machine can run code on it.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = _ray()
    if ray.is_initialized():
        return
    options: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False, "configure_logging": True}
    try:
        if address == "local":
            _loopback_if_imported_early()
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise ClusterError(f"--ray {address}: cannot join a Ray cluster ({error}); start one with `ray start --head` "
                           "on the head node, or use --ray local for this machine alone") from None


@dataclass(frozen=True)
class SamplerSpec:
    """How a worker builds its sampler: `make_sampler(model, server_urls=…, **options)` in its own process, on
    node `node` (a Ray node id) when given."""

    model: str
    server_urls: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    node: str | None = None

    def build(self) -> Sampler:
        from anchors.rollouts.factory import make_sampler

        return make_sampler(self.model, server_urls=list(self.server_urls) or None, **dict(self.options))


def local_engines(model: str, *, workers: int | None = None, device: str | None = None, batch_size: int = 32,
                  **load_options: Any) -> RaySampler:
    """A local engine per GPU of the cluster (`workers` of them; default: every GPU), or on a cluster without
    GPUs (or with device 'cpu') one per node (or `workers`), sharing the free CPUs evenly as torch threads."""
    ray = _ray()
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    options = (("device", device), ("batch_size", batch_size), *sorted(load_options.items()))
    if gpus and (device is None or device.startswith("cuda")):
        count, threads, placement = workers or gpus, None, {"num_gpus": 1}
    else:  # the CPUs free now, shared evenly (a cluster that other jobs use keeps theirs)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        count = workers or len(nodes)
        threads = max(1, int(ray.available_resources().get("CPU", 1)) // count)
        placement = {}
    return RaySampler([SamplerSpec(model, options=options)] * count, rollouts_per_unit=batch_size, threads=threads,
                      actor_options=placement)


def server_clients(model: str, base_urls: Sequence[str], *, concurrency: int | None = None,
                   **client_options: Any) -> RaySampler:
    """A client of each server, as a worker: a loopback URL (127.0.0.1, localhost) names each node's own server,
    so it gets a worker on every node; any other URL one worker. Each worker keeps `concurrency` calls in flight."""
    from urllib.parse import urlparse

    from anchors.rollouts.plan import ROLLOUT_BLOCK
    from anchors.rollouts.server import DEFAULT_CONCURRENCY

    ray = _ray()
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    options = tuple(sorted({**client_options, "concurrency": concurrency}.items()))
    specs = []
    for url in base_urls:
        loopback = urlparse(url).hostname in ("127.0.0.1", "localhost", "::1")
        specs += [SamplerSpec(model, (url,), options, node) for node in (nodes if loopback else [None])]
    calls = concurrency or DEFAULT_CONCURRENCY[client_options.get("server_kind", "vllm")]
    # a unit of one block per call the client keeps in flight; the client threads nothing heavy: no CPU reserved
    return RaySampler(specs, rollouts_per_unit=calls * ROLLOUT_BLOCK, actor_options={"num_cpus": 0})


def work_units(requests: Sequence[PrefixRequest], rollouts_per_unit: int) -> list[list[int]]:
    """Positions of consecutive requests, up to `rollouts_per_unit` rollouts (`n`) a unit; a larger request is a
    unit alone. Depends on the requests' `n` only, never on which indices they ask for."""
    units: list[list[int]] = []
    size = 0
    for position, request in enumerate(requests):
        if units and size + request.n <= rollouts_per_unit:
            units[-1].append(position)
            size += request.n
        else:
            units.append([position])
            size = request.n
    return units


class RaySampler:
    """Implements `Sampler` on Ray actors, one per spec (see the module docstring)."""

    def __init__(self, specs: Sequence[SamplerSpec], *, rollouts_per_unit: int = 32, threads: int | None = None,
                 actor_options: dict[str, Any] | None = None, replacements: int | None = None) -> None:
        """`threads`: torch threads in each worker (the same count on every worker keeps runs bit-identical).
        `actor_options`: Ray's (num_gpus, num_cpus, resources, scheduling_strategy …); `replacements`: workers
        started in place of lost ones (default: as many as there are specs)."""
        if not specs:
            raise ValueError("give at least one sampler spec")
        self.rollouts_per_unit = rollouts_per_unit
        self._pool = _Pool(list(specs), threads, actor_options or {},
                           len(specs) if replacements is None else replacements)
        first = self._pool.described[0]
        self._identity: str = first["identity"]
        self.template = first["template"]
        self._worker_provenance: dict[str, Any] = first["provenance"]

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def workers(self) -> list[dict[str, Any]]:
        """Each live worker's pid, node and the number of tasks it finished."""
        return self._pool.live()

    @property
    def lost(self) -> int:
        """Workers lost so far (their units were sent to others)."""
        return self._pool.lost

    def provenance(self) -> dict[str, object]:
        import ray

        return {**self._worker_provenance, "cluster": {"ray": ray.__version__, "workers": len(self._pool.slots),
                                                       "rollouts_per_unit": self.rollouts_per_unit}}

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        units = [[requests[i] for i in unit] for unit in work_units(requests, self.rollouts_per_unit)]
        units = [unit for unit in units if any(r.wanted_indices() for r in unit)]
        done: set[int] = set()
        try:
            for position, rollouts in self._pool.run("sample", [(unit, params) for unit in units]):
                done.add(position)
                yield from rollouts
        except _NoWorkers as error:
            for position, unit in enumerate(units):
                if position not in done:
                    yield from _failed(unit, str(error))

    def embed(self, model: str, device: str | None, texts: list[str]) -> list[Any]:
        """Vectors of `texts`, embedded by the workers in chunks (see `RayEmbedder`, which caches them)."""
        chunks = [texts[i:i + EMBED_CHUNK] for i in range(0, len(texts), EMBED_CHUNK)]
        out: list[Any] = [None] * len(chunks)
        for position, vectors in self._pool.run("embed", [(model, device, chunk) for chunk in chunks]):
            out[position] = vectors
        return out

    def close(self) -> None:
        """Stop the workers (a finished command's actors otherwise live until the driver exits)."""
        self._pool.close()


def ray_embedder(sampler: RaySampler, model: str = "all-MiniLM-L6-v2", *, device: str | None = None) -> Any:
    """A `SentenceEmbedder` whose encoding runs on `sampler`'s workers (on `device` there); texts embedded before
    on this machine come from its cache, as always (same identity, same cache folder)."""
    import numpy as np

    from anchors.models.embeddings import SentenceEmbedder

    def encode(texts: list[str]) -> Any:
        return np.concatenate(sampler.embed(model, device, texts)).astype(np.float32)

    return SentenceEmbedder(model, encode=encode)


class _Worker:
    """The actor: one sampler (and, when asked, one embedder) in its own process."""

    def __init__(self, spec: SamplerSpec, threads: int | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.embedders: dict[tuple[str, str | None], Any] = {}
        self.failure: BaseException | None = None
        try:
            self.sampler = spec.build()
        except Exception as error:  # raised again by describe(): the driver sees the in-process error
            self.failure = error

    def describe(self) -> dict[str, Any]:
        import ray

        if self.failure is not None:
            raise self.failure
        own = getattr(self.sampler, "provenance", None)
        handle = getattr(self.sampler, "handle", None)
        return {"identity": self.sampler.identity, "provenance": dict(own()) if callable(own) else {},
                "template": handle.template if handle is not None else None, "pid": os.getpid(),
                "node": ray.get_runtime_context().get_node_id()}

    def sample(self, requests: list[PrefixRequest], params: SamplingParams) -> list[Rollout]:
        return list(self.sampler.sample(requests, params))

    def embed(self, model: str, device: str | None, texts: list[str]) -> Any:
        from anchors.models.embeddings import SentenceEmbedder

        key = (model, device)
        if key not in self.embedders:
            self.embedders[key] = SentenceEmbedder(model, device=device or "cpu", cache=False)
        return self.embedders[key].embed(texts)


class _NoWorkers(Exception):
    pass


@dataclass
class _Slot:
    spec: SamplerSpec
    actor: Any
    ready: Any = None  # the describe() call of a worker still starting
    described: dict[str, Any] | None = None
    load: int = 0
    done: int = 0  # tasks finished
    alive: bool = True


@dataclass
class _Pool:
    """The workers, and the loop that sends them tasks and sends a lost worker's tasks to another."""

    specs: list[SamplerSpec]
    threads: int | None
    actor_options: dict[str, Any]
    replacements: int
    slots: list[_Slot] = field(default_factory=list)
    lost: int = 0

    def __post_init__(self) -> None:
        import ray

        options = {"num_cpus": self.threads or 1, "max_restarts": 0, **self.actor_options}
        self._actor_class = ray.remote(**options)(_Worker)
        self.slots = [self._start(spec) for spec in self.specs]
        try:
            described = ray.get([slot.ready for slot in self.slots], timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise ClusterError(f"{len(self.slots)} Ray worker(s) asking for {options} did not all start within "
                               f"{START_TIMEOUT_S:.0f} s: the cluster has room for fewer (see `ray status`); ask for "
                               "fewer workers") from None
        except ray.exceptions.RayTaskError as error:
            self.close()
            raise error.as_instanceof_cause() from None
        for slot, description in zip(self.slots, described):
            slot.described, slot.ready = description, None
        identities = sorted({d["identity"] for d in described})
        if len(identities) > 1:
            self.close()
            raise ClusterError(f"the Ray workers do not sample the same way ({', '.join(identities)}): mixed devices, "
                               "dtypes or model files would mix rollouts of different samplers; give every worker "
                               "the same kind of GPU (or CPU) and model")

    @property
    def described(self) -> list[dict[str, Any]]:
        return [slot.described for slot in self.slots if slot.described is not None]

    def live(self) -> list[dict[str, Any]]:
        return [{"pid": slot.described["pid"], "node": slot.described["node"], "tasks": slot.done}
                for slot in self.slots if slot.alive and slot.described is not None]

    def _start(self, spec: SamplerSpec) -> _Slot:
        actor_class = self._actor_class
        if spec.node is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            actor_class = actor_class.options(scheduling_strategy=NodeAffinitySchedulingStrategy(spec.node, soft=False))
        handle = actor_class.remote(spec, self.threads)
        return _Slot(spec, handle, ready=handle.describe.remote())

    def run(self, method: str, payloads: list[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        """(position, result) of each payload as it finishes, `method` run on some worker."""
        import ray

        pending = deque(range(len(payloads)))
        flying: dict[Any, tuple[_Slot, int | None]] = {}  # None: a replacement's readiness call
        for slot in self.slots:
            if slot.ready is not None:
                flying[slot.ready] = (slot, None)
        try:
            while pending or any(position is not None for _, position in flying.values()):
                self._submit(method, payloads, pending, flying)
                if not flying:
                    raise _NoWorkers(f"no Ray worker left ({self.lost} lost); rerun to sample the rest")
                starting = all(position is None for _, position in flying.values())
                ready, _ = ray.wait(list(flying), num_returns=1, timeout=START_TIMEOUT_S if starting else None)
                if not ready:  # only replacements left, and the cluster has no room for them
                    raise _NoWorkers(f"no Ray worker left ({self.lost} lost, no replacement could start within "
                                     f"{START_TIMEOUT_S:.0f} s); rerun to sample the rest")
                (ref,) = ready
                slot, position = flying.pop(ref)
                result = self._result(ref, slot, position, pending, flying)
                if position is not None and result is not _LOST:
                    slot.load -= 1
                    slot.done += 1
                    yield position, result
        finally:
            for ref, (_, position) in flying.items():
                if position is not None:
                    ray.cancel(ref)

    def _submit(self, method: str, payloads: list[tuple[Any, ...]], pending: deque[int],
                flying: dict[Any, tuple[_Slot, int | None]]) -> None:
        for slot in self.slots:
            while pending and slot.alive and slot.ready is None and slot.load < IN_FLIGHT:
                position = pending.popleft()
                flying[getattr(slot.actor, method).remote(*payloads[position])] = (slot, position)
                slot.load += 1

    def _result(self, ref: Any, slot: _Slot, position: int | None, pending: deque[int],
                flying: dict[Any, tuple[_Slot, int | None]]) -> Any:
        import ray

        try:
            value = ray.get(ref)
        except _lost_worker_errors() as error:
            self._lose(slot, error, flying)
            if position is not None:
                pending.appendleft(position)
            return _LOST
        except ray.exceptions.RayTaskError as error:  # the sampler itself failed: the same error as in-process
            if position is None:  # a replacement that cannot build its sampler
                self._lose(slot, error, flying, replace=False)
                return _LOST
            raise error.as_instanceof_cause() from None
        if position is None:  # a replacement is up
            slot.ready, slot.described = None, value
            if value["identity"] != self.described[0]["identity"]:
                self._lose(slot, ClusterError(f"samples as {value['identity']}"), flying)
        return value

    def _lose(self, slot: _Slot, error: BaseException, flying: dict[Any, tuple[_Slot, int | None]], *,
              replace: bool = True) -> None:
        if not slot.alive:
            return
        slot.alive = False
        self.lost += 1
        if replace and self.replacements > 0:
            self.replacements -= 1
            replacement = self._start(slot.spec)
            self.slots.append(replacement)
            flying[replacement.ready] = (replacement, None)

    def close(self) -> None:
        import ray

        for slot in self.slots:
            if slot.alive:
                ray.kill(slot.actor)
            slot.alive = False


_LOST = object()


def _lost_worker_errors() -> tuple[type[BaseException], ...]:
    from ray import exceptions

    return (exceptions.RayActorError, exceptions.WorkerCrashedError, exceptions.NodeDiedError,
            exceptions.ObjectLostError, exceptions.ActorUnschedulableError)


def _failed(unit: list[PrefixRequest], message: str) -> Iterator[Rollout]:
    for request in unit:
        for k in request.wanted_indices():
            yield Rollout(key=request.key, index=k, seed=rollout_seed(request.seed, k), text="", finish_reason="error",
                          error=message)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(RAY_HINT) from None
    return ray


def _loopback_if_imported_early() -> None:
    """ray reads the environment when it is first imported; if that was before `connect('local')` set it (e.g. a
    test that imported ray to skip without it), tell its address lookup what the environment now says."""
    try:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    except (ImportError, AttributeError):  # another ray version: its own default then
        pass
