"""The TorchServe flavor, build side.

Its run-time twin is images/runtime/byoc_runtime/torchserve.py."""

from __future__ import annotations

from pathlib import Path

from ..config import ImageSpec

_DIR = Path(__file__).resolve().parents[2] / "images" / "torchserve"

# What the example model's handler accepts (handlers/digits_codec.py); the front
# answers 415 to anything else before TorchServe sees it.
ACCEPT_CONTENT_TYPES = "image/png,image/jpeg,application/json,application/x-npy"


class TorchServeFlavor:
    name = "torchserve"
    server_name = "TorchServe"
    multi_model = False

    def apt_packages(self, spec: ImageSpec) -> tuple[str, ...]:
        return ("openjdk-17-jre-headless",)  # TorchServe's frontend needs Java 17

    def template_vars(self, spec: ImageSpec) -> dict:
        return {}

    def context_files(self) -> dict[str, Path]:
        return {"requirements.txt": _DIR / "requirements.txt"}

    def runtime_env(self, spec: ImageSpec) -> list[tuple[str, str]]:
        s = spec.server
        return [
            ("BYOC_FLAVOR", "torchserve"),
            ("BYOC_ACCEPT_CONTENT_TYPES", ACCEPT_CONTENT_TYPES),
            ("BYOC_RESPONSE_CONTENT_TYPE", "application/json"),
            ("BYOC_DEFAULT_WORKERS", str(s.workers)),
            ("BYOC_DEFAULT_TIMEOUT_S", str(s.timeout_s)),
            ("BYOC_DEFAULT_MAX_PAYLOAD_MB", str(s.max_payload_mb)),
            ("BYOC_BATCH_SIZE", str(s.batch_size)),
            ("BYOC_MAX_BATCH_DELAY_MS", str(s.max_batch_delay_ms)),
        ]


FLAVOR = TorchServeFlavor()
