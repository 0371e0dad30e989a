"""The front's HTTP/1.1 client to the model server on loopback: a pool of keep-alive
connections, responses parsed by httptools (llhttp, the parser Node.js uses).

Built for the one thing the front does per request: write a whole request, read a whole
answer, by a deadline. No redirects, no compression, no cookies, no TLS. A connection
goes back to the pool only after a complete answer that allows keep-alive; a deadline
or an error closes it (its answer could still arrive)."""

from __future__ import annotations

import asyncio
import collections

import httptools
from multidict import CIMultiDict

SMALL_BODY = 64 * 1024  # up to this, head and body go out in one write (one syscall)


class UpstreamError(OSError):
    """The server could not be reached, or closed the connection before answering."""


class UpstreamTimeout(TimeoutError):
    """The deadline passed before the whole answer arrived."""


class _Connection(asyncio.Protocol):
    __slots__ = ("transport", "parser", "waiter", "status", "headers", "body", "received",
                 "idle", "pool", "_name")

    def __init__(self, pool: Pool):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.idle = False
        self._reset()

    def _reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.received = False  # any byte of the current answer

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed answer from the server: {exc}"))

    def connection_lost(self, exc) -> None:
        self.pool.forget(self)
        self._fail(UpstreamError("the server closed the connection"
                                 + ("" if exc is None else f": {exc}")))

    # -- httptools callbacks ------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        answer = (self.parser.get_status_code(),
                  CIMultiDict((n.decode("latin-1"), v.decode("latin-1"))
                              for n, v in self.headers),
                  b"".join(self.body))
        self._reset()
        if self.parser.should_keep_alive():
            self.pool.release(self)
        else:
            self.transport.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections to one host:port; at most `limit` at once, then callers wait."""

    def __init__(self, host: str, port: int, limit: int = 64):
        self.host, self.port, self.limit = host, port, limit
        self.host_header = f"Host: {host}:{port}\r\n".encode("latin-1")
        self._idle: collections.deque[_Connection] = collections.deque()
        self._open = 0
        self._waiting: collections.deque[asyncio.Future] = collections.deque()

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes,
                      deadline: float) -> tuple[int, CIMultiDict, bytes]:
        """(status, headers, body) of the server's answer; UpstreamTimeout past `deadline`
        (loop time), UpstreamError when it cannot be had. A reused connection that the
        server closed before answering (an idle keep-alive race) is retried once, fresh."""
        loop = asyncio.get_running_loop()
        head = "".join([f"{method} {path} HTTP/1.1\r\n",
                        *(f"{k}: {v}\r\n" for k, v in headers.items()),
                        f"Content-Length: {len(body)}\r\n"]).encode("latin-1")
        head += self.host_header + b"\r\n"
        for attempt in (0, 1):
            conn, reused = await self._acquire(loop, deadline)
            waiter = conn.waiter = loop.create_future()
            timer = loop.call_at(deadline, _expire, conn, waiter)
            if len(body) <= SMALL_BODY:
                conn.transport.write(head + body)
            else:
                conn.transport.write(head)
                conn.transport.write(body)
            try:
                return await waiter
            except UpstreamError:
                if attempt or not reused or conn.received:
                    raise
            finally:
                timer.cancel()
        raise AssertionError("unreachable")

    async def _acquire(self, loop, deadline: float) -> tuple[_Connection, bool]:
        while self._idle:
            conn = self._idle.pop()
            conn.idle = False
            if not conn.transport.is_closing():
                return conn, True
        if self._open >= self.limit:
            waiter = loop.create_future()
            self._waiting.append(waiter)
            timer = loop.call_at(deadline, _expire, None, waiter)
            try:
                conn = await waiter
            finally:
                timer.cancel()
            if conn is not None:
                return conn, True
        self._open += 1
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), self.host, self.port),
                timeout=max(0.001, deadline - loop.time()))
        except asyncio.TimeoutError:
            self._open -= 1
            raise UpstreamTimeout() from None
        except OSError as exc:
            self._open -= 1
            raise UpstreamError(str(exc)) from None
        return conn, False

    def release(self, conn: _Connection) -> None:
        while self._waiting:  # hand it straight to someone waiting for a connection
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle = True
        self._idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        self._open -= 1
        if conn.idle:
            self._idle.remove(conn)
        while self._waiting:  # a slot opened: let one waiter open a fresh connection
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for conn in list(self._idle):
            conn.transport.close()


def _expire(conn: _Connection | None, waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout())
    if conn is not None:
        conn.waiter = None
        conn.transport.close()  # its answer may still come: never reuse it
