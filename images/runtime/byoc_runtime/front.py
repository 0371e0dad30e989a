"""What the front (front_fast.py) and the model server adapters share: the adapter's
description of one request to its server (Upstream) and of the answer (Reply), a client
fault (ClientFault: a 4xx with its fields), and the HTTP rules both sides apply (which
headers travel, Accept, the label of an untyped answer, error bodies as JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

from aiohttp import ClientSession

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"


class BackendFatal(RuntimeError):
    """The server behind cannot serve again (a stub that died for good, a model that never
    loads): the front answers 503 and the supervisor stops the container, exit 1, so
    SageMaker replaces it (C04, C06)."""


class ClientFault(ValueError):
    """A backend adapter's verdict that the request itself is wrong: a 4xx (400 unless
    said) with the message and any extra fields, such as the supported types."""

    def __init__(self, message: str, status: int = 400, **extra):
        super().__init__(message)
        self.status = status
        self.extra = extra


class Reply:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int, body: bytes, content_type: str, headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


class Upstream:
    """One request to the model server, as the adapter describes it (the front sends it
    over its own keep-alive connections), and how its answer becomes the Reply:
    answer(status, headers, body), which may raise ClientFault."""

    __slots__ = ("path", "headers", "body", "answer")

    def __init__(self, path: str, headers: dict[str, str], body: bytes,
                 answer: Callable[..., Reply]):
        self.path = path
        self.headers = headers
        self.body = body
        self.answer = answer


class Backend(Protocol):
    """What the front needs from a model server adapter."""

    name: str
    address: tuple[str, int]  # the server's HTTP on loopback

    def supported_content_types(self, declared: tuple[str, ...]) -> tuple[str, ...] | None:
        """Request types the model takes (None: any); declared is the model's own list."""

    async def ready(self, session: ClientSession) -> tuple[bool, str]: ...

    def upstream(self, body: bytes, content_type: str, headers: dict[str, str]) -> Upstream:
        """The /invocations request for the server (raises ClientFault for a bad one)."""


async def invoke(backend: Backend, session: ClientSession, body: bytes, content_type: str,
                 headers: dict[str, str]) -> Reply:
    """The adapter's request made over an aiohttp session (tests and tools; the front
    sends Upstream over its own pool)."""
    call = backend.upstream(body, content_type, headers)
    host, port = backend.address
    async with session.post(f"http://{host}:{port}{call.path}", data=call.body,
                            headers=call.headers) as response:
        return call.answer(response.status, response.headers, await response.read())


# Connection-level headers stay with each hop (RFC 9110 7.6.1); the rest reach the model.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade", "host",
                        "content-length", "content-type", "expect"})


def forwarded_headers(headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


def label_untyped(body: bytes) -> str:
    """The Content-Type of an answer the model sent without one (TorchServe 0.12 sends
    none unless the handler sets it): JSON if it reads as JSON, text if UTF-8, else bytes.
    One rule for both servers, so the same handler answers alike on each."""
    head = body[:1].lstrip() or body.lstrip()[:1]
    tail = body.rstrip()[-1:]
    if (head, tail) in ((b"{", b"}"), (b"[", b"]")):
        return "application/json"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def accepts(accept_header: str | None, offered: str) -> bool:
    """Does an Accept header admit the one type we produce? Missing means anything."""
    if not accept_header or not accept_header.strip():
        return True
    major = offered.split("/", 1)[0]
    for part in accept_header.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        if _quality(params) <= 0:
            continue  # q=0 means "not this one"
        if kind.lower() in ("*/*", f"{major}/*", offered):
            return True
    return False


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def error_reply(status: int, raw: bytes) -> Reply:
    """Normalise a model server's error body to {"error", "status"} JSON."""
    message = raw.decode(errors="replace").strip()
    try:
        parsed = json.loads(message)
        if isinstance(parsed, dict):
            message = str(parsed.get("error") or parsed.get("message") or parsed)
    except ValueError:
        pass
    body = json.dumps({"error": message[:2000] or "model server error", "status": status})
    return Reply(status, body.encode(), "application/json")
