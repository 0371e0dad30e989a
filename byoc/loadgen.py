"""A closed-loop HTTP load generator, correct under load and bounded.

`concurrency` workers share one aiohttp session with keep-alive connections (at most one
per worker). Each worker sends a request, waits for the whole answer, checks it, and only
then sends the next: a closed loop, so the offered load adapts to the server and latency
never includes time a request spent waiting in the client for a free connection.

A step stops starting requests once `max_requests` have been started OR `duration_s` has
passed, whichever comes first; requests in flight then finish (each bounded by
`timeout_s`), so a step never runs longer than duration_s + timeout_s. Warm-up requests
go over the same connections before the measured phase and are not counted.

Every completed request is one sample: latencies are kept raw (percentiles come from all
of them, not a histogram), and errors (a status other than 200, a wrong answer, a timeout,
a broken connection) are counted by kind, never mixed into the latencies.

The client runs in this process, on one thread (one event loop): its CPU time is measured
over the measured phase, so a report can say when the client, not the server, was the
limit (on a 2-core machine they share the cores)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

import aiohttp
import numpy as np

PERCENTILES = (50, 90, 99)
DEFAULT_TIMEOUT_S = 30.0


@dataclasses.dataclass(frozen=True)
class Payload:
    """One request body, and what a correct answer must say about it."""

    content_type: str
    body: bytes
    expected: object = None  # handed to the check; None: any 200 is correct
    headers: tuple[tuple[str, str], ...] = ()  # sent besides Content-Type (Accept ...)

    def request_headers(self) -> dict[str, str]:
        return {**dict(self.headers), "Content-Type": self.content_type}


# check(payload, status, body) -> None when correct, else a short error kind.
Check = Callable[[Payload, int, bytes], "str | None"]


def status_200(payload: Payload, status: int, body: bytes) -> str | None:
    return None if status == 200 else f"status {status}"


class Probe(Protocol):
    """Something measured over exactly the measured phase (server CPU, GPU, ...)."""

    def start(self) -> None: ...

    def stop(self) -> dict: ...


@dataclasses.dataclass
class StepResult:
    concurrency: int
    started: int  # requests started in the measured phase
    ok: int
    errors: int
    error_kinds: dict[str, int]
    elapsed_s: float  # first request sent -> last answer read
    latencies_s: np.ndarray  # of the correct answers, in completion order
    client_cpu_s: float  # this process's CPU time over the measured phase
    connections_opened: int  # TCP connections over warm-up and measured phase
    warmup: int
    stopped_by: str  # "max_requests" or "duration"
    probes: dict = dataclasses.field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Correct answers per second."""
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, p: float) -> float | None:
        if not len(self.latencies_s):
            return None
        return float(np.percentile(self.latencies_s, p)) * 1000

    def mean_ms(self) -> float | None:
        return float(self.latencies_s.mean()) * 1000 if len(self.latencies_s) else None

    def summary(self) -> dict:
        """Everything but the raw samples, rounded for people."""
        out = {
            "concurrency": self.concurrency, "started": self.started, "ok": self.ok,
            "errors": self.errors, "error_kinds": dict(self.error_kinds),
            "elapsed_s": round(self.elapsed_s, 4), "throughput_rps": round(self.throughput, 2),
            "client_cpu_s": round(self.client_cpu_s, 4),
            "client_cores": round(self.client_cores, 3),
            "connections_opened": self.connections_opened, "warmup": self.warmup,
            "stopped_by": self.stopped_by,
            "mean_ms": _round(self.mean_ms()),
        }
        for p in PERCENTILES:
            out[f"p{p}_ms"] = _round(self.percentile_ms(p))
        out.update(self.probes)
        return out


def _round(value: float | None, places: int = 3) -> float | None:
    return None if value is None else round(value, places)


class _Phase:
    """The shared state of one phase: the request budget and the samples."""

    def __init__(self, max_requests: int, deadline: float):
        self.max_requests = max_requests
        self.deadline = deadline
        self.started = 0
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.stopped_by = "max_requests"
        self.last_done = 0.0

    def take(self) -> int | None:
        """The index of the next request to send, or None when the budget is spent."""
        if self.started >= self.max_requests:
            return None
        if time.perf_counter() >= self.deadline:
            self.stopped_by = "duration"
            return None
        self.started += 1
        return self.started - 1


async def _worker(session: aiohttp.ClientSession, url: str, payloads: Sequence[Payload],
                  check: Check, phase: _Phase, offset: int) -> None:
    while (index := phase.take()) is not None:
        payload = payloads[(index + offset) % len(payloads)]
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=payload.body,
                                    headers=payload.request_headers()) as response:
                body = await response.read()
                status = response.status
        except asyncio.TimeoutError:
            phase.errors["timeout"] += 1
            phase.last_done = time.perf_counter()
            continue
        except aiohttp.ClientError as exc:
            phase.errors[f"connection: {type(exc).__name__}"] += 1
            phase.last_done = time.perf_counter()
            continue
        t1 = time.perf_counter()
        phase.last_done = t1
        problem = check(payload, status, body)
        if problem is None:
            phase.latencies.append(t1 - t0)
        else:
            phase.errors[problem] += 1


async def _run_phase(session, url, payloads, check, concurrency, max_requests,
                     duration_s, offset=0) -> tuple[_Phase, float]:
    t0 = time.perf_counter()
    phase = _Phase(max_requests, t0 + duration_s)
    await asyncio.gather(*(_worker(session, url, payloads, check, phase, offset + i)
                           for i in range(concurrency)))
    return phase, (phase.last_done or time.perf_counter()) - t0


async def run_step_async(url: str, payloads: Sequence[Payload], *, concurrency: int,
                         duration_s: float, max_requests: int, warmup: int = 0,
                         timeout_s: float = DEFAULT_TIMEOUT_S, check: Check = status_200,
                         probes: dict[str, Probe] | None = None) -> StepResult:
    """One load step: warm-up, then the measured phase, on the same connections."""
    if concurrency < 1 or max_requests < 1 or duration_s <= 0:
        raise ValueError("concurrency and max_requests must be >= 1 and duration_s > 0")
    if not payloads:
        raise ValueError("no payloads to send")
    opened = 0

    async def on_connection(session, context, params) -> None:
        nonlocal opened
        opened += 1

    tracing = aiohttp.TraceConfig()
    tracing.on_connection_create_end.append(on_connection)
    # One connection per worker, kept alive between requests (aiohttp's default).
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency,
                                     force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     trace_configs=[tracing],
                                     auto_decompress=False) as session:
        if warmup:
            await _run_phase(session, url, payloads, check, concurrency, warmup,
                             max(duration_s, timeout_s))
        for probe in (probes or {}).values():
            probe.start()
        cpu0 = time.process_time()
        phase, elapsed = await _run_phase(session, url, payloads, check, concurrency,
                                          max_requests, duration_s, offset=warmup)
        client_cpu = time.process_time() - cpu0
        measured = {name: probe.stop() for name, probe in (probes or {}).items()}
    flat: dict = {}
    for name, values in measured.items():
        flat.update({f"{name}_{k}": v for k, v in values.items()})
    return StepResult(
        concurrency=concurrency, started=phase.started, ok=len(phase.latencies),
        errors=sum(phase.errors.values()), error_kinds=dict(phase.errors), elapsed_s=elapsed,
        latencies_s=np.asarray(phase.latencies, dtype=np.float64), client_cpu_s=client_cpu,
        connections_opened=opened, warmup=warmup, stopped_by=phase.stopped_by, probes=flat)


def run_step(url: str, payloads: Sequence[Payload], **kwargs) -> StepResult:
    """run_step_async on a fresh event loop (for callers without one)."""
    return asyncio.run(run_step_async(url, payloads, **kwargs))
