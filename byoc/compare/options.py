"""What `build.py compare` is asked to measure (built by byoc/cli/options.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import DEFAULT_CONFIG
from ..model.describe import ModelOptions

SERVERS = ("torchserve", "triton", "triton-mar")  # the .mar on TorchServe, the repository
# on Triton, the .mar hosted by Triton's Python backend


@dataclasses.dataclass(frozen=True)
class CompareOptions:
    model: ModelOptions
    config: Path
    servers: str = "auto"  # comma-separated SERVERS, or auto: all the model allows
    body: str = "mix"  # which samples: mix (all) or one file extension
    concurrency: tuple[int, ...] = (1, 8, 32)
    duration_s: float = 10.0
    max_requests: int = 20000
    warmup: int = 100
    timeout_s: float = 30.0
    gpu: bool = False
    variant: str | None = None  # default cpu, gpu with --gpu
    triton_runtime: str | None = None
    no_build: bool = False
    images: tuple[tuple[str, str], ...] = ()  # (server, image reference) given by the user
    ca_cert: str | None = None
    wheelhouse: str | None = None
    startup_timeout_s: float = 240.0
    out: Path = Path("build/compare")

    def image_for(self, server: str) -> str | None:
        return dict(self.images).get(server)


def check(options: CompareOptions) -> None:
    """Refuse bounds that would make a step unbounded or empty (UsageError)."""
    from ..errors import UsageError

    if not 0 < options.duration_s <= 3600:
        raise UsageError(f"--duration {options.duration_s:g}: give 0 < S <= 3600")
    if not 1 <= options.max_requests <= 10_000_000:
        raise UsageError(f"--max-requests {options.max_requests}: give 1..10000000")
    if options.warmup < 0:
        raise UsageError(f"--warmup {options.warmup}: give 0 or more")
    if options.timeout_s <= 0:
        raise UsageError(f"--timeout {options.timeout_s:g}: give a positive number of seconds")
    if not options.concurrency:
        raise UsageError("--concurrency: give at least one number of clients")


def command_line(options: CompareOptions) -> str:
    """The run, as a command that repeats it (written into the report)."""
    parts = ["python build.py compare"]
    for field in dataclasses.fields(options.model):
        value = getattr(options.model, field.name)
        if value:
            parts.append(f"--{field.name.replace('_', '-')} {value}")
    parts += [f"--servers {options.servers}",
              f"--concurrency {','.join(map(str, options.concurrency))}",
              f"--duration {options.duration_s:g}", f"--max-requests {options.max_requests}",
              f"--warmup {options.warmup}", f"--body {options.body}"]
    if options.config.resolve() != DEFAULT_CONFIG.resolve():
        parts.append(f"--config {options.config}")
    if options.gpu:
        parts.append("--gpu")
    if options.variant and options.variant != ("gpu" if options.gpu else "cpu"):
        parts.append(f"--variant {options.variant}")
    if options.triton_runtime:
        parts.append(f"--triton-runtime {options.triton_runtime}")
    if options.no_build:
        parts.append("--no-build")
    for server, reference in options.images:
        parts.append(f"--{server}-image {reference}")
    return " ".join(parts)
