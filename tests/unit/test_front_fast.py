"""byoc_runtime.front_fast (uvloop + httptools): the public /ping and /invocations, on a
loopback port, in front of a fake model server (an aiohttp app on another loopback port)
that a fake adapter describes its requests to. The same behaviours as front.py's tests,
plus what the hand-written HTTP layer must get right: keep-alive, pipelining, Expect,
chunked bodies, malformed requests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import time

import aiohttp
import pytest
from aiohttp import web
from byoc_runtime import front_fast
from byoc_runtime.front import (
    CUSTOM_ATTRIBUTES,
    INFERENCE_ID,
    BackendFatal,
    ClientFault,
    Reply,
    Upstream,
    error_reply,
)
from byoc_runtime.front_fast import FastFront
from byoc_runtime.settings import Settings
from multidict import CIMultiDict

LIMIT = 1024
SETTINGS = Settings(port=0, safe_ports=None, workers=1, timeout_s=5, max_payload_bytes=LIMIT,
                    log_level="INFO", accept_content_types=("image/png", "application/json"))
JSON = {"Content-Type": "application/json"}
PREDICTION = b'{"label": 7}'


class FakeBackend:
    """Describes each request to the fake model server; remembers what it was asked."""

    name = "fake"

    def __init__(self, ready=True, takes=None, fault: ClientFault | None = None):
        self.is_ready = ready
        self.takes = takes
        self.fault = fault
        self.calls: list[tuple[bytes, str, dict]] = []
        self.address = ("127.0.0.1", 1)  # set to the fake server's port by serve()

    def supported_content_types(self, declared):
        if self.takes is None:
            return declared or None
        return tuple(dict.fromkeys((*declared, *self.takes)))

    async def ready(self, session):
        return self.is_ready, "ready" if self.is_ready else "loading"

    def upstream(self, body, content_type, headers):
        self.calls.append((body, content_type, dict(headers)))
        if self.fault:
            raise self.fault
        return Upstream("/model", {**headers, "Content-Type": content_type}, body, answer)


def answer(status, headers, raw) -> Reply:
    if status >= 400:
        return error_reply(status, raw)
    return Reply(status, raw, headers.get("X-Fake-Type", ""), headers)


@dataclasses.dataclass
class Model:
    """What the fake model server answers."""

    status: int = 200
    body: bytes = PREDICTION
    content_type: str = "application/json"
    headers: dict = dataclasses.field(default_factory=dict)
    delay: float = 0.0


@dataclasses.dataclass
class Result:
    status: int
    headers: CIMultiDict
    body: bytes

    def json(self):
        return json.loads(self.body)


def model_app(model: Model) -> web.Application:
    async def handle(request):
        await request.read()
        await asyncio.sleep(model.delay)
        return web.Response(status=model.status, body=model.body,
                            headers={"X-Fake-Type": model.content_type, **model.headers})

    app = web.Application()
    app.router.add_post("/model", handle)
    return app


@contextlib.asynccontextmanager
async def serving(backend, model: Model, settings=SETTINGS):
    runner = web.AppRunner(model_app(model))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    backend.address = ("127.0.0.1", site._server.sockets[0].getsockname()[1])
    front = FastFront(settings, backend)
    await front.start("127.0.0.1", 0)
    try:
        yield front, f"http://127.0.0.1:{front.server.port}"
    finally:
        await front.stop(1)
        await runner.cleanup()


def run(scenario, backend=None, model=None, settings=SETTINGS, alive=True):
    async def main():
        async with serving(backend or FakeBackend(), model or Model(), settings) as (f, url):
            f.backend_alive = alive
            async with aiohttp.ClientSession() as http:
                return await scenario(http, url, f)
    return asyncio.run(main())


async def fetch(http, method, url, **kwargs) -> Result:
    async with http.request(method, url, **kwargs) as response:
        return Result(response.status, CIMultiDict(response.headers), await response.read())


def invoke(backend=None, model=None, settings=SETTINGS, data=PREDICTION, headers=JSON) -> Result:
    skip = () if "Content-Type" in headers else ("Content-Type",)
    return run(lambda http, url, f: fetch(http, "POST", f"{url}/invocations", data=data,
                                          headers=headers, skip_auto_headers=skip),
               backend, model, settings)


def ping(backend=None, alive=True) -> Result:
    return run(lambda http, url, f: fetch(http, "GET", f"{url}/ping"), backend, alive=alive)


def assert_json_error(result: Result, status: int, *needles: str) -> dict:
    assert result.status == status
    assert result.headers["Content-Type"].startswith("application/json")
    body = result.json()
    assert body["status"] == status
    for needle in needles:
        assert needle in body["error"]
    return body


@pytest.fixture(autouse=True)
def no_ping_cache(monkeypatch):
    monkeypatch.setattr(front_fast, "PING_CACHE_S", -1.0)


# -- /ping ----------------------------------------------------------------------------------

def test_c04_ping_is_503_json_while_the_model_loads_and_200_once_ready():
    assert_json_error(ping(FakeBackend(ready=False)), 503, "model not ready: loading")
    assert ping(FakeBackend()).status == 200


def test_c06_ping_is_503_once_the_backend_exited():
    assert_json_error(ping(alive=False), 503, "fake has exited")


def test_c04_ping_answers_within_2s_when_the_backend_hangs():
    backend = FakeBackend()
    backend.ready = lambda session: asyncio.sleep(30)
    started = time.monotonic()
    assert ping(backend).status == 503 and time.monotonic() - started < 2


def test_c16_ready_pings_log_once_at_info(caplog):
    async def scenario(http, url, f):
        return [(await fetch(http, "GET", f"{url}/ping")).status for _ in range(3)]

    with caplog.at_level(logging.INFO, logger="byoc.front"):
        assert run(scenario) == [200, 200, 200]
    assert len([r for r in caplog.records if r.name == "byoc.front"]) == 1


# -- /invocations ---------------------------------------------------------------------------

def test_invocation_forwards_body_content_type_and_end_to_end_headers():
    backend = FakeBackend()
    result = invoke(backend, headers={"Content-Type": "application/json; charset=utf-8",
                                      "X-Unknown": "1", "Connection": "keep-alive", "TE": "x"})
    assert (result.status, result.body) == (200, PREDICTION)
    assert result.headers["Content-Type"] == "application/json"
    body, content_type, headers = backend.calls[0]
    assert (body, content_type) == (PREDICTION, "application/json; charset=utf-8")
    assert headers["X-Unknown"] == "1"
    assert not {k.lower() for k in headers} & {"connection", "te", "host", "content-length",
                                                "content-type"}


def test_c10_custom_attributes_echo_only_when_the_model_sets_them():
    sent = {**JSON, CUSTOM_ATTRIBUTES: "trace=1"}
    assert CUSTOM_ATTRIBUTES not in invoke(headers=sent).headers
    model = Model(headers={CUSTOM_ATTRIBUTES: "trace=1;x=2"})
    assert invoke(model=model, headers=sent).headers[CUSTOM_ATTRIBUTES] == "trace=1;x=2"


def test_c10_inference_id_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="byoc.front"):
        invoke(headers={**JSON, INFERENCE_ID: "req-42"})
    assert "invocation req-42" in caplog.text


def test_model_errors_are_normalised_json():
    model = Model(status=400, body=b'{"code": 400, "message": "bad shape"}')
    assert_json_error(invoke(model=model), 400, "bad shape")


def test_c07_unsupported_content_type_is_415_listing_the_supported_ones():
    backend = FakeBackend()
    body = assert_json_error(invoke(backend, headers={"Content-Type": "text/csv"}), 415,
                             "text/csv")
    assert body["supported"] == ["image/png", "application/json"] and backend.calls == []
    assert assert_json_error(invoke(headers={}), 415, "(none)")


def test_c07_no_declared_types_serves_any_type():
    settings = dataclasses.replace(SETTINGS, accept_content_types=())
    assert invoke(settings=settings, headers={"Content-Type": "text/csv"}).status == 200


@pytest.mark.parametrize("accept, status", [
    ("text/csv", 406), ("application/*", 200), ("*/*;q=0.5", 200), ("*/*", 200),
    ("text/csv, application/json", 200), ("APPLICATION/JSON", 200),
    ("application/json;q=0", 406), ("application/json;q=0.0", 406)])
def test_c07_accept_is_checked_against_the_answers_type(accept, status):
    result = invoke(headers={**JSON, "Accept": accept})
    assert result.status == status
    if status == 406:
        assert assert_json_error(result, 406)["supported"] == ["application/json"]


def test_c07_an_untyped_answer_goes_out_labelled():
    result = invoke(model=Model(body=b"7", content_type=""))
    assert result.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_a_typed_answer_keeps_its_type_and_json_is_labelled_json():
    assert invoke(model=Model(body=b"[1]", content_type="application/x-custom")).headers[
        "Content-Type"] == "application/x-custom"
    assert invoke(model=Model(body=b"[0.1, 0.9]", content_type="")).headers[
        "Content-Type"] == "application/json"


def test_c07_a_declared_wildcard_type_admits_its_subtypes():
    settings = dataclasses.replace(SETTINGS, accept_content_types=("image/*",
                                                                   "application/json"))
    assert invoke(settings=settings, headers={"Content-Type": "image/png"}).status == 200
    refused = invoke(settings=settings, headers={"Content-Type": "text/plain"})
    assert_json_error(refused, 415, "text/plain")


class DyingBackend(FakeBackend):
    def upstream(self, body, content_type, headers):
        raise BackendFatal("stub 'm_0_0' is not healthy")


def test_c06_a_fatal_backend_answers_503_and_tells_the_supervisor():
    """A server that cannot serve again: that request 503 JSON, /ping 503, and the
    supervisor's fatal event set (serve then exits 1 so SageMaker replaces it)."""
    async def scenario(http, url, front):
        answered = await fetch(http, "POST", f"{url}/invocations", data=PREDICTION,
                               headers=JSON)
        pinged = await fetch(http, "GET", f"{url}/ping")
        return answered, pinged, front.fatal.is_set(), front.fatal_reason

    answered, pinged, fatal, reason = run(scenario, DyingBackend())
    assert_json_error(answered, 503, "not healthy")
    assert_json_error(pinged, 503)
    assert fatal and "not healthy" in reason


def test_c07_error_answers_are_not_turned_into_406():
    model = Model(status=422, body=b"bad digit")
    assert_json_error(invoke(model=model, headers={**JSON, "Accept": "image/png"}), 422)


def test_c09_body_at_the_limit_is_served_and_over_it_413():
    assert invoke(data=b"x" * LIMIT).status == 200
    backend = FakeBackend()
    assert_json_error(invoke(backend, data=b"x" * (LIMIT + 1)), 413, str(LIMIT))
    assert backend.calls == []


def test_c09_chunked_body_over_limit_gets_413_json():
    async def chunks():
        for _ in range(4):
            yield b"x" * 512

    backend = FakeBackend()
    assert_json_error(invoke(backend, data=chunks()), 413, "SAGEMAKER_MAX_PAYLOAD_IN_MB")
    assert backend.calls == []


def test_c09_c29_the_servers_own_cap_wins_when_lower_and_is_named():
    backend = FakeBackend()
    backend.max_request_bytes = 100
    body = assert_json_error(invoke(backend, data=b"x" * 101), 413, "fake's own request limit")
    assert "100" in body["error"] and backend.calls == []
    assert invoke(backend, data=b"x" * 100).status == 200


def test_c11_empty_body_is_400_json():
    assert_json_error(invoke(data=b""), 400, "empty request body")


def test_c08_slow_model_gets_504_json_after_the_timeout():
    async def scenario(http, url, f):
        started = time.monotonic()
        result = await fetch(http, "POST", f"{url}/invocations", data=b"x", headers=JSON)
        return result, time.monotonic() - started

    result, took = run(scenario, model=Model(delay=3),
                       settings=dataclasses.replace(SETTINGS, timeout_s=1))
    assert_json_error(result, 504, "within 1 s", "SAGEMAKER_MODEL_SERVER_TIMEOUT")
    assert took < 2.5


def test_c11_client_fault_from_the_adapter_is_its_status_with_its_fields():
    fault = ClientFault("takes KServe v2 only", status=415, supported=["application/json"])
    body = assert_json_error(invoke(FakeBackend(fault=fault)), 415, "KServe v2")
    assert body["supported"] == ["application/json"]


def test_c11_the_front_keeps_serving_after_a_client_fault():
    backend = FakeBackend(fault=ClientFault("bad"))

    async def scenario(http, url, f):
        first = await fetch(http, "POST", f"{url}/invocations", data=b"x", headers=JSON)
        backend.fault = None
        second = await fetch(http, "POST", f"{url}/invocations", data=b"x", headers=JSON)
        return first.status, second.status

    assert run(scenario, backend) == (400, 200)


def test_unreachable_model_server_is_503_json():
    async def scenario(http, url, f):
        f.pool.port = _closed_port()
        return await fetch(http, "POST", f"{url}/invocations", data=b"x", headers=JSON)

    assert_json_error(run(scenario), 503, "fake is not reachable")


@pytest.mark.parametrize("method, path, status", [("GET", "/invocations", 405),
                                                  ("GET", "/nowhere", 404)])
def test_c11_routing_errors_are_json(method, path, status):
    result = run(lambda http, url, f: fetch(http, method, f"{url}{path}"))
    assert_json_error(result, status)


# -- the HTTP layer -------------------------------------------------------------------------

def raw_exchange(data: bytes, settings=SETTINGS, expect_answers: int = 1) -> bytes:
    async def scenario(http, url, f):
        reader, writer = await asyncio.open_connection("127.0.0.1", f.server.port)
        writer.write(data)
        got = b""
        while got.count(b"HTTP/1.1 ") < expect_answers or not got.endswith((b"}", b"{}")):
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            got += chunk
        writer.close()
        return got
    return run(scenario, settings=settings)


def post(body: bytes, extra: str = "") -> bytes:
    return (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_pipelined_requests_are_answered_in_order_on_one_connection():
    got = raw_exchange(post(b'{"a": 1}') + b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
                       + post(b'{"b": 2}'), expect_answers=3)
    assert got.count(b"HTTP/1.1 200 OK") == 3
    assert got.index(PREDICTION) < got.index(b"\r\n\r\n{}")


def test_expect_100_continue_gets_its_interim_answer():
    got = raw_exchange(post(PREDICTION, "Expect: 100-continue\r\n"), expect_answers=2)
    assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_malformed_http_is_400_json_and_the_connection_closes():
    got = raw_exchange(b"NOT HTTP AT ALL\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400 ") and b'"status": 400' in got
    assert b"Connection: close" in got


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
