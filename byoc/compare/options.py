"""What `build.py compare` is asked to measure (built by byoc/cli/options.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
