"""digits_codec: every request format, the image mapping, every error and the response."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import digits_codec
import numpy as np
import pytest
from digits_codec import RequestError, accepts_json, decode, encode
from numpy.lib import format as npy_format
from PIL import Image
from sklearn.datasets import load_digits

# Half a level of the 8-bit image, in 0..16 units: what rounding to 8 bits may lose.
EIGHT_BIT_STEP = 16 / 255


def image_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def json_bytes(document: object) -> bytes:
    return json.dumps(document).encode("utf-8")


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, without the data to back it."""
    png = image_bytes(Image.new("L", (1, 1)))
    ihdr_data = struct.pack(">II", width, height) + png[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr_data))
    return png[:16] + ihdr_data + crc + png[33:]


def block_means(pixels: np.ndarray, block_rows: int, block_cols: int) -> np.ndarray:
    rows, cols = pixels.shape
    blocks = pixels.reshape(rows // block_rows, block_rows, cols // block_cols, block_cols)
    return blocks.mean(axis=(1, 3))


# --- images -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(13, 11), (8, 8), (97, 61), (3, 5)])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_png_of_any_size_and_mode_gives_one_instance(size: tuple[int, int], mode: str) -> None:
    colour = 170 if mode == "L" else (170, 170, 170)
    features = decode(image_bytes(Image.new(mode, size, colour)), "image/png")
    assert features.shape == (1, 64)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, 170 * 16 / 255, rtol=1e-6)


@pytest.mark.parametrize("mode, colour", [("L", 255), ("RGB", (255, 255, 255))])
def test_jpeg_of_odd_size_decodes(mode: str, colour: object) -> None:
    body = image_bytes(Image.new(mode, (29, 17), colour), "JPEG")
    features = decode(body, "image/jpeg")
    assert features.shape == (1, 64)
    np.testing.assert_allclose(features, 16.0, atol=EIGHT_BIT_STEP)


def test_rgb_is_converted_with_luma_weights() -> None:
    red = decode(image_bytes(Image.new("RGB", (8, 8), (255, 0, 0))), "image/png")
    # Pillow's "L" conversion: L = 0.299 R + 0.587 G + 0.114 B.
    np.testing.assert_allclose(red, 76 * 16 / 255, rtol=1e-6)


def test_transparent_pixels_are_background() -> None:
    image = Image.new("RGBA", (16, 16), (255, 255, 255, 0))
    image.paste((255, 255, 255, 255), (0, 0, 8, 16))  # left half opaque white
    features = decode(image_bytes(image), "image/png").reshape(8, 8)
    np.testing.assert_allclose(features[:, :4], 16.0)
    np.testing.assert_allclose(features[:, 4:], 0.0)


def test_palette_png_decodes() -> None:
    image = Image.new("P", (10, 10), 1)
    image.putpalette([0, 0, 0, 255, 255, 255])
    np.testing.assert_allclose(decode(image_bytes(image), "image/png"), 16.0)


def test_16_bit_png_is_rescaled_not_clipped() -> None:
    image = Image.fromarray(np.full((16, 16), 65535 // 2, dtype=np.uint16))
    features = decode(image_bytes(image), "image/png")
    np.testing.assert_allclose(features, 8.0, atol=EIGHT_BIT_STEP)


def test_area_average_of_known_image() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(32, 24), dtype=np.uint8)
    features = decode(image_bytes(Image.fromarray(pixels, "L")), "image/png")
    expected = block_means(pixels.astype(np.float64), 4, 3) * 16 / 255
    np.testing.assert_allclose(features.reshape(8, 8), expected, rtol=1e-5, atol=1e-5)


def test_bright_ink_on_black_is_not_inverted() -> None:
    pixels = np.zeros((8, 8), dtype=np.uint8)
    pixels[2, 3] = 255
    features = decode(image_bytes(Image.fromarray(pixels, "L")), "image/png").reshape(8, 8)
    assert features[2, 3] == 16.0
    assert features.sum() == 16.0


@pytest.mark.parametrize("index", [0, 1, 7, 42, 1000])
def test_sklearn_digit_rendered_as_upscaled_png_decodes_back(index: int) -> None:
    digit = load_digits().images[index]  # 8x8 in 0..16
    eight_bit = np.round(digit * 255 / 16).astype(np.uint8)
    upscaled = np.kron(eight_bit, np.ones((4, 4), dtype=np.uint8))
    features = decode(image_bytes(Image.fromarray(upscaled, "L")), "image/png")
    np.testing.assert_allclose(features.reshape(8, 8), digit, atol=EIGHT_BIT_STEP / 2 + 1e-6)


def test_png_sent_as_jpeg_is_accepted() -> None:
    body = image_bytes(Image.new("L", (8, 8), 255))
    np.testing.assert_allclose(decode(body, "image/jpeg"), 16.0)


# --- JSON and npy -------------------------------------------------------------------------


def test_json_flat_instances() -> None:
    instances = [[float(i % 17) for i in range(64)], [0] * 64, [16] * 64]
    features = decode(json_bytes({"instances": instances}), "application/json")
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, np.array(instances, dtype=np.float32))


def test_json_8x8_instances() -> None:
    image = np.arange(64).reshape(8, 8) % 17
    features = decode(json_bytes({"instances": [image.tolist()] * 2}), "application/json")
    np.testing.assert_array_equal(features, np.tile(image.reshape(1, 64), (2, 1)))


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", " application/json "]
)
def test_content_type_ignores_case_and_parameters(content_type: str) -> None:
    assert decode(json_bytes({"instances": [[1] * 64]}), content_type).shape == (1, 64)


@pytest.mark.parametrize(
    "shape, instances",
    [((3, 64), 3), ((2, 8, 8), 2), ((64,), 1), ((8, 8), 1), ((1, 64), 1)],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float32, np.float64])
def test_npy_shapes_and_dtypes(shape: tuple[int, ...], instances: int, dtype: type) -> None:
    array = (np.arange(np.prod(shape)) % 17).astype(dtype).reshape(shape)
    features = decode(npy_bytes(array), "application/x-npy")
    assert features.shape == (instances, 64)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features.ravel(), array.ravel())


def test_fortran_ordered_npy_keeps_values_in_place() -> None:
    array = np.asfortranarray((np.arange(128) % 17).reshape(2, 64).astype(np.float32))
    np.testing.assert_array_equal(decode(npy_bytes(array), "application/x-npy"), array)


# --- errors -------------------------------------------------------------------------------

VALID_ROW = [0] * 64


def npy_header_only(shape: tuple[int, ...], descr: str) -> bytes:
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def noise_png() -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, size=(64, 64), dtype=np.uint8)
    return image_bytes(Image.fromarray(pixels, "L"))


def gif_bytes() -> bytes:
    return image_bytes(Image.new("L", (8, 8)), "GIF")


ERROR_CASES = [
    # (body, content type, status, part of the message)
    (b"x", "text/plain", 415, "unsupported content type text/plain"),
    (b"x", "", 415, "unsupported content type none"),
    (b"x", "image/gif", 415, "image/png, image/jpeg, application/json, application/x-npy"),
    (b"", "application/json", 400, "empty request body"),
    (b"", "image/png", 400, "empty request body"),
    (b"\xff\xfe{}", "application/json", 400, "not valid UTF-8"),
    (b'{"instances": [', "application/json", 400, "invalid JSON: Expecting value at line 1"),
    (json_bytes([VALID_ROW]), "application/json", 400, '"instances" list'),
    (json_bytes({"inputs": [VALID_ROW]}), "application/json", 400, '"instances" list'),
    (json_bytes({"instances": VALID_ROW[0]}), "application/json", 400, "must be a list"),
    (json_bytes({"instances": []}), "application/json", 400, '"instances" is empty'),
    (json_bytes({"instances": VALID_ROW}), "application/json", 400, "shape (64,)"),
    (json_bytes({"instances": [[0] * 63]}), "application/json", 400, "shape (1, 63)"),
    (json_bytes({"instances": [[[0] * 7] * 8]}), "application/json", 400, "(N, 8, 8)"),
    (json_bytes({"instances": [VALID_ROW, [0] * 63]}), "application/json", 400, "equally"),
    (json_bytes({"instances": [["a"] * 64]}), "application/json", 400, "numbers, got strings"),
    (json_bytes({"instances": [[None] * 64]}), "application/json", 400, "must be numbers"),
    (json_bytes({"instances": [[True] * 64]}), "application/json", 400, "got booleans"),
    (b'{"instances": [[NaN' + b", 0" * 63 + b"]]}", "application/json", 400, "finite"),
    (b'{"instances": [[Infinity' + b", 0" * 63 + b"]]}", "application/json", 400, "finite"),
    (json_bytes({"instances": [[17] + [0] * 63]}), "application/json", 400, "got range 0..17"),
    (json_bytes({"instances": [[-1] + [0] * 63]}), "application/json", 400, "in 0..16"),
    (b"not an image", "image/png", 400, "not a decodable PNG or JPEG image"),
    (noise_png()[:1000], "image/png", 400, "not a decodable PNG or JPEG image"),
    (gif_bytes(), "image/png", 400, "not a decodable PNG or JPEG image"),
    (png_header_claiming(7000, 6000), "image/png", 400, "7000x6000, over the 16777216 pixel"),
    (png_header_claiming(6300, 6300), "image/png", 400, "6300x6300, over the 16777216 pixel"),
    (png_header_claiming(20000, 20000), "image/png", 400, "over the 16777216 pixel limit"),
    (b'{"instances": ' + b"[" * 100_000, "application/json", 400, "nested 100001 deep"),
    (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json", 400,
     "at most 8"),
    (b'{"instances": [[' + b"1" * 5000 + b"]]}", "application/json", 400, "more than 40 digits"),
    (b'{"instances": [[0.' + b"1" * 41 + b"]]}", "application/json", 400, "more than 40 digits"),
    (b'{"instances": [[' + b"0," * 2_200_000 + b"0]]}", "application/json", 400,
     "2097152 values"),
    (json_bytes({"instances": [[0]] * 32769}), "application/json", 400, "32769 instances"),
    (npy_bytes(np.zeros((32769, 64), dtype=np.uint8)), "application/x-npy", 400,
     "more than 2097152 values"),
    (b"not npy", "application/x-npy", 400, "not a valid .npy array"),
    (npy_bytes(np.zeros((2, 64)))[:-8], "application/x-npy", 400, "shorter than"),
    (npy_header_only((10**12, 64), "<f8"), "application/x-npy", 400, "shorter than"),
    (npy_header_only((1, 64), "|O"), "application/x-npy", 400, "must be numbers"),
    (npy_bytes(np.zeros((1, 64), dtype=bool)), "application/x-npy", 400, "got booleans"),
    (npy_bytes(np.zeros((1, 64), dtype=complex)), "application/x-npy", 400, "complex"),
    (npy_bytes(np.zeros((0, 64))), "application/x-npy", 400, "no instances"),
    (npy_bytes(np.zeros((3, 5))), "application/x-npy", 400, "got shape (3, 5); expected"),
    (npy_bytes(np.zeros((2, 8, 7))), "application/x-npy", 400, "(2, 8, 7)"),
    (npy_bytes(np.full((1, 64), np.nan)), "application/x-npy", 400, "finite"),
    (npy_bytes(np.full((1, 64), 16.5)), "application/x-npy", 400, "0..16"),
]


@pytest.mark.parametrize(
    "body, content_type, status, message", ERROR_CASES, ids=[case[3] for case in ERROR_CASES]
)
def test_bad_requests_are_refused(body: bytes, content_type: str, status: int, message: str):
    with pytest.raises(RequestError) as caught:
        decode(body, content_type)
    assert caught.value.status == status
    assert message in str(caught.value)
    assert str(caught.value) == caught.value.message


def test_npz_body_is_not_npy() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((1, 64)))
    with pytest.raises(RequestError, match="not a valid .npy") as caught:
        decode(buffer.getvalue(), "application/x-npy")
    assert caught.value.status == 400


def test_pixel_limit_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digits_codec, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(RequestError, match="11x10, over the 100 pixel limit"):
        decode(image_bytes(Image.new("L", (11, 10))), "image/png")
    assert decode(image_bytes(Image.new("L", (10, 10))), "image/png").shape == (1, 64)


def test_request_error_json() -> None:
    error = RequestError("bad shape")
    assert isinstance(error, ValueError)
    assert error.status == 400
    assert json.loads(error.to_json()) == {"error": "bad shape", "status": 400}


def test_unsupported_type_json_lists_supported_types() -> None:
    with pytest.raises(RequestError) as caught:
        decode(b"x", "text/csv")
    assert json.loads(caught.value.to_json()) == {
        "error": str(caught.value),
        "status": 415,
        "supported": list(digits_codec.SUPPORTED_CONTENT_TYPES),
    }


# --- responses ----------------------------------------------------------------------------


def test_encode_gives_label_and_rounded_probabilities_in_order() -> None:
    probabilities = np.full((2, 10), 0.01, dtype=np.float32)
    probabilities[0, 3] = 0.91
    probabilities[1, 7] = 0.123456789
    document = json.loads(encode(probabilities).decode("utf-8"))
    predictions = document["predictions"]
    assert [p["label"] for p in predictions] == [3, 7]
    assert predictions[1]["probabilities"][7] == 0.123457
    assert all(len(p["probabilities"]) == 10 for p in predictions)
    assert predictions[0]["probabilities"][0] == 0.01


def test_encode_refuses_wrong_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        encode(np.zeros((2, 9)))


@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, True),
        ("", True),
        ("*/*", True),
        ("application/*", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("text/html, application/json;q=0.9", True),
        ("text/html,*/*;q=0.1", True),
        ("application/json;q=0", False),
        ("application/json;q=oops", True),
        ("text/csv", False),
        ("image/png, application/x-npy", False),
        ("text/*", False),
    ],
)
def test_accepts_json(accept: str | None, expected: bool) -> None:
    assert accepts_json(accept) is expected


# --- what a request may cost (README "Request limits") ------------------------------------


def test_brackets_and_digits_inside_json_strings_are_not_counted() -> None:
    body = json_bytes({"instances": [VALID_ROW], "note": "[" * 50 + "9" * 100})
    assert decode(body, "application/json").shape == (1, 64)


def test_the_largest_request_allowed_still_decodes() -> None:
    rows = [[16] * 64] * digits_codec.MAX_INSTANCES
    assert decode(json_bytes({"instances": rows}), "application/json").shape == (32768, 64)
    array = np.zeros((digits_codec.MAX_INSTANCES, 8, 8), dtype=np.uint8)
    assert decode(npy_bytes(array), "application/x-npy").shape == (32768, 64)


def test_c09_a_6_mib_request_of_valid_digits_is_within_the_limits() -> None:
    """The contract's 6 MiB must be servable: the cap sits above what 6 MiB can hold."""
    rows = (6 * 1024 * 1024 - 256) // (64 * 4)
    body = npy_bytes(np.ones((rows, 64), dtype=np.float32))
    assert len(body) <= 6 * 1024 * 1024
    assert decode(body, "application/x-npy").shape == (rows, 64)


def test_json_depth_is_checked_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parse(*_args, **_kwargs):
        raise AssertionError("json.loads ran on a body over the limits")

    monkeypatch.setattr(digits_codec.json, "loads", no_parse)
    for body in (b"[" * 9 + b"]" * 9, b"[" + b"7" * 41 + b"]"):
        with pytest.raises(RequestError):
            decode(body, "application/json")


def test_unclosed_escaped_quotes_scan_in_linear_time() -> None:
    import time

    started = time.perf_counter()
    with pytest.raises(RequestError, match="invalid JSON"):
        decode(b'"' + b'\\"' * 1_000_000, "application/json")
    assert time.perf_counter() - started < 5


def test_decoded_image_bytes_are_checked_before_decoding(monkeypatch: pytest.MonkeyPatch):
    from PIL import ImageFile

    body = image_bytes(Image.new("RGBA", (10, 10)))
    monkeypatch.setattr(digits_codec, "MAX_IMAGE_BYTES", 10 * 10 * 4 - 1)
    loaded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loaded.append(self))
    with pytest.raises(RequestError, match="10x10 RGBA: 400 bytes decoded, over the 399"):
        decode(body, "image/png")
    assert not loaded
    # Pillow keeps L in a byte a pixel: the same size fits.
    monkeypatch.undo()
    monkeypatch.setattr(digits_codec, "MAX_IMAGE_BYTES", 10 * 10 * 4 - 1)
    assert decode(image_bytes(Image.new("L", (10, 10))), "image/png").shape == (1, 64)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "I;16"])
@pytest.mark.parametrize("size", [(1, 1), (7, 300), (300, 7), (129, 257)])
def test_strips_give_the_whole_image_answer(monkeypatch, mode: str, size) -> None:
    """Reducing in strips of rows equals resizing the whole float image (to float32)."""
    rng = np.random.default_rng(sum(size))
    pixels = rng.integers(0, 256, size=(size[1], size[0], 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    body = image_bytes(image)
    whole = digits_codec._to_gray_float(Image.open(io.BytesIO(body)))
    expected = np.asarray(whole.resize((8, 8), Image.Resampling.BOX), dtype=np.float64)
    expected = np.clip(expected.reshape(1, 64) * 16 / 255, 0, 16)
    monkeypatch.setattr(digits_codec, "_STRIP_PIXELS", 97)  # many strips, odd heights
    np.testing.assert_allclose(decode(body, "image/png"), expected, atol=1e-5)


def _peak_mib_decoding(body_file, tmp_path) -> float:
    """VmHWM growth of a fresh interpreter while it decodes one body, in MiB."""
    import subprocess
    import sys

    script = (
        "import sys, digits_codec\n"
        "def hwm():\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status')\n"
        "                if l.startswith('VmHWM')) / 1024\n"
        f"body = open({str(body_file)!r}, 'rb').read()\n"
        "before = hwm()\n"
        "digits_codec.decode(body, 'image/png')\n"
        "print(hwm() - before)\n"
    )
    handlers = str(Path(digits_codec.__file__).parent)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={"PYTHONPATH": handlers}, timeout=120, check=True)
    return float(out.stdout.strip())


def test_the_largest_transparent_image_costs_little_more_than_its_pixels(tmp_path) -> None:
    """4096x4096 LA is the largest alpha image allowed: Pillow keeps it in 64 MiB; the old
    alpha path (RGBA, a black RGBA, their composite, L, F) took 274 MiB more on top."""
    body_file = tmp_path / "big.png"
    Image.new("LA", (4096, 4096)).save(body_file, "PNG")
    peak = _peak_mib_decoding(body_file, tmp_path)
    assert peak < 1.5 * digits_codec.MAX_IMAGE_BYTES / 2**20, f"{peak:.0f} MiB"


# --- property-based: any body, any type, only ever an answer or a RequestError -------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CONTENT_TYPES = st.sampled_from(list(digits_codec.SUPPORTED_CONTENT_TYPES) + [
    "", "text/plain", "application/json; charset=latin-1", "IMAGE/PNG", "image/png;;;",
    "application/x-npy; q=x"])
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(10**60), 10**60),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
JSON_DOCS = st.recursive(JSON_LEAVES, lambda children: st.one_of(
    st.lists(children, max_size=70), st.dictionaries(st.text(max_size=10), children,
                                                     max_size=4)), max_leaves=200)


def _answer_or_request_error(body: bytes, content_type: str) -> None:
    try:
        features = decode(body, content_type)
    except RequestError as err:
        assert 400 <= err.status < 500
        json.loads(err.to_json())
        return
    assert features.dtype == np.float32 and features.ndim == 2 and features.shape[1] == 64
    assert 1 <= features.shape[0] <= digits_codec.MAX_INSTANCES
    assert np.isfinite(features).all() and features.min() >= 0 and features.max() <= 16


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(body=st.binary(max_size=2048), content_type=CONTENT_TYPES)
def test_any_bytes_of_any_type(body: bytes, content_type: str) -> None:
    _answer_or_request_error(body, content_type)


@FUZZ
@given(document=JSON_DOCS, wrap=st.booleans())
def test_any_json_document(document, wrap: bool) -> None:
    body = json.dumps({"instances": document} if wrap else document, allow_nan=True)
    _answer_or_request_error(body.encode(), "application/json")


@FUZZ
@given(data=st.data())
def test_mutated_images_and_arrays(data) -> None:
    """Real PNG, JPEG and .npy bodies with bytes flipped, cut or spliced."""
    kind = data.draw(st.sampled_from(["png", "jpeg", "npy", "png16", "pa"]))
    if kind == "npy":
        body = npy_bytes(np.zeros((2, 64), dtype=data.draw(st.sampled_from(
            ["<f4", ">f8", "<i2", "|u1", "<f2"]))))
    else:
        mode = {"png": "RGBA", "jpeg": "RGB", "png16": "I;16", "pa": "P"}[kind]
        image = Image.new(mode, (data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))))
        if kind == "pa":
            image.info["transparency"] = 0
        body = image_bytes(image, "JPEG" if kind == "jpeg" else "PNG")
    body = bytearray(body)
    for _ in range(data.draw(st.integers(0, 6))):
        at = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "splice"]))
        if action == "flip":
            body[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del body[at:]
        else:
            body[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        if not body:
            break
    _answer_or_request_error(bytes(body), data.draw(CONTENT_TYPES))
