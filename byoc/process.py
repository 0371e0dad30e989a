"""Every subprocess goes through run(): it streams or captures output and, on
failure, raises with the command and the tail of what it printed."""

from __future__ import annotations

import collections
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence

from .errors import ByocError


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    input_bytes: bytes | None = None,
    cwd: str | None = None,
    error: str = "command failed",
    tip: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run argv. With on_line, each output line is passed on as it arrives."""
    tail: collections.deque[str] = collections.deque(maxlen=40)
    if on_line is None:
        proc = subprocess.run(
            list(argv), env=env, cwd=cwd, input=input_bytes,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        output = proc.stdout.decode(errors="replace")
        tail.extend(output.splitlines())
    else:
        with subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
        ) as popen:
            if input_bytes is not None:
                popen.stdin.write(input_bytes)
                popen.stdin.close()
            lines = []
            for raw in popen.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                lines.append(line)
                tail.append(line)
                on_line(line)
            popen.wait()
            output = "\n".join(lines)
        proc = subprocess.CompletedProcess(popen.args, popen.returncode, output.encode())
    if check and proc.returncode != 0:
        shown = "\n".join(f"    {line}" for line in tail)
        raise ByocError(
            f"{error} (exit {proc.returncode}): {shlex.join(argv)}\n{shown}", tip
        )
    return proc


def probe(argv: Sequence[str], *, timeout_s: float = 20,
          cwd: str | None = None) -> subprocess.CompletedProcess | None:
    """A quick question to a tool that may be missing or fail (its version, a git ref):
    its text output, or None when it could not run or ran out of time."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                              cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None


def spawn(argv: Sequence[str], *, log_path: str, error: str,
          tip: str | None = None) -> subprocess.Popen:
    """A background service (the local registry) with its output in a log file; the
    caller waits for it to answer and stops it."""
    try:
        with open(log_path, "ab") as log:  # the child keeps its own copy of the file
            return subprocess.Popen(list(argv), stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise ByocError(f"{error}: {shlex.join(argv)}: {exc.strerror}", tip) from None
