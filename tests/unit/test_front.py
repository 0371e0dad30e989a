"""byoc_runtime.front: what the front (front_fast.py, tested in test_front_fast.py) and the
adapters share: which headers travel to the model, the label of an answer that came without
a type, model server errors as {"error", "status"} JSON, and an adapter's request made
over an aiohttp session (front.invoke)."""

from __future__ import annotations

import asyncio
import json

import pytest
from byoc_runtime.front import (
    Reply,
    Upstream,
    error_reply,
    forwarded_headers,
    invoke,
    label_untyped,
)
from multidict import CIMultiDict


def test_forwarded_headers_drop_exactly_the_hop_by_hop_ones():
    given = CIMultiDict({"Host": "h", "Content-Length": "3", "Content-Type": "a/b",
                         "Transfer-Encoding": "chunked", "Upgrade": "h2c", "Trailer": "x",
                         "Proxy-Authorization": "p", "Proxy-Authenticate": "p",
                         "Accept": "*/*", "X-Amzn-SageMaker-Custom-Attributes": "a=1",
                         "Authorization": "Bearer t"})
    assert forwarded_headers(given) == {"Accept": "*/*",
                                        "X-Amzn-SageMaker-Custom-Attributes": "a=1",
                                        "Authorization": "Bearer t"}


@pytest.mark.parametrize("body, expected", [
    (b'{"label": 7}', "application/json"),
    (b'  [1, 2]\n', "application/json"),
    (b"7", "text/plain; charset=utf-8"),
    ("caf\u00e9".encode(), "text/plain; charset=utf-8"),
    (b'{"unterminated": ', "text/plain; charset=utf-8"),
    (b"\x89PNG\r\n\x1a\n\x00\xff", "application/octet-stream"),
    (b"", "text/plain; charset=utf-8"),
])
def test_label_untyped_answers(body, expected):
    assert label_untyped(body) == expected


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


class _Adapter:
    address = ("127.0.0.1", 8081)

    def upstream(self, body, content_type, headers):
        return Upstream("/model", {**headers, "Content-Type": content_type}, body,
                        lambda status, headers, raw: Reply(status, raw, headers["X-Type"]))


class _Session:
    def post(self, url, data, headers):
        self.sent = (url, data, headers)
        session = self

        class Response:
            status = 201
            headers = {"X-Type": "text/plain"}

            async def __aenter__(self):
                return self

            async def __aexit__(self, *exc):
                return False

            async def read(self):
                return b"answer to " + session.sent[1]
        return Response()


def test_invoke_sends_the_adapters_request_and_reads_its_answer():
    session = _Session()
    reply = asyncio.run(invoke(_Adapter(), session, b"x", "a/b", {"X-Trace": "1"}))
    assert session.sent == ("http://127.0.0.1:8081/model", b"x",
                            {"X-Trace": "1", "Content-Type": "a/b"})
    assert (reply.status, reply.body, reply.content_type) == (201, b"answer to x", "text/plain")
