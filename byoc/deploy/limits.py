"""SageMaker's hard limits that byoc refuses on before anything is created or pushed.

The image size limit (C28) is here so that the build can call it before a push as deploy
does before CreateModel: refuse_oversized_image() is the one check, image_size() reads a
local image's uncompressed size."""

from __future__ import annotations

from ..errors import IncompatibleImage, UsageError

GIB = 1024 ** 3
MAX_IMAGE_BYTES = 10 * GIB  # "greater than supported size 10737418240" (C28, C20, C30)
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)  # C30
SERVERLESS_MAX_CONCURRENCY = 200
ASYNC_MAX_PAYLOAD_MB = 1024  # the image's own maximum (settings.py); SageMaker's is 1 GB
ASYNC_MAX_RUN_S = 3600  # InvocationTimeoutSeconds at most (C29)
STARTUP_TIMEOUT_RANGE = (60, 3600)  # ContainerStartupHealthCheckTimeoutInSeconds (C32)
DOWNLOAD_TIMEOUT_RANGE = (60, 3600)  # ModelDataDownloadTimeoutInSeconds (C32)
VOLUME_GB_RANGE = (1, 512)
MAX_ENV_VARS, MAX_ENV_BYTES = 100, 1024  # C14


def clamp(value: float, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return int(min(max(value, low), high))


def refuse_oversized_image(reference: str, size_bytes: int, *, compressed: bool = False) -> None:
    """C28: SageMaker refuses images over 10 GiB. Uncompressed sizes are counted (to be
    safe); a registry gives only compressed sizes, a lower bound, which still refuses."""
    if size_bytes <= MAX_IMAGE_BYTES:
        return
    what = "compressed layers" if compressed else "uncompressed"
    raise IncompatibleImage(
        f"{reference} is {size_bytes / GIB:.2f} GiB ({what}), over SageMaker's 10 GiB image "
        f"limit (C28: \"greater than supported size {MAX_IMAGE_BYTES}\")",
        "make it smaller: a CPU torch wheel for cpu variants, one CUDA runtime (not torch's "
        "and the base image's both; bench/layer_report.py shows duplicates), or move the "
        "model weights out of the image into model.tar.gz (--no-model)")


def image_size(reference: str) -> int:
    """A local image's uncompressed size in bytes, as docker reports it."""
    from ..verify.inputs import image_attrs

    return int(image_attrs(reference).get("Size") or 0)


def check_local_image_size(reference: str) -> None:
    """The build-time C28 check: call after the build, before tag and push."""
    refuse_oversized_image(reference, image_size(reference))


def serverless_memory(memory_mb: int | None) -> int:
    if memory_mb is None:
        raise UsageError("--serverless needs --memory MB",
                         f"one of {', '.join(map(str, SERVERLESS_MEMORY_MB))} (C30)")
    if memory_mb not in SERVERLESS_MEMORY_MB:
        raise UsageError(f"--memory {memory_mb}: serverless memory must be 1024-6144 MB in "
                         "steps of 1024 (C30)",
                         f"use one of {', '.join(map(str, SERVERLESS_MEMORY_MB))}")
    return memory_mb


def serverless_concurrency(value: int | None) -> int:
    if value is None:
        raise UsageError("--serverless needs --max-concurrency N",
                         f"1 to {SERVERLESS_MAX_CONCURRENCY} concurrent invocations (C30)")
    if not 1 <= value <= SERVERLESS_MAX_CONCURRENCY:
        raise UsageError(f"--max-concurrency {value}: serverless allows 1 to "
                         f"{SERVERLESS_MAX_CONCURRENCY} concurrent invocations (C30)",
                         "lower it, or deploy to instances (--instance-type) for more")
    return value
