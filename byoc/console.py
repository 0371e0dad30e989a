"""Console output: live progress on a terminal, plain lines in CI or when NO_COLOR is set."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


def _use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("CI"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class Console:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.color = _use_color(self.stream)
        self._started = time.monotonic()

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def step(self, message: str) -> None:
        """A pipeline stage starts (render, build, verify, push)."""
        elapsed = time.monotonic() - self._started
        self._write(self._paint(f"==> {message}", "1;34") + f"  [{elapsed:5.1f}s]")

    def info(self, message: str) -> None:
        self._write(f"    {message}")

    def progress(self, line: str) -> None:
        """One line of a long-running tool's output, passed through as it arrives."""
        self._write(self._paint("  | ", "2") + line)

    def ok(self, message: str) -> None:
        self._write(self._paint(f"OK  {message}", "32"))

    def warn(self, message: str) -> None:
        self._write(self._paint(f"WARNING {message}", "33"))

    def error(self, message: str, tip: str | None = None) -> None:
        self._write(self._paint(f"ERROR {message}", "1;31"))
        if tip:
            self._write(self._paint(f"TIP   {tip}", "36"))


console = Console()
