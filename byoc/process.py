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
