"""A model's samples: a folder of request bodies, each with an optional expected answer.

    samples/
      cat.png                 a body; its Content-Type comes from the extension
      cat.png.yaml            optional sidecar: content_type, accept, headers, status,
                              expect (JSON; numbers within tolerance), expect_text, tolerance
      review.txt

verify sends every sample (C07) and checks each answer; compare and deploy send the
same bytes. grow() and malformed() derive the 6 MiB (C09) and broken (C11) requests of
each content type the samples use."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

EXTENSIONS = {
    ".json": "application/json", ".png": "image/png", ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg", ".npy": "application/x-npy", ".txt": "text/plain",
    ".csv": "text/csv", ".bin": "application/octet-stream", ".jsonl": "application/jsonlines",
    ".wav": "audio/wav", ".gif": "image/gif", ".bmp": "image/bmp", ".webp": "image/webp",
    ".tif": "image/tiff", ".tiff": "image/tiff", ".html": "text/html",
}
SIDECAR = ".yaml"
SIDECAR_FIELDS = {"content_type", "accept", "headers", "status", "expect", "expect_text",
                  "tolerance"}
_TIP = "see docs/models.md (samples): NAME.EXT bodies with optional NAME.EXT.yaml sidecars"


@dataclasses.dataclass(frozen=True)
class Sample:
    name: str
    body: bytes
    content_type: str
    accept: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    status: int = 200
    expect: Any = None  # JSON value; None: no expectation on the body
    expect_text: str | None = None
    tolerance: float = 0.0

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        headers["Content-Type"] = self.content_type
        if self.accept:
            headers["Accept"] = self.accept
        return headers

    @property
    def has_expectation(self) -> bool:
        return self.expect is not None or self.expect_text is not None


def load(folder: Path) -> list[Sample]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"samples: {folder} is not a folder", _TIP)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    sidecars = {p.name for p in files if p.name.endswith(SIDECAR)
                and (folder / p.name[:-len(SIDECAR)]).is_file()}
    samples = [_sample(p, folder / f"{p.name}{SIDECAR}" if f"{p.name}{SIDECAR}" in sidecars
                       else None)
               for p in files if p.name not in sidecars]
    if not samples:
        raise ConfigError(f"samples: {folder} holds no request bodies", _TIP)
    return samples


def _sample(path: Path, sidecar: Path | None) -> Sample:
    meta: dict = {}
    if sidecar is not None:
        try:
            meta = yaml.safe_load(sidecar.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{sidecar}: not valid YAML: {exc}", _TIP) from None
        if not isinstance(meta, dict):
            raise ConfigError(f"{sidecar}: must be a mapping", _TIP)
        unknown = sorted(set(meta) - SIDECAR_FIELDS)
        if unknown:
            raise ConfigError(f"{sidecar}: unknown field {unknown[0]!r}; allowed: "
                              f"{', '.join(sorted(SIDECAR_FIELDS))}", _TIP)
    content_type = meta.get("content_type") or EXTENSIONS.get(path.suffix.lower())
    if not content_type:
        raise ConfigError(f"{path}: unknown sample extension {path.suffix or '(none)'!r}",
                          f"use one of {', '.join(sorted(EXTENSIONS))}, or give content_type "
                          f"in {path.name}{SIDECAR}")
    status = meta.get("status", 200)
    if not isinstance(status, int) or not 200 <= status <= 599:
        raise ConfigError(f"{sidecar}: status: {status!r} is not an HTTP status", _TIP)
    tolerance = meta.get("tolerance", 0.0)
    if not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise ConfigError(f"{sidecar}: tolerance: {tolerance!r} must be a number >= 0", _TIP)
    headers = meta.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError(f"{sidecar}: headers: must map header names to values", _TIP)
    return Sample(name=path.name, body=path.read_bytes(), content_type=str(content_type),
                  accept=meta.get("accept"),
                  headers=tuple((str(k), str(v)) for k, v in headers.items()),
                  status=status, expect=meta.get("expect"), expect_text=meta.get("expect_text"),
                  tolerance=float(tolerance))


# -- answers ----------------------------------------------------------------------------------

def mismatch(sample: Sample, status: int, body: bytes) -> str | None:
    """Why an answer is not the expected one, or None when it is."""
    if status != sample.status:
        return f"status {status}, expected {sample.status}"
    if sample.expect_text is not None:
        text = body.decode("utf-8", "replace")
        if text.strip() != sample.expect_text.strip():
            return f"answer {_short(text)!r}, expected {_short(sample.expect_text)!r}"
    if sample.expect is not None:
        try:
            got = json.loads(body)
        except ValueError:
            return f"answer is not JSON: {_short(body.decode('utf-8', 'replace'))!r}"
        where = json_difference(got, sample.expect, sample.tolerance)
        if where:
            return f"answer differs at {where}"
    return None


def json_difference(got: Any, want: Any, tolerance: float, path: str = "$") -> str | None:
    """The first place two JSON values differ (numbers within tolerance), or None."""
    if isinstance(want, bool) or isinstance(got, bool):
        return None if got is want else f"{path}: {got!r} != {want!r}"
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if math.isclose(got, want, rel_tol=0.0, abs_tol=tolerance) or got == want:
            return None
        return f"{path}: {got!r} != {want!r} (tolerance {tolerance:g})"
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return f"{path}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            found = json_difference(got[key], want[key], tolerance, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return f"{path}: {len(got)} items != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            found = json_difference(g, w, tolerance, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if got == want else f"{path}: {_short(repr(got))} != {_short(repr(want))}"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# -- requests derived from samples -----------------------------------------------------------

def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def grow(sample: Sample, target_bytes: int) -> bytes | None:
    """A valid request of the sample's type of about target_bytes (not over it), or None
    when the type cannot be grown (images, KServe v2 tensors, opaque bytes)."""
    kind = media_type(sample.content_type)
    if kind == "application/json":
        return _grow_json(sample.body, target_bytes)
    if kind == "application/x-npy":
        return _grow_npy(sample.body, target_bytes)
    if kind.startswith("text/"):
        text = sample.body.rstrip(b"\n") + b"\n"
        return (text * max(1, target_bytes // len(text)))[:target_bytes] if text.strip() \
            else None
    return None


def _grow_json(body: bytes, target: int) -> bytes | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, list) and data:
        rows, wrap = data, (lambda items: items)
    elif isinstance(data, dict) and "inputs" not in data:
        lists = [k for k, v in data.items() if isinstance(v, list) and v]
        if len(lists) != 1:
            return None
        key = lists[0]
        rows, wrap = data[key], (lambda items: {**data, key: items})
    else:
        return None
    one = len(json.dumps(rows[0]).encode()) + 2
    count = max(1, (target - len(body)) // one)
    grown = json.dumps(wrap([rows[i % len(rows)] for i in range(count)])).encode()
    while len(grown) > target and count > 1:
        count = int(count * 0.98)
        grown = json.dumps(wrap([rows[i % len(rows)] for i in range(count)])).encode()
    return grown


def _grow_npy(body: bytes, target: int) -> bytes | None:
    import numpy as np

    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError):
        return None
    if array.ndim == 0 or array.size == 0:
        return None
    row_bytes = array[:1].nbytes
    count = max(1, (target - 256) // row_bytes)
    buf = io.BytesIO()
    np.save(buf, np.resize(array, (count, *array.shape[1:])), allow_pickle=False)
    return buf.getvalue()


def malformed(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """Broken requests of one content type, each named: what C11 sends."""
    kind = media_type(content_type)
    cases = [("empty body", b"")]
    if kind == "application/json" or kind.endswith("+json"):
        cases += [("truncated JSON", body[: max(1, len(body) // 2)].rstrip(b"}]") or b"{"),
                  ("not JSON", b"\x00\xffnot json")]
    elif kind.startswith("image/"):
        cases += [("undecodable image", body[:16] + b"\x00garbage" * 8)]
    elif kind == "application/x-npy":
        cases += [("bad npy", b"\x93NUMPY garbage")]
    elif kind.startswith("text/"):
        cases += [("invalid UTF-8", b"\xff\xfe\xfa\xfb text")]
    else:
        cases += [("truncated body", body[: max(1, len(body) // 4)])]
    return cases
