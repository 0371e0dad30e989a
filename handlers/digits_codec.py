"""Request and response format of the example digits model.

Shared by the TorchServe handler and the Triton Python backend, so it depends only on numpy
and Pillow. A request holds one or more 8x8 digit images as 64 features in 0..16 (the
scikit-learn digits convention: 0 is background, ink is bright); a response holds one
prediction per instance.

Every fault of a request body is a RequestError (a 4xx), never another exception: decode()
is the only door, and it turns anything its decoders raise into one. What a request may
cost is capped (README "Request limits"), each cap checked before the step it protects:
the JSON text is scanned for depth, number length and value count before it is parsed, an
.npy header before its data is read, an image header (size and mode) before any pixel is
decoded; images are then reduced in strips, so no full-size copy is made beyond the
decoded image itself.
"""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np
from numpy.lib import format as npy_format
from PIL import Image

SUPPORTED_CONTENT_TYPES = ("image/png", "image/jpeg", "application/json", "application/x-npy")
RESPONSE_CONTENT_TYPE = "application/json"

N_FEATURES = 64
N_CLASSES = 10
MAX_VALUE = 16.0

# What one request may cost (README "Request limits"). Far above any sensible request for an
# 8x8 digit classifier, far below what would exhaust a worker's memory or CPU.
# Digits in one request: the classifier's max_batch_rows (a 6 MiB request holds ~24,500).
MAX_INSTANCES = 32768
MAX_VALUES = MAX_INSTANCES * N_FEATURES  # numbers in one request
MAX_JSON_DEPTH = 8  # nesting of arrays and objects; the format needs 4
MAX_NUMBER_CHARS = 40  # digits in one JSON number (a float64 needs 17)
MAX_IMAGE_PIXELS = 16_777_216  # 4096 x 4096
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # the decoded image in memory (Pillow's storage)
# Pillow stores these modes in 1 or 2 bytes a pixel, every other mode in 4.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_STRIP_PIXELS = 1 << 20  # pixels converted at a time when reducing an image

_IMAGE_FORMATS = ("PNG", "JPEG")
_JSON_SHAPES = "(N, 64) or (N, 8, 8)"
_NPY_SHAPES = "(N, 64), (N, 8, 8), (64,) or (8, 8)"
_NPY_HEADER_READERS = {
    (1, 0): npy_format.read_array_header_1_0,
    (2, 0): npy_format.read_array_header_2_0,
}


class RequestError(ValueError):
    """A request the model cannot answer; `status` is the HTTP status to reply with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def to_json(self) -> bytes:
        body: dict[str, object] = {"error": self.message, "status": self.status}
        if self.status == 415:
            body["supported"] = list(SUPPORTED_CONTENT_TYPES)
        return json.dumps(body).encode("utf-8")


def decode(body: bytes, content_type: str) -> np.ndarray:
    """Decode a request body into float32 features of shape (N, 64) with values in 0..16.

    Raises RequestError, and only RequestError, for any body it cannot answer."""
    try:
        return _decode(body, content_type)
    except RequestError:
        raise
    except MemoryError:
        raise  # the server's fault (the limits keep requests far from it): a 5xx
    except Exception as err:  # noqa: BLE001 - a decoder's surprise is still a bad body
        kind = _media_type(content_type) or "request"
        raise RequestError(f"the {kind} body could not be decoded "
                           f"({type(err).__name__})") from err


def _decode(body: bytes, content_type: str) -> np.ndarray:
    media_type = _media_type(content_type)
    if media_type not in SUPPORTED_CONTENT_TYPES:
        shown = media_type or "none"
        raise RequestError(
            f"unsupported content type {shown}; use one of {', '.join(SUPPORTED_CONTENT_TYPES)}",
            415,
        )
    if not body:
        raise RequestError("empty request body")
    if media_type == "application/json":
        return _decode_json(body)
    if media_type == "application/x-npy":
        return _decode_npy(body)
    return _decode_image(body)


def encode(probabilities: np.ndarray) -> bytes:
    """Encode (N, 10) class probabilities as the JSON response body."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != N_CLASSES:
        raise ValueError(f"expected probabilities of shape (N, 10), got {probabilities.shape}")
    predictions = [
        {"label": int(np.argmax(row)), "probabilities": [round(float(p), 6) for p in row]}
        for row in probabilities
    ]
    return json.dumps({"predictions": predictions}).encode("utf-8")


def accepts_json(accept_header: str | None) -> bool:
    """Whether an Accept header allows a JSON response (a missing header allows anything)."""
    if not accept_header or not accept_header.strip():
        return True
    for media_range in accept_header.split(","):
        media_type, *params = (part.strip().lower() for part in media_range.split(";"))
        if media_type in ("*/*", "application/*", "application/json") and _quality(params) > 0:
            return True
    return False


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                # A malformed q-value is the client's mistake; do not refuse on it.
                return 1.0
    return 1.0


# A JSON string, closed or running to the end of the body: an unrolled loop with possessive
# quantifiers, so the scan is linear whatever the body holds.
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\Z)', re.DOTALL)
_LONG_NUMBER = re.compile(rb"[0-9]{%d}" % (MAX_NUMBER_CHARS + 1))
_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = np.zeros(256, dtype=np.int8)
_DEPTH_STEP[list(b"[{")] = 1
_DEPTH_STEP[list(b"]}")] = -1


def _check_json_cost(body: bytes) -> None:
    """Refuse, before parsing, JSON that is nested too deep, holds numbers too long to
    convert (Python refuses integers over 4,300 digits) or too many values."""
    bare = _JSON_STRING.sub(b'""', body)  # brackets, digits and commas in strings are text
    brackets = bare.translate(None, _BRACKETS)
    if brackets:
        depth = int(np.cumsum(_DEPTH_STEP[np.frombuffer(brackets, np.uint8)],
                              dtype=np.int32).max())
        if depth > MAX_JSON_DEPTH:
            raise RequestError(f"JSON is nested {depth} deep; at most {MAX_JSON_DEPTH}")
    if _LONG_NUMBER.search(bare):
        raise RequestError(f"JSON holds a number of more than {MAX_NUMBER_CHARS} digits")
    if bare.count(b",") >= MAX_VALUES + MAX_INSTANCES:
        raise RequestError(f"JSON holds more than {MAX_VALUES} values "
                           f"({MAX_INSTANCES} instances of {N_FEATURES})")


def _decode_json(body: bytes) -> np.ndarray:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(f"body is not valid UTF-8: {err.reason} at byte {err.start}") from err
    _check_json_cost(body)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise RequestError(
            f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from err
    if not isinstance(document, dict) or "instances" not in document:
        raise RequestError('JSON body must be an object with an "instances" list')
    instances = document["instances"]
    if not isinstance(instances, list):
        raise RequestError('"instances" must be a list')
    if not instances:
        raise RequestError('"instances" is empty')
    if len(instances) > MAX_INSTANCES:
        raise RequestError(f"{len(instances)} instances; at most {MAX_INSTANCES} a request")
    try:
        array = np.asarray(instances)
    except (ValueError, OverflowError) as err:
        raise RequestError(
            f"instances must be equally sized lists of numbers, shaped {_JSON_SHAPES}"
        ) from err
    _check_numeric(array.dtype)
    if array.ndim not in (2, 3):
        raise RequestError(f"instances have shape {array.shape}; expected {_JSON_SHAPES}")
    return _to_features(array, _JSON_SHAPES)


def _decode_npy(body: bytes) -> np.ndarray:
    stream = io.BytesIO(body)
    shape, dtype = _read_npy_header(stream)
    _check_numeric(dtype)
    # numpy allocates the declared size before reading, so a short body declaring a huge
    # array must be refused before np.load sees it.
    if math.prod(shape) * dtype.itemsize > len(body) - stream.tell():
        raise RequestError(f".npy data is shorter than its header's shape {shape} needs")
    if math.prod(shape) > MAX_VALUES:
        raise RequestError(f".npy array of shape {shape} holds more than {MAX_VALUES} values "
                           f"({MAX_INSTANCES} instances of {N_FEATURES})")
    stream.seek(0)
    try:
        array = np.load(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise RequestError("body is not a valid .npy array") from err
    if array.shape in ((N_FEATURES,), (8, 8)):
        array = array.reshape(1, N_FEATURES)
    return _to_features(array, _NPY_SHAPES)


def _read_npy_header(stream: io.BytesIO) -> tuple[tuple[int, ...], np.dtype]:
    try:
        reader = _NPY_HEADER_READERS.get(npy_format.read_magic(stream))
        if reader is not None:
            shape, _, dtype = reader(stream)
            return shape, dtype
    except (ValueError, OSError, EOFError) as err:
        raise RequestError("body is not a valid .npy array") from err
    raise RequestError("unsupported .npy format version; use version 1.0 or 2.0")


def _check_numeric(dtype: np.dtype) -> None:
    # Booleans, strings, objects (None, huge ints) and records are not pixel values.
    if dtype.kind not in "iuf":
        raise RequestError(f"values must be numbers, got {_describe_dtype(dtype)}")


def _describe_dtype(dtype: np.dtype) -> str:
    return {"b": "booleans", "U": "strings", "S": "bytes", "O": "non-numeric values"}.get(
        dtype.kind, f"dtype {dtype}"
    )


def _to_features(array: np.ndarray, accepted: str) -> np.ndarray:
    """Check shape and values of an (N, 64) or (N, 8, 8) array and flatten it to (N, 64)."""
    if array.ndim == 3 and array.shape[1:] == (8, 8):
        array = array.reshape(array.shape[0], N_FEATURES)
    if array.ndim != 2 or array.shape[1] != N_FEATURES:
        raise RequestError(f"got shape {array.shape}; expected {accepted}")
    if array.shape[0] == 0:
        raise RequestError("request holds no instances")
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise RequestError("values must be finite (got NaN or infinity)")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > MAX_VALUE:
        raise RequestError(f"values must be in 0..16, got range {low:g}..{high:g}")
    return values.astype(np.float32)


def _decode_image(body: bytes) -> np.ndarray:
    # Either image content type accepts either format: clients often mislabel them, and
    # both decode the same way. Other formats are refused to keep the decoder surface small.
    try:
        with Image.open(io.BytesIO(body), formats=_IMAGE_FORMATS) as image:
            _check_image_cost(image)  # from the header alone: nothing is decoded yet
            image.load()
            gray = _reduce_to_gray(image)
    except Image.DecompressionBombError as err:
        raise RequestError(f"image is over the {MAX_IMAGE_PIXELS} pixel limit") from err
    except RequestError:
        raise
    except (OSError, ValueError, SyntaxError, TypeError, IndexError, EOFError) as err:
        # Pillow reports corrupt or truncated data as any of these.
        raise RequestError("body is not a decodable PNG or JPEG image") from err
    small = gray.resize((8, 8), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float64).reshape(1, N_FEATURES)
    return np.clip(pixels * MAX_VALUE / 255.0, 0.0, MAX_VALUE).astype(np.float32)


def _check_image_cost(image: Image.Image) -> None:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise RequestError(f"image is {width}x{height}, over the {MAX_IMAGE_PIXELS} pixel limit")
    decoded = width * height * _MODE_BYTES.get(image.mode, 4)
    if decoded > MAX_IMAGE_BYTES:
        raise RequestError(f"image is {width}x{height} {image.mode}: {decoded} bytes decoded, "
                           f"over the {MAX_IMAGE_BYTES} byte limit")


def _reduce_to_gray(image: Image.Image) -> Image.Image:
    """The image as float grayscale, already reduced to 8 columns: (8, height) mode F.

    Strips of rows are converted and reduced horizontally one at a time (a BOX resize is
    separable), so no full-size grayscale, RGBA or float copy exists; the answer equals
    resizing the whole float image to float32 rounding (Pillow may run its two passes in
    the other order)."""
    width, height = image.size
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    columns = Image.new("F", (8, height))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        strip.info = image.info  # crop() drops "transparency", which decides background
        gray = _to_gray_float(strip)
        columns.paste(gray.resize((8, gray.height), Image.Resampling.BOX), (0, top))
    return columns


def _to_gray_float(image: Image.Image) -> Image.Image:
    """Grayscale as a float image on the 8-bit 0..255 scale.

    Float, so that area averaging is not rounded to 8 bits before the 0..16 mapping.
    """
    if image.mode.startswith("I"):
        # 16-bit grayscale PNG: converting to "L" would clip it, so rescale 0..65535 instead.
        return image.convert("F").point(lambda value: value / 257.0)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if not has_alpha:
        return image.convert("L").convert("F")
    # Transparent pixels are background, which is black in this dataset.
    rgba = image.convert("RGBA")
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(black, rgba).convert("L").convert("F")
