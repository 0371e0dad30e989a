"""SageMaker's container environment, read once at start and checked.

A bad value stops the container with one clear line (exit 2) instead of a
server that half-starts."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Settings:
    port: int  # public port: SAGEMAKER_BIND_TO_PORT or 8080 (C03)
    safe_ports: tuple[int, int] | None  # SAGEMAKER_SAFE_PORT_RANGE, inclusive
    workers: int
    timeout_s: int  # per-request server-side timeout, under SageMaker's 60 s (C08)
    max_payload_bytes: int  # larger requests get 413 (C09)
    log_level: str
    # Content types the model declared (BYOC_ACCEPT_CONTENT_TYPES); empty: whatever the
    # server takes, which the adapter decides.
    accept_content_types: tuple[str, ...] = ()

    def internal_ports(self, count: int) -> list[int]:
        """Loopback ports for the server behind the front, inside the safe range if set."""
        low, high = self.safe_ports or (8081, 8099)
        ports = [p for p in range(low, high + 1) if p != self.port][:count]
        if len(ports) < count:
            where = "SAGEMAKER_SAFE_PORT_RANGE" if self.safe_ports else "the default port range"
            raise SettingsError(f"{where} {low}-{high} leaves fewer than {count} ports "
                                f"besides {self.port}; give a wider range")
        return ports


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range {low}..{high}")
    return value


def _port_range(env: Mapping[str, str]) -> tuple[int, int] | None:
    raw = env.get("SAGEMAKER_SAFE_PORT_RANGE", "").strip()
    if not raw:
        return None
    try:
        low, high = (int(part) for part in raw.split("-"))
    except ValueError:
        raise SettingsError(
            f"SAGEMAKER_SAFE_PORT_RANGE={raw!r} is not of the form LOW-HIGH") from None
    if not 1024 <= low <= high <= 65535:
        raise SettingsError(f"SAGEMAKER_SAFE_PORT_RANGE={raw!r} is not a valid port range")
    return low, high


def _log_level(env: Mapping[str, str]) -> str:
    # BYOC_LOG_LEVEL wins; SAGEMAKER_CONTAINER_LOG_LEVEL is what the SageMaker SDK sets
    # (a Python logging number such as 20).
    name = "BYOC_LOG_LEVEL" if env.get("BYOC_LOG_LEVEL") else "SAGEMAKER_CONTAINER_LOG_LEVEL"
    given = (env.get(name) or "INFO").strip()
    level = logging.getLevelName(int(given)) if given.isdigit() else given.upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"{name}={given!r} is not one of {', '.join(LOG_LEVELS)} "
                            "(or 10, 20, 30, 40)")
    return level


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    port = _int(env, "SAGEMAKER_BIND_TO_PORT", 8080, 1024, 65535)
    safe = _port_range(env)
    accept = tuple(t.strip().lower() for t in env.get("BYOC_ACCEPT_CONTENT_TYPES", "").split(",")
                   if t.strip())
    return Settings(
        port=port,
        safe_ports=safe,
        # BYOC_DEFAULT_* are baked into the image from images.yaml; SAGEMAKER_* override.
        workers=_int(env, "SAGEMAKER_MODEL_SERVER_WORKERS",
                     _int(env, "BYOC_DEFAULT_WORKERS", 1, 1, 64), 1, 64),
        timeout_s=_int(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT",
                       _int(env, "BYOC_DEFAULT_TIMEOUT_S", 50, 1, 3600), 1, 3600),
        max_payload_bytes=_int(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB",
                               _int(env, "BYOC_DEFAULT_MAX_PAYLOAD_MB", 6, 1, 1024), 1, 1024)
        * 1024 * 1024,
        log_level=_log_level(env),
        accept_content_types=accept,
    )
