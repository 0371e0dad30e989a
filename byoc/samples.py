"""Request bodies for the example digits model, in every format it accepts.

verify sends these to prove the image answers correctly (C07), and the tests
and the compare benchmark reuse them so both servers see the same bytes."""

from __future__ import annotations

import dataclasses
import io
import json
from functools import lru_cache

import numpy as np
from PIL import Image

from . import IMAGES_DIR


@dataclasses.dataclass(frozen=True)
class Sample:
    label: int
    pixels: tuple[int, ...]  # 64 values in 0..16, the dataset's own scale


@lru_cache(maxsize=1)
def digits() -> tuple[Sample, ...]:
    data = json.loads((IMAGES_DIR / "samples" / "digits.json").read_text())
    return tuple(Sample(s["label"], tuple(s["pixels"])) for s in data["samples"])


def as_json(pixels_rows) -> bytes:
    return json.dumps({"instances": [list(map(float, p)) for p in pixels_rows]}).encode()


def as_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def as_image(pixels, fmt: str = "PNG", scale: int = 4, rgb: bool = False) -> bytes:
    """An 8x8 digit drawn larger, ink bright on black, as a camera-free client would send."""
    grid = (np.asarray(pixels, dtype=np.float64).reshape(8, 8) * 255 / 16).round()
    big = np.kron(grid, np.ones((scale, scale))).astype(np.uint8)
    image = Image.fromarray(big, mode="L")
    if rgb:
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def request_bodies(sample: Sample) -> dict[str, tuple[str, bytes]]:
    """One body per supported content type, all the same digit."""
    return {
        "json": ("application/json", as_json([sample.pixels])),
        "npy": ("application/x-npy", as_npy(np.asarray([sample.pixels], dtype=np.float32))),
        "png": ("image/png", as_image(sample.pixels, "PNG")),
        "jpeg": ("image/jpeg", as_image(sample.pixels, "JPEG", scale=8, rgb=True)),
    }


def payload_of_size(n_bytes: int) -> bytes:
    """An application/x-npy body of about n_bytes (N x 64 float32 rows of one digit)."""
    rows = max(1, (n_bytes - 128) // (64 * 4))
    base = np.asarray(digits()[3].pixels, dtype=np.float32)
    return as_npy(np.tile(base, (rows, 1)))
