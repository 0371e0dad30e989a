"""The SageMaker front: the only thing listening on the public port.

It answers /ping honestly (200 only when the server behind it can answer),
checks Content-Type, Accept and size before the server sees a request, turns
every failure into a JSON error with a 4xx for client faults, and forwards the
rest to the model server on loopback, with a deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Protocol

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

from .settings import Settings

log = logging.getLogger("byoc.front")

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
PING_CACHE_S = 0.5


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


class Backend(Protocol):
    """What the front needs from a model server adapter."""

    name: str

    def supported_content_types(self, declared: tuple[str, ...]) -> tuple[str, ...] | None:
        """Request types the model takes (None: any); declared is the model's own list."""

    async def ready(self, session: ClientSession) -> tuple[bool, str]: ...

    async def invoke(self, session: ClientSession, body: bytes, content_type: str,
                     headers: dict[str, str]) -> Reply: ...


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


def json_error(status: int, message: str, **extra) -> web.Response:
    body = json.dumps({"error": message, "status": status, **extra}).encode()
    return web.Response(status=status, body=body, content_type="application/json")


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


class Front:
    def __init__(self, settings: Settings, backend: Backend):
        self.settings = settings
        self.backend = backend
        self.session: ClientSession | None = None
        self._ping_at = 0.0
        self._ping_state: tuple[bool, str] = (False, "starting")
        self._ready_once = False
        self._started = time.monotonic()
        self.backend_alive = True  # the supervisor clears it when the server exits
        # SAGEMAKER_MAX_PAYLOAD_IN_MB, unless the server behind takes less (Triton's HTTP
        # endpoint caps a request at 64 MiB): then 413 here, saying why (C09, C29).
        cap = getattr(backend, "max_request_bytes", None)
        self.max_payload_bytes = min(settings.max_payload_bytes, cap or settings.max_payload_bytes)
        self.payload_limit_source = "SAGEMAKER_MAX_PAYLOAD_IN_MB" if \
            self.max_payload_bytes == settings.max_payload_bytes else \
            f"{backend.name}'s own request limit"
        if self.max_payload_bytes < settings.max_payload_bytes:
            log.warning("SAGEMAKER_MAX_PAYLOAD_IN_MB asks for %d bytes; %s takes at most %d: "
                        "larger requests get 413", settings.max_payload_bytes, backend.name,
                        self.max_payload_bytes)

    # -- lifecycle -------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_payload_bytes,
                              middlewares=[self._errors_as_json])
        app.router.add_get("/ping", self.ping)
        app.router.add_post("/invocations", self.invocations)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _app) -> None:
        # Keep-alive connections to the server; as many as it can usefully take.
        self.session = ClientSession(
            connector=TCPConnector(limit=64, keepalive_timeout=60),
            timeout=ClientTimeout(total=self.settings.timeout_s + 5),
        )

    async def _close(self, _app) -> None:
        if self.session is not None:
            await self.session.close()

    @web.middleware
    async def _errors_as_json(self, request: web.Request, handler):
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, f"request body is larger than the "
                              f"{self.max_payload_bytes} bytes this endpoint accepts "
                              "(SAGEMAKER_MAX_PAYLOAD_IN_MB)")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return json_error(exc.status, exc.reason)

    # -- /ping -----------------------------------------------------------------------------
    async def ping(self, _request: web.Request) -> web.Response:
        if not self.backend_alive:
            return json_error(503, f"{self.backend.name} has exited")
        now = time.monotonic()
        if now - self._ping_at > PING_CACHE_S:
            try:
                self._ping_state = await asyncio.wait_for(
                    self.backend.ready(self.session), timeout=1.5)
            except (asyncio.TimeoutError, ClientError, OSError) as exc:
                self._ping_state = (False, f"{self.backend.name} not answering: "
                                           f"{type(exc).__name__}")
            self._ping_at = now
        ready, detail = self._ping_state
        if ready and not self._ready_once:
            self._ready_once = True
            log.info("model ready %.1f s after start", time.monotonic() - self._started)
        if not ready:
            log.debug("ping: not ready: %s", detail)
            return json_error(503, f"model not ready: {detail}")
        return web.Response(status=200, body=b"{}", content_type="application/json")

    # -- /invocations ----------------------------------------------------------------------
    async def invocations(self, request: web.Request) -> web.Response:
        settings = self.settings
        content_type = media_type(request.headers.get("Content-Type"))
        supported = self.backend.supported_content_types(settings.accept_content_types)
        if supported is not None and content_type not in supported:
            return json_error(415, f"unsupported Content-Type {content_type or '(none)'!r}",
                              supported=list(supported))
        if (request.content_length or 0) > self.max_payload_bytes:
            return json_error(413, f"request body of {request.content_length} bytes is larger "
                              f"than {self.max_payload_bytes} ({self.payload_limit_source})")
        body = await request.read()
        if not body:
            return json_error(400, "empty request body")
        inference_id = request.headers.get(INFERENCE_ID)
        if inference_id:
            log.info("invocation %s: %d bytes of %s", inference_id, len(body), content_type)
        try:
            reply = await asyncio.wait_for(
                self.backend.invoke(self.session, body, request.headers.get("Content-Type", ""),
                                    forwarded_headers(request.headers)),
                timeout=settings.timeout_s)
        except ClientFault as exc:
            return json_error(exc.status, str(exc), **exc.extra)
        except asyncio.TimeoutError:
            log.warning("invocation timed out after %d s", settings.timeout_s)
            return json_error(504, f"the model did not answer within {settings.timeout_s} s "
                              "(SAGEMAKER_MODEL_SERVER_TIMEOUT)")
        except (ClientError, OSError) as exc:
            log.error("%s unreachable: %s", self.backend.name, exc)
            return json_error(503, f"{self.backend.name} is not reachable")
        answer_type = reply.content_type or label_untyped(reply.body)
        accept = request.headers.get("Accept")
        if reply.status < 400 and not accepts(accept, media_type(answer_type)):
            return json_error(406, f"cannot produce Accept {accept!r}: this model answers "
                              f"{media_type(answer_type)}", supported=[media_type(answer_type)])
        response = web.Response(status=reply.status, body=reply.body)
        response.headers["Content-Type"] = answer_type
        # Echo custom attributes only when the model server set them (C10).
        if CUSTOM_ATTRIBUTES in reply.headers:
            response.headers[CUSTOM_ATTRIBUTES] = reply.headers[CUSTOM_ATTRIBUTES]
        return response


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
