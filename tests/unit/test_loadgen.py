"""byoc.loadgen against a tiny aiohttp server in this process (loopback only, no Docker):
the bounds hold, connections are kept alive, the loop is closed, errors are counted by
kind and never timed, and the probes see exactly the measured phase."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from aiohttp import web

from byoc import loadgen
from byoc.loadgen import Payload, StepResult

PAYLOADS = [Payload("application/json", b'{"n": 1}', expected="one"),
            Payload("application/json", b'{"n": 2}', expected="two")]


class Server:
    """Answers POST /invocations with the body's expected word; knobs for misbehaviour."""

    def __init__(self, delay_s: float = 0.0, fail_every: int = 0, slow_every: int = 0,
                 slow_s: float = 0.0, wrong_every: int = 0):
        self.delay_s, self.fail_every = delay_s, fail_every
        self.slow_every, self.slow_s, self.wrong_every = slow_every, slow_s, wrong_every
        self.count = 0
        self.wall_s = 0.0
        self.bodies: list[bytes] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.count += 1
        n = self.count
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.read()
            self.bodies.append(body)
            self.headers.append(dict(request.headers))
            delay = self.slow_s if self.slow_every and n % self.slow_every == 0 else self.delay_s
            if delay:
                await asyncio.sleep(delay)
            if self.fail_every and n % self.fail_every == 0:
                return web.Response(status=500, text="boom")
            word = {b'{"n": 1}': "one", b'{"n": 2}': "two"}[body]
            if self.wrong_every and n % self.wrong_every == 0:
                word = "wrong"
            return web.Response(text=word)
        finally:
            self.in_flight -= 1


def check_word(payload: Payload, status: int, body: bytes) -> str | None:
    if status != 200:
        return f"status {status}"
    return None if body.decode() == payload.expected else "wrong answer"


def run_against(server: Server, payloads=PAYLOADS, **kwargs) -> StepResult:
    async def main():
        app = web.Application()
        app.router.add_post("/invocations", server.handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        t0 = time.monotonic()
        try:
            return await loadgen.run_step_async(f"http://127.0.0.1:{port}/invocations",
                                                payloads, check=check_word, **kwargs)
        finally:
            server.wall_s = time.monotonic() - t0
            await runner.cleanup()

    return asyncio.run(main())


def test_stops_at_max_requests_and_keeps_connections_alive():
    server = Server()
    result = run_against(server, concurrency=4, duration_s=30, max_requests=200, warmup=20)
    assert (result.started, result.ok, result.errors) == (200, 200, 0)
    assert result.stopped_by == "max_requests"
    assert server.count == 220  # warm-up went to the server but is not counted
    assert len(result.latencies_s) == 200 and (result.latencies_s > 0).all()
    assert result.connections_opened <= 4  # one per client, reused across 220 requests
    assert result.throughput == pytest.approx(200 / result.elapsed_s)


def test_stops_at_duration():
    server = Server(delay_s=0.02)
    result = run_against(server, concurrency=2, duration_s=0.4, max_requests=1_000_000)
    assert result.stopped_by == "duration"
    assert result.elapsed_s < 0.4 + 0.2 and server.wall_s < 2
    # closed loop: at most 2 * 0.4 / 0.02 = 40 answers, and well above none
    assert 10 <= result.ok <= 42
    assert result.ok == result.started


def test_closed_loop_never_has_more_than_concurrency_in_flight():
    server = Server(delay_s=0.005)
    result = run_against(server, concurrency=3, duration_s=10, max_requests=60)
    assert server.max_in_flight <= 3
    assert result.ok == 60


def test_errors_are_counted_by_kind_and_not_timed():
    server = Server(fail_every=5, wrong_every=7)
    result = run_against(server, concurrency=2, duration_s=30, max_requests=70)
    assert result.started == 70
    assert result.ok + result.errors == 70
    assert result.error_kinds["status 500"] == 14
    assert result.error_kinds["wrong answer"] == 8  # 7, 14, ... 70 less the 500s at 35, 70
    assert len(result.latencies_s) == result.ok


def test_timeouts_are_errors_and_bound_the_step():
    server = Server(slow_every=3, slow_s=5.0)
    result = run_against(server, concurrency=2, duration_s=0.5, max_requests=1_000,
                         timeout_s=0.3)
    assert server.wall_s < 0.5 + 0.3 + 0.5  # duration + one timeout, never the 5 s answer
    assert result.error_kinds.get("timeout", 0) >= 1
    assert result.ok >= 1
    assert max(result.latencies_s) < 0.3


def test_refused_connection_is_an_error_not_a_hang():
    async def main():
        # a port that was just free: nothing listens there
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return await loadgen.run_step_async(f"http://127.0.0.1:{port}/x", PAYLOADS,
                                            concurrency=2, duration_s=0.3, max_requests=10,
                                            timeout_s=1)

    result = asyncio.run(main())
    assert result.ok == 0 and result.errors == 10
    assert all(kind.startswith("connection: ") for kind in result.error_kinds)
    assert result.percentile_ms(50) is None
    assert result.summary()["p99_ms"] is None


def test_probes_see_exactly_the_measured_phase():
    server = Server()
    seen = {}

    class CountingProbe:
        def start(self):
            seen["start"] = server.count

        def stop(self):
            seen["stop"] = server.count
            return {"requests": server.count - seen["start"]}

    result = run_against(server, concurrency=3, duration_s=30, max_requests=90, warmup=30,
                         probes={"server": CountingProbe()})
    assert seen == {"start": 30, "stop": 120}
    assert result.probes == {"server_requests": 90}
    assert result.summary()["server_requests"] == 90


def test_payloads_go_round_robin():
    server = Server()
    result = run_against(server, concurrency=1, duration_s=30, max_requests=10)
    assert result.ok == 10
    assert server.bodies == [PAYLOADS[0].body, PAYLOADS[1].body] * 5


def test_each_payload_sends_its_own_headers():
    server = Server()
    payloads = [Payload("application/json", b'{"n": 1}', "one",
                        headers=(("Accept", "application/json"), ("X-Sample", "a"))),
                PAYLOADS[1]]
    result = run_against(server, payloads, concurrency=1, duration_s=30, max_requests=4)
    assert result.ok == 4
    first, second = server.headers[0], server.headers[1]
    assert (first["Accept"], first["X-Sample"], first["Content-Type"]) == \
        ("application/json", "a", "application/json")
    assert "X-Sample" not in second and second["Content-Type"] == "application/json"


def test_percentiles_come_from_all_samples():
    latencies = np.linspace(0.001, 0.100, 100)
    result = StepResult(concurrency=1, started=100, ok=100, errors=0, error_kinds={},
                        elapsed_s=2.0, latencies_s=latencies, client_cpu_s=0.5,
                        connections_opened=1, warmup=0, stopped_by="duration")
    for p in (50, 90, 99):
        assert result.percentile_ms(p) == pytest.approx(np.percentile(latencies, p) * 1000)
    summary = result.summary()
    assert summary["throughput_rps"] == 50.0
    assert summary["client_cores"] == 0.25
    assert summary["p50_ms"] == pytest.approx(50.5)


@pytest.mark.parametrize("bad", [dict(concurrency=0), dict(max_requests=0),
                                 dict(duration_s=0)])
def test_refuses_unbounded_or_empty_steps(bad):
    kwargs = {"concurrency": 1, "duration_s": 1, "max_requests": 1, **bad}
    with pytest.raises(ValueError):
        loadgen.run_step("http://127.0.0.1:9/x", PAYLOADS, **kwargs)
    with pytest.raises(ValueError):
        loadgen.run_step("http://127.0.0.1:9/x", [], concurrency=1, duration_s=1,
                         max_requests=1)
