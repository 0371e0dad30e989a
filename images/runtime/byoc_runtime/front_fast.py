"""The SageMaker front on uvloop and httptools: the only thing listening on the public port.

The same behaviour as the aiohttp front it replaces (front.py), at a fraction of its cost
per request (docs/front.md has the measurements): /ping honest (200 only when the
adapter's ready() says the model can answer, cached 0.5 s; 503 JSON otherwise and once
the server exited), /invocations checked before the server sees it (415 naming the
supported types, 413 over SAGEMAKER_MAX_PAYLOAD_IN_MB on Content-Length and while the
body arrives, 400 for an empty body), forwarded over pooled keep-alive connections with
the client's end-to-end headers and a deadline (504), 503 when the server is
unreachable, the adapter's ClientFault as its 4xx, the answer's Content-Type (labelled
when it has none), 406 when Accept refuses it, custom attributes echoed only when the
model set them, every error as {"error", "status"} JSON, /ping never logged at INFO.

The adapter describes the upstream request (Backend.upstream, front.Upstream) instead of
making it, so the front owns the connection, the bytes and the deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector

from .front import (
    CUSTOM_ATTRIBUTES,
    INFERENCE_ID,
    BackendFatal,
    ClientFault,
    accepts,
    forwarded_headers,
    label_untyped,
    media_type,
)
from .http_server import Request, Response, Server
from .settings import Settings
from .upstream import Pool, UpstreamError, UpstreamTimeout

log = logging.getLogger("byoc.front")

PING_CACHE_S = 0.5
JSON_TYPE = {"Content-Type": "application/json"}


def admitted(content_type: str, supported: tuple[str, ...]) -> bool:
    """A declared image/* or */* admits its subtypes (a model may declare wildcards)."""
    major = content_type.split("/", 1)[0]
    return content_type in supported or f"{major}/*" in supported or "*/*" in supported


def json_error(status: int, message: str, **extra) -> Response:
    body = json.dumps({"error": message, "status": status, **extra}).encode()
    return Response(status, body, dict(JSON_TYPE))


class FastFront:
    def __init__(self, settings: Settings, backend):
        self.settings = settings
        self.backend = backend
        self.pool = Pool(*backend.address)
        self.session: ClientSession | None = None  # for ready(): /ping is not the hot path
        # SAGEMAKER_MAX_PAYLOAD_IN_MB, unless the server behind takes less (Triton's HTTP
        # endpoint caps a request at 64 MiB): then 413 here, saying why (C09, C29).
        cap = getattr(backend, "max_request_bytes", None) or settings.max_payload_bytes
        self.max_payload_bytes = min(settings.max_payload_bytes, cap)
        self.payload_limit_source = "SAGEMAKER_MAX_PAYLOAD_IN_MB" if \
            self.max_payload_bytes == settings.max_payload_bytes else \
            f"{backend.name}'s own request limit"
        if self.max_payload_bytes < settings.max_payload_bytes:
            log.warning("SAGEMAKER_MAX_PAYLOAD_IN_MB asks for %d bytes; %s takes at most %d: "
                        "larger requests get 413", settings.max_payload_bytes, backend.name,
                        self.max_payload_bytes)
        self.server = Server(self.handle, self.early, self.max_payload_bytes,
                             self.bad_request, self.too_large)
        self._ping_at = 0.0
        self._ping_state: tuple[bool, str] = (False, "starting")
        self._ready_once = False
        self._started = time.monotonic()
        self.backend_alive = True  # the supervisor clears it when the server exits
        self.fatal = asyncio.Event()  # set with fatal_reason when the backend cannot recover
        self.fatal_reason = ""
        self._watch: asyncio.Task | None = None

    def _give_up(self, reason: str) -> Response:
        if not self.fatal.is_set():
            self.fatal_reason = reason
            self.backend_alive = False
            self.fatal.set()
        return json_error(503, f"{self.backend.name} cannot serve: {reason}")

    async def _watch_startup(self) -> None:
        """Until the model is first ready, ask the adapter every second even when nobody
        pings, so a model that never loads ends the container (not only /ping 503)."""
        while not self._ready_once and not self.fatal.is_set():
            await self.ping()
            await asyncio.sleep(1.0)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str = "0.0.0.0", port: int | None = None) -> None:
        self.session = ClientSession(connector=TCPConnector(limit=8, keepalive_timeout=60),
                                     timeout=ClientTimeout(total=self.settings.timeout_s + 5))
        await self.server.listen(host, self.settings.port if port is None else port)
        self._watch = asyncio.ensure_future(self._watch_startup())

    async def stop(self, grace_s: float) -> None:
        """SIGTERM: stop accepting, let requests in flight finish within grace_s (C02)."""
        if self._watch is not None:
            self._watch.cancel()
        await self.server.drain(grace_s)
        self.pool.close()
        if self.session is not None:
            await self.session.close()

    # -- routing ---------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        try:
            if request.path == "/invocations":
                if request.method == "POST":
                    return await self.invocations(request)
                return json_error(405, "Method Not Allowed")
            if request.path == "/ping":
                if request.method in ("GET", "HEAD"):
                    return await self.ping()
                return json_error(405, "Method Not Allowed")
            return json_error(404, "Not Found")
        except Exception:  # a fault of the front or the adapter: say so, keep serving
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return json_error(500, "internal error in the front")

    def bad_request(self, message: str) -> Response:
        return json_error(400, message)

    def too_large(self, _request: Request) -> Response:
        return json_error(413, f"request body is larger than the "
                          f"{self.max_payload_bytes} bytes this endpoint accepts "
                          f"({self.payload_limit_source})")

    def early(self, request: Request) -> Response | None:
        """Refusals that need no body (415, then 413 on Content-Length), answered as soon as
        the headers are in; the body is then read and dropped."""
        if request.path != "/invocations" or request.method != "POST":
            return None
        refused = self._unsupported(request)
        if refused is not None:
            return refused
        length = request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_payload_bytes:
            return json_error(413, f"request body of {length} bytes is larger than "
                              f"{self.max_payload_bytes} ({self.payload_limit_source})")
        return None

    def _unsupported(self, request: Request) -> Response | None:
        content_type = media_type(request.headers.get("Content-Type"))
        supported = self.backend.supported_content_types(self.settings.accept_content_types)
        if supported is not None and not admitted(content_type, supported):
            return json_error(415, f"unsupported Content-Type {content_type or '(none)'!r}",
                              supported=list(supported))
        return None

    # -- /ping -----------------------------------------------------------------------------
    async def ping(self) -> Response:
        if not self.backend_alive:
            return json_error(503, f"{self.backend.name} has exited")
        now = time.monotonic()
        if now - self._ping_at > PING_CACHE_S:
            try:
                self._ping_state = await asyncio.wait_for(
                    self.backend.ready(self.session), timeout=1.5)
            except BackendFatal as exc:
                return self._give_up(str(exc))
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
        return Response(200, b"{}", dict(JSON_TYPE))

    # -- /invocations ----------------------------------------------------------------------
    async def invocations(self, request: Request) -> Response:
        settings = self.settings
        refused = self._unsupported(request)  # the types can change once the model is ready
        if refused is not None:
            return refused
        body = request.body
        if not body:
            return json_error(400, "empty request body")
        headers = request.headers
        content_type = headers.get("Content-Type", "")
        inference_id = headers.get(INFERENCE_ID)
        if inference_id:
            log.info("invocation %s: %d bytes of %s", inference_id, len(body),
                     media_type(content_type))
        loop = asyncio.get_running_loop()
        try:
            call = self.backend.upstream(body, content_type, forwarded_headers(headers))
            status, answer_headers, raw = await self.pool.request(
                "POST", call.path, call.headers, call.body, loop.time() + settings.timeout_s)
            reply = call.answer(status, answer_headers, raw)
        except ClientFault as exc:
            return json_error(exc.status, str(exc), **exc.extra)
        except BackendFatal as exc:
            log.error("%s cannot serve any more: %s", self.backend.name, exc)
            return self._give_up(str(exc))
        except UpstreamTimeout:
            log.warning("invocation timed out after %d s", settings.timeout_s)
            return json_error(504, f"the model did not answer within {settings.timeout_s} s "
                              "(SAGEMAKER_MODEL_SERVER_TIMEOUT)")
        except UpstreamError as exc:
            log.error("%s unreachable: %s", self.backend.name, exc)
            return json_error(503, f"{self.backend.name} is not reachable")
        answer_type = reply.content_type or label_untyped(reply.body)
        accept = headers.get("Accept")
        if reply.status < 400 and not accepts(accept, media_type(answer_type)):
            return json_error(406, f"cannot produce Accept {accept!r}: this model answers "
                              f"{media_type(answer_type)}", supported=[media_type(answer_type)])
        out = {"Content-Type": answer_type}
        # Echo custom attributes only when the model server set them (C10).
        attributes = reply.headers.get(CUSTOM_ATTRIBUTES) if reply.headers else None
        if attributes is not None:
            out[CUSTOM_ATTRIBUTES] = attributes
        return Response(reply.status, reply.body, out)
