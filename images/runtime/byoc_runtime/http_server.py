"""The front's HTTP/1.1 server side: one asyncio protocol per connection, requests parsed
by httptools (llhttp), answers written as bytes. Keep-alive, pipelining (answered in
order), Expect: 100-continue, and a body limit enforced while the body arrives.

What a request means is the handler's business (front_fast.py); this module only turns
bytes into Request objects and Response objects into bytes."""

from __future__ import annotations

import asyncio
import collections
import email.utils
import http
import time
from collections.abc import Awaitable, Callable

import httptools
from multidict import CIMultiDict

_REASONS = {s.value: s.phrase for s in http.HTTPStatus}


class Request:
    __slots__ = ("method", "path", "headers", "body", "too_large", "keep_alive")

    def __init__(self, method: str, path: str, headers: CIMultiDict):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = b""
        self.too_large = False  # the body passed the limit while it arrived
        self.keep_alive = True


class Response:
    __slots__ = ("status", "body", "headers", "close")

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                 close: bool = False):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.close = close


# check(request) -> a Response to send at once (415, 413 ...) or None to read the body.
Early = Callable[[Request], "Response | None"]
Handler = Callable[[Request], Awaitable[Response]]


class _Clock:
    """The Date header, formatted once a second."""

    def __init__(self):
        self.second = 0
        self.line = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.line = f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n".encode()
        return self.line


_clock = _Clock()


def encode(response: Response, head_only: bool = False) -> bytes:
    status = response.status
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n",
             *(f"{k}: {v}\r\n" for k, v in response.headers.items()),
             f"Content-Length: {len(response.body)}\r\n"]
    if response.close:
        lines.append("Connection: close\r\n")
    head = "".join(lines).encode("latin-1") + _clock.date() + b"\r\n"
    return head if head_only else head + response.body


class Connection(asyncio.Protocol):
    """One client connection. Requests are answered one at a time, in order."""

    def __init__(self, server: Server):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[Request | Response] = collections.deque()
        self.busy = False
        self.closing = False
        self._new()

    def _new(self) -> None:
        self.url = b""
        self.header_list: list[tuple[bytes, bytes]] = []
        self.request: Request | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.rejected = False  # answered early: the rest of this body is read and dropped

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)
        self.closing = True

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reply_now(self.server.bad_request("protocol upgrades are not served"))
        except httptools.HttpParserError as exc:
            self._reply_now(self.server.bad_request(f"malformed HTTP request: {exc}"))

    # -- httptools callbacks ------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_list.append((name, value))

    def on_headers_complete(self) -> None:
        headers = CIMultiDict((n.decode("latin-1"), v.decode("latin-1"))
                              for n, v in self.header_list)
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        request = Request(self.parser.get_method().decode("latin-1"), path, headers)
        request.keep_alive = self.parser.should_keep_alive()
        self.request = request
        early = self.server.early(request)
        if early is not None:
            self.rejected = True
            early.close = True  # the body that follows is not worth keeping the line for
            self.queue.append(early)
            self._pump()
        elif headers.get("Expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.rejected:
            return
        self.size += len(body)
        if self.size > self.server.max_body:
            self.rejected = True
            self.chunks = []
            response = self.server.too_large(self.request)
            response.close = True
            self.queue.append(response)
            self._pump()
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        request, rejected = self.request, self.rejected
        if not rejected:
            request.body = b"".join(self.chunks)
            self.queue.append(request)
        self._new()
        if rejected:
            self.closing = True
            if not self.busy:
                self.transport.close()
            return
        self._pump()

    # -- answering ----------------------------------------------------------------------
    def _reply_now(self, response: Response) -> None:
        response.close = True
        self.queue.append(response)
        self.closing = True
        self._pump()

    def _pump(self) -> None:
        if self.busy or not self.queue:
            return
        item = self.queue.popleft()
        if isinstance(item, Response):  # answered without the handler
            self._write(item, head_only=False)
            return
        self.busy = True
        self.server.in_flight += 1
        task = asyncio.ensure_future(self.server.handler(item))
        task.add_done_callback(lambda done, request=item: self._done(request, done))

    def _done(self, request: Request, task: asyncio.Task) -> None:
        self.busy = False
        self.server.in_flight -= 1
        if task.cancelled():
            response = Response(503, b"", close=True)
        else:
            response = task.result()  # the handler answers every fault itself
        if not request.keep_alive or self.server.draining:
            response.close = True
        self._write(response, head_only=request.method == "HEAD")
        if self.server.draining and self.server.in_flight == 0:
            self.server.drained.set()

    def _write(self, response: Response, head_only: bool) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(encode(response, head_only))
        if response.close:
            self.closing = True
            if not (self.rejected and self.request is not None):  # still reading a body
                self.transport.close()
            return
        self._pump()


class Server:
    """The listening socket and its connections; `drain()` for SIGTERM (C02)."""

    def __init__(self, handler: Handler, early: Early, max_body: int,
                 bad_request: Callable[[str], Response], too_large: Callable[[Request], Response]):
        self.handler = handler
        self.early = early
        self.max_body = max_body
        self.bad_request = bad_request
        self.too_large = too_large
        self.connections: set[Connection] = set()
        self.in_flight = 0
        self.draining = False
        self.drained = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), host, port,
                                                reuse_address=True, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]  # port 0: the one it got

    async def drain(self, grace_s: float) -> None:
        """Stop accepting, let requests in flight finish (up to grace_s), close the rest."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if not conn.busy:
                conn.transport.close()
        if self.in_flight:
            try:
                await asyncio.wait_for(self.drained.wait(), grace_s)
            except asyncio.TimeoutError:
                pass
        for conn in list(self.connections):
            conn.transport.close()
