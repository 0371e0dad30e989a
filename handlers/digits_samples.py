"""Request bodies for the example digits model, in every format it accepts.

make_digits_samples.py writes the example's samples folder (images/samples/digits) from
these; the tests reuse them to send held-out digits in every format."""

from __future__ import annotations

import dataclasses
import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES_JSON = Path(__file__).resolve().parents[1] / "images" / "samples" / "digits.json"


@dataclasses.dataclass(frozen=True)
class Digit:
    label: int
    pixels: tuple[int, ...]  # 64 values in 0..16, the dataset's own scale


@lru_cache(maxsize=1)
def digits() -> tuple[Digit, ...]:
    """The first held-out instance of each digit (images/samples/digits.json)."""
    data = json.loads(SAMPLES_JSON.read_text())
    return tuple(Digit(s["label"], tuple(s["pixels"])) for s in data["samples"])


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


def request_bodies(pixels) -> dict[str, tuple[str, bytes]]:
    """One body per supported content type, all the same digit."""
    return {
        "json": ("application/json", as_json([pixels])),
        "npy": ("application/x-npy", as_npy(np.asarray([pixels], dtype=np.float32))),
        "png": ("image/png", as_image(pixels, "PNG")),
        "jpeg": ("image/jpeg", as_image(pixels, "JPEG", scale=8, rgb=True)),
    }
