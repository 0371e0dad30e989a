"""byoc_runtime.front: the public /ping and /invocations, driven through aiohttp's test
server with a fake backend (no model server, no network beyond loopback)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from byoc_runtime import front
from byoc_runtime.front import CUSTOM_ATTRIBUTES, INFERENCE_ID, Front, Reply, error_reply
from byoc_runtime.settings import Settings
from multidict import CIMultiDict

LIMIT = 1024
SETTINGS = Settings(port=8080, safe_ports=None, workers=1, timeout_s=5,
                    max_payload_bytes=LIMIT, log_level="INFO",
                    accept_content_types=("image/png", "application/json"),
                    response_content_type="application/json")
JSON = {"Content-Type": "application/json"}
PREDICTION = b'{"label": 7}'


class FakeBackend:
    name = "fake"

    def __init__(self, ready=True, reply: Reply | None = None, delay: float = 0.0,
                 error: BaseException | None = None, ready_error: BaseException | None = None):
        self.is_ready = ready
        self.reply = reply or Reply(200, PREDICTION, "application/json")
        self.delay = delay
        self.error = error
        self.ready_error = ready_error
        self.calls: list[tuple[bytes, str, dict]] = []

    async def ready(self, session):
        if self.ready_error:
            raise self.ready_error
        return self.is_ready, "ready" if self.is_ready else "loading"

    async def invoke(self, session, body, content_type, headers):
        self.calls.append((body, content_type, dict(headers)))
        await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        return self.reply


@dataclasses.dataclass
class Result:
    status: int
    headers: CIMultiDict
    body: bytes

    def json(self):
        return json.loads(self.body)


def run(f: Front, scenario):
    """Serve f.app() on loopback and run `await scenario(client)`."""
    async def main():
        async with TestClient(TestServer(f.app())) as client:
            return await scenario(client)
    return asyncio.run(main())


async def fetch(client, method: str, path: str, **kwargs) -> Result:
    async with client.request(method, path, **kwargs) as response:
        return Result(response.status, CIMultiDict(response.headers), await response.read())


def call(f: Front, method: str, path: str, **kwargs) -> Result:
    return run(f, lambda client: fetch(client, method, path, **kwargs))


def invoke(backend=None, settings=SETTINGS, data=PREDICTION, headers=JSON) -> Result:
    return call(Front(settings, backend or FakeBackend()), "POST", "/invocations",
                data=data, headers=headers)


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
    monkeypatch.setattr(front, "PING_CACHE_S", -1.0)


# -- /ping ----------------------------------------------------------------------------------

def test_c04_ping_is_503_json_while_the_model_loads():
    result = call(Front(SETTINGS, FakeBackend(ready=False)), "GET", "/ping")
    assert_json_error(result, 503, "model not ready: loading")


def test_c04_ping_turns_200_once_the_backend_is_ready():
    backend = FakeBackend(ready=False)

    async def scenario(client):
        before = await fetch(client, "GET", "/ping")
        backend.is_ready = True
        return before, await fetch(client, "GET", "/ping")

    before, after = run(Front(SETTINGS, backend), scenario)
    assert (before.status, after.status) == (503, 200)


def test_c06_ping_is_503_once_the_backend_exited():
    f = Front(SETTINGS, FakeBackend(ready=True))
    f.backend_alive = False
    assert_json_error(call(f, "GET", "/ping"), 503, "fake has exited")


def test_c04_ping_is_503_when_the_backend_does_not_answer():
    backend = FakeBackend(ready_error=aiohttp.ClientConnectionError("refused"))
    result = call(Front(SETTINGS, backend), "GET", "/ping")
    assert_json_error(result, 503, "fake not answering: ClientConnectionError")


def test_c04_ping_answers_within_2s_when_the_backend_hangs():
    backend = FakeBackend()
    backend.ready = lambda session: asyncio.sleep(30)
    started = time.monotonic()
    result = call(Front(SETTINGS, backend), "GET", "/ping")
    assert result.status == 503 and time.monotonic() - started < 2


def test_c16_ready_pings_log_once_at_info(caplog):
    async def scenario(client):
        return [(await fetch(client, "GET", "/ping")).status for _ in range(3)]

    with caplog.at_level(logging.INFO, logger="byoc.front"):
        assert run(Front(SETTINGS, FakeBackend()), scenario) == [200, 200, 200]
    assert len([r for r in caplog.records if r.name == "byoc.front"]) == 1


# -- /invocations: the happy path and headers -----------------------------------------------

def test_invocation_forwards_body_and_content_type_and_returns_the_reply():
    backend = FakeBackend()
    result = invoke(backend, headers={"Content-Type": "application/json; charset=utf-8"})
    assert (result.status, result.body) == (200, PREDICTION)
    assert backend.calls == [(PREDICTION, "application/json; charset=utf-8", {})]


def test_c10_unknown_headers_are_ignored_and_not_forwarded():
    backend = FakeBackend()
    result = invoke(backend, headers={**JSON, "X-Unknown": "1", "X-Amzn-Other": "2"})
    assert result.status == 200 and backend.calls[0][2] == {}


def test_c10_custom_attributes_reach_the_backend_and_echo_when_it_sets_them():
    reply = Reply(200, PREDICTION, "application/json", {CUSTOM_ATTRIBUTES: "trace=1;x=2"})
    backend = FakeBackend(reply=reply)
    result = invoke(backend, headers={**JSON, CUSTOM_ATTRIBUTES: "trace=1"})
    assert backend.calls[0][2] == {CUSTOM_ATTRIBUTES: "trace=1"}
    assert result.headers[CUSTOM_ATTRIBUTES] == "trace=1;x=2"


def test_c10_custom_attributes_not_echoed_when_the_backend_does_not_set_them():
    result = invoke(FakeBackend(), headers={**JSON, CUSTOM_ATTRIBUTES: "trace=1"})
    assert result.status == 200 and CUSTOM_ATTRIBUTES not in result.headers


def test_c10_inference_id_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="byoc.front"):
        invoke(headers={**JSON, INFERENCE_ID: "req-42"})
    assert "invocation req-42" in caplog.text


def test_backend_error_reply_passes_through():
    reply = error_reply(400, b'{"code": 400, "type": "InvalidInput", "message": "bad shape"}')
    assert_json_error(invoke(FakeBackend(reply=reply)), 400, "bad shape")


# -- /invocations: Content-Type and Accept (C07) --------------------------------------------

def test_c07_unsupported_content_type_is_415_listing_the_supported_ones():
    backend = FakeBackend()
    body = assert_json_error(invoke(backend, headers={"Content-Type": "text/csv"}), 415,
                             "text/csv")
    assert body["supported"] == ["image/png", "application/json"]
    assert backend.calls == []


def test_c07_unacceptable_accept_is_406_listing_what_it_produces():
    result = invoke(headers={**JSON, "Accept": "text/csv"})
    assert assert_json_error(result, 406, "text/csv")["supported"] == ["application/json"]


@pytest.mark.parametrize("accept", ["*/*", "application/*", "application/json;q=0.9",
                                    "text/csv, application/json", "APPLICATION/JSON", None])
def test_c07_accept_that_admits_json_is_served(accept):
    headers = JSON if accept is None else {**JSON, "Accept": accept}
    assert invoke(headers=headers).status == 200


def test_c07_accept_with_q_0_refuses_json():
    assert invoke(headers={**JSON, "Accept": "application/json;q=0"}).status == 406


def test_c07_accept_with_q_0_0_refuses_json():
    assert invoke(headers={**JSON, "Accept": "application/json;q=0.0"}).status == 406


# -- /invocations: size, emptiness, failures ------------------------------------------------

def test_c09_body_at_the_limit_is_served():
    assert invoke(data=b"x" * LIMIT).status == 200


def test_c09_body_over_limit_gets_413_json():
    backend = FakeBackend()
    assert_json_error(invoke(backend, data=b"x" * (LIMIT + 1)), 413, str(LIMIT))
    assert backend.calls == []


def test_c09_chunked_body_over_limit_gets_413_json():
    async def chunks():
        for _ in range(4):
            yield b"x" * 512

    backend = FakeBackend()
    result = invoke(backend, data=chunks())
    assert_json_error(result, 413, f"larger than the {LIMIT} bytes this endpoint accepts")
    assert backend.calls == []


def test_c11_empty_body_is_400_json():
    assert_json_error(invoke(data=b""), 400, "empty request body")


def test_c08_slow_backend_gets_504_json_after_the_timeout():
    started = time.monotonic()
    result = invoke(FakeBackend(delay=10), settings=dataclasses.replace(SETTINGS, timeout_s=1))
    assert_json_error(result, 504, "within 1 s", "SAGEMAKER_MODEL_SERVER_TIMEOUT")
    assert time.monotonic() - started < 3


def test_unreachable_backend_is_503_json():
    result = invoke(FakeBackend(error=aiohttp.ClientConnectionError("refused")))
    assert_json_error(result, 503, "fake is not reachable")


@pytest.mark.parametrize("method, path, status", [("GET", "/invocations", 405),
                                                  ("GET", "/nowhere", 404)])
def test_c11_routing_errors_are_json(method, path, status):
    assert_json_error(call(Front(SETTINGS, FakeBackend()), method, path), status)


# -- error_reply ----------------------------------------------------------------------------

def body_of(reply: Reply) -> dict:
    assert reply.content_type == "application/json"
    return json.loads(reply.body)


def test_error_reply_normalises_torchserve_json():
    raw = b'{"code": 400, "type": "InvalidInput", "message": "image is not 8x8"}'
    reply = error_reply(400, raw)
    assert reply.status == 400
    assert body_of(reply) == {"error": "image is not 8x8", "status": 400}


def test_error_reply_prefers_an_error_field():
    assert body_of(error_reply(507, b'{"error": "CUDA out of memory", "message": "x"}')) == {
        "error": "CUDA out of memory", "status": 507}


def test_error_reply_keeps_plain_text():
    assert body_of(error_reply(500, b"  Worker died.\n")) == {"error": "Worker died.",
                                                              "status": 500}


def test_error_reply_for_an_empty_body_still_says_something():
    assert body_of(error_reply(502, b"")) == {"error": "model server error", "status": 502}


def test_error_reply_truncates_huge_bodies():
    assert len(body_of(error_reply(500, b"x" * 10_000))["error"]) == 2000
