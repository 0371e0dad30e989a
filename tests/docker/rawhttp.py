"""Exact HTTP/1.1 requests over a socket, and a container's memory from its cgroup.

The fuzz and fault tests need to send what ordinary clients refuse to: header values with
control bytes, a Content-Length that lies, chunked bodies, bodies that arrive slowly, a
connection closed mid-body. `send` writes the bytes it is given, in the pieces and with the
pauses it is given, and reads one answer (`Connection: close`, so the answer ends at EOF or
at its Content-Length / last chunk)."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from pathlib import Path


@dataclasses.dataclass
class Answer:
    status: int  # 0: no status line came back (the connection closed or timed out)
    headers: dict[str, str]
    body: bytes
    seconds: float
    problem: str = ""  # why there is no complete answer, if there is none

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def json(self):
        return json.loads(self.body)

    def is_json(self) -> bool:
        if self.content_type != "application/json":
            return False
        try:
            self.json()
        except ValueError:
            return False
        return True


def request_bytes(head: list[tuple[bytes, bytes]], *, path: bytes = b"/invocations",
                  method: bytes = b"POST") -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in head]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def chunked(body: bytes, size: int) -> list[bytes]:
    """The body in Transfer-Encoding: chunked framing, one piece per chunk."""
    size = max(1, size)
    pieces = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
              for i in range(0, len(body), size)]
    return pieces + [b"0\r\n\r\n"]


def send(port: int, head: bytes, pieces: list[bytes], *, pause_s: float = 0.0,
         half_close: bool = False, timeout_s: float = 30.0) -> Answer:
    """Send head, then each piece (pause_s apart), optionally shut the write side down,
    and read the answer."""
    t0 = time.monotonic()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    except OSError as exc:
        return Answer(0, {}, b"", time.monotonic() - t0, f"connect: {exc}")
    with sock:
        try:
            sock.sendall(head)
            for piece in pieces:
                if pause_s:
                    time.sleep(pause_s)
                sock.sendall(piece)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer (413) and close before the body is all sent
        return _read_answer(sock, t0, timeout_s)


def _read_answer(sock: socket.socket, t0: float, timeout_s: float) -> Answer:
    data = bytearray()
    deadline = t0 + timeout_s
    problem = ""
    while True:
        if _complete(data):
            break
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            problem = "timed out"
            break
        except OSError as exc:
            problem = f"recv: {exc}"
            break
        if not chunk:
            break
        data += chunk
    seconds = time.monotonic() - t0
    head, sep, rest = bytes(data).partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1."):
        return Answer(0, {}, bytes(data), seconds, problem or "no complete status line")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    body = _dechunk(rest) if "chunked" in headers.get("transfer-encoding", "") else rest
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return Answer(status, headers, body, seconds, problem)


def _complete(data: bytearray) -> bool:
    head, sep, rest = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length" and value.strip().isdigit():
            return len(rest) >= int(value.strip())
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return rest.endswith(b"0\r\n\r\n")
    return False


def _dechunk(data: bytes) -> bytes:
    out, at = bytearray(), 0
    while at < len(data):
        line_end = data.find(b"\r\n", at)
        if line_end < 0:
            break
        size = int(data[at:line_end].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[line_end + 2:line_end + 2 + size]
        at = line_end + 2 + size + 2
    return bytes(out)


# -- memory --------------------------------------------------------------------------------

def _cgroup_file(container_id: str, v1: str, v2: str) -> Path:
    """A container's memory file: cgroup v1 (cgroupfs driver), else v2 (systemd)."""
    for path in (Path("/sys/fs/cgroup/memory/docker") / container_id / v1,
                 Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope") / v2,
                 Path("/sys/fs/cgroup/docker") / container_id / v2):
        if path.exists():
            return path
    raise FileNotFoundError(f"no memory cgroup file for container {container_id[:12]} "
                            f"({v1} / {v2}); is this the Docker host?")


def memory_now(container_id: str) -> int:
    """Bytes the container uses now, less its page cache (what `docker stats` shows)."""
    usage = memory_usage(container_id)
    stat = _cgroup_file(container_id, "memory.stat", "memory.stat").read_text().split()
    fields = dict(zip(stat[::2], stat[1::2], strict=False))
    cache = int(fields.get("total_inactive_file", fields.get("inactive_file", 0)))
    return usage - cache


def memory_usage(container_id: str) -> int:
    """Bytes the container uses now, page cache included: what its cgroup's peak counts,
    so the two compare like with like."""
    return int(_cgroup_file(container_id, "memory.usage_in_bytes",
                            "memory.current").read_text())


def reset_peak(container_id: str) -> None:
    """Start the peak over (cgroup v1: write 0; v2 kernels from 6.12 take a write too)."""
    path = _cgroup_file(container_id, "memory.max_usage_in_bytes", "memory.peak")
    try:
        path.write_text("0")
    except OSError:
        pass


def memory_peak(container_id: str) -> int:
    """The container's peak memory in bytes since it started or the last reset_peak."""
    return int(_cgroup_file(container_id, "memory.max_usage_in_bytes",
                            "memory.peak").read_text())
