"""A light closed-loop HTTP/1.1 client for bench/front_overhead.py, run inside the container
(so it reaches the servers' loopback-only ports) with the image's own Python.

Standard library only (uvloop when importable): raw keep-alive connections, one per client,
each sending a request, reading the whole answer (Content-Length) and only then sending the
next. Bounded by --requests and --duration. Prints one JSON line: the statuses seen, the
latencies' percentiles, the throughput and this process's CPU time (the client shares the
cores with what it measures, so the lighter it is the more of the cost it shows).

    python front_client.py --port 8080 --path /invocations --body FILE --type application/json \
        --concurrency 8 --requests 20000 --duration 8 --warmup 200 [--header 'Name: value']
    python front_client.py --port 8080 --method GET --path /ping ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter


class _Conn(asyncio.Protocol):
    """One keep-alive connection that answers one request at a time."""

    def __init__(self):
        self.transport = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.need = -1  # bytes of the whole answer once its head is read
        self.start = 0  # where its body starts
        self.status = 0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ", 2)[1])
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            self.start = end + 4
            self.need = self.start + length
        if len(self.buffer) >= self.need and self.waiter and not self.waiter.done():
            body = bytes(self.buffer[self.start:self.need])
            del self.buffer[:self.need]
            self.need = -1
            self.waiter.set_result((self.status, body))

    def connection_lost(self, exc):
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("server closed the connection"))

    async def send(self, request: bytes):
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def _client(host, port, request, state, latencies, statuses, deadline):
    loop = asyncio.get_running_loop()
    conn = None
    while state["left"] > 0 and time.perf_counter() < deadline:
        state["left"] -= 1
        if conn is None or conn.transport.is_closing():
            _, conn = await loop.create_connection(_Conn, host, port)
        t0 = time.perf_counter()
        try:
            status, _ = await conn.send(request)
        except ConnectionError:
            statuses["closed"] += 1
            conn = None
            continue
        latencies.append(time.perf_counter() - t0)
        statuses[str(status)] += 1
    if conn is not None:
        conn.transport.close()


async def _phase(args, request, count, duration):
    state = {"left": count}
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*(_client(args.host, args.port, request, state, latencies, statuses,
                                   t0 + duration) for _ in range(args.concurrency)))
    return latencies, statuses, time.perf_counter() - t0, time.process_time() - cpu0


def _request(args) -> bytes:
    if args.method == "GET":
        lines = [f"GET {args.path} HTTP/1.1", f"Host: {args.host}:{args.port}", *args.header]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with open(args.body, "rb") as handle:
        body = handle.read()
    lines = [f"POST {args.path} HTTP/1.1", f"Host: {args.host}:{args.port}",
             f"Content-Type: {args.type}", f"Content-Length: {len(body)}", *args.header]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def main_async(args) -> dict:
    request = _request(args)
    if args.warmup:
        await _phase(args, request, args.warmup, 60)
    latencies, statuses, elapsed, cpu = await _phase(args, request, args.requests, args.duration)
    ok = statuses.get("200", 0)
    return {"concurrency": args.concurrency, "requests": len(latencies), "ok": ok,
            "statuses": dict(statuses), "elapsed_s": round(elapsed, 4),
            "rps": round(ok / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(_percentile(latencies, 50) * 1000, 4),
            "p90_ms": round(_percentile(latencies, 90) * 1000, 4),
            "p99_ms": round(_percentile(latencies, 99) * 1000, 4),
            "client_cpu_s": round(cpu, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/invocations")
    parser.add_argument("--method", default="POST", choices=("POST", "GET"))
    parser.add_argument("--body", default="")
    parser.add_argument("--type", default="application/json")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
