"""DRAFT, folded into the adapters when serve.py switches to front_fast: each adapter's
/invocations request as a description (path, headers, body, and how to read the answer)
instead of a call it makes with aiohttp, so the front owns the connection and the bytes.

Until then front.py and the adapters stay as they are; this module reads the adapters'
own attributes (predict_url, infer_url, model_config) and reuses their helpers."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from urllib.parse import urlsplit

from multidict import CIMultiDict

from .front import ClientFault, Reply, error_reply, media_type


class Upstream:
    """One request to the model server and how its answer becomes the front's Reply."""

    __slots__ = ("path", "headers", "body", "answer")

    def __init__(self, path: str, headers: dict[str, str], body: bytes,
                 answer: Callable[[int, CIMultiDict, bytes], Reply]):
        self.path = path
        self.headers = headers
        self.body = body
        self.answer = answer


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _path(url: str) -> str:
    return urlsplit(url).path


# -- TorchServe --------------------------------------------------------------------------

def torchserve(backend, body: bytes, content_type: str, headers: dict[str, str]) -> Upstream:
    return Upstream(_path(backend.predict_url), {**headers, "Content-Type": content_type},
                    body, _torchserve_answer)


def _torchserve_answer(status: int, headers: CIMultiDict, raw: bytes) -> Reply:
    if status >= 400:
        return error_reply(status, raw)
    # No Content-Type unless the handler set one: the front labels it (label_untyped).
    return Reply(status, raw, headers.get("Content-Type", ""), headers)


# -- Triton ------------------------------------------------------------------------------

def triton(backend, body: bytes, content_type: str, headers: dict[str, str]) -> Upstream:
    from .adapters import triton as t

    path = _path(backend.infer_url)
    kind = media_type(content_type)
    if kind == t.BINARY_JSON:
        size = t._json_header_size(content_type)
        return Upstream(path, {"Inference-Header-Content-Length": str(size)}, body,
                        _triton_native)
    if kind == "application/json" and t._is_kserve_v2(body):
        return Upstream(path, {"Content-Type": "application/json"}, body, _triton_native)
    if not backend.raw_body:
        raise ClientFault(f"{backend.model} takes KServe v2 requests only (its config has no "
                          f"{t.RAW_INPUT} input for raw bodies)", status=415,
                          supported=list(t.KSERVE_TYPES))
    return _triton_payload(backend, path, body, content_type, headers)


def _triton_native(status: int, headers: CIMultiDict, raw: bytes) -> Reply:
    from .adapters.triton import BINARY_JSON

    if status >= 400:
        return error_reply(status, raw)
    header_size = headers.get("Inference-Header-Content-Length")
    if header_size is not None:
        return Reply(200, raw, f"{BINARY_JSON};json-header-size={header_size}")
    return Reply(200, raw, "application/json")


def _triton_payload(backend, path: str, body: bytes, content_type: str,
                    headers: dict[str, str]) -> Upstream:
    from .adapters import triton as t

    declared_in, declared_out = backend._tensors("input"), backend._tensors("output")
    shape = [1, 1] if int((backend.model_config or {}).get("max_batch_size", 0)) > 0 else [1]
    values = {t.RAW_INPUT: body, t.RAW_CONTENT_TYPE: content_type.encode(),
              t.RAW_HEADERS: json.dumps(headers).encode()}
    sent = [name for name in (t.RAW_INPUT, t.RAW_CONTENT_TYPE, t.RAW_HEADERS)
            if name in declared_in]
    wanted = [name for name in t.RAW_OUTPUTS if name in declared_out]
    header = json.dumps({
        "inputs": [{"name": name, "shape": shape, "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(values[name]) + 4}}
                   for name in sent],
        "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in wanted],
    }).encode()
    data = b"".join([header] + [struct.pack("<I", len(values[n])) + values[n] for n in sent])
    return Upstream(path, {"Inference-Header-Content-Length": str(len(header)),
                           "Content-Type": "application/octet-stream"}, data, _triton_raw)


def _triton_raw(status: int, headers: CIMultiDict, raw: bytes) -> Reply:
    from .adapters import triton as t

    if status >= 400:
        return error_reply(status, raw)
    outputs = t.binary_outputs(raw, int(headers["Inference-Header-Content-Length"]))
    status = int(outputs.get("STATUS", 200))
    answer = outputs.get(t.RAW_OUTPUT, b"")
    if status >= 400:
        return error_reply(status, answer)
    extra = json.loads(outputs.get(t.RAW_HEADERS_OUT) or b"{}")
    return Reply(status, answer, outputs.get("RESPONSE_CONTENT_TYPE", b"").decode(),
                 CIMultiDict({str(k): str(v) for k, v in extra.items()}))


def for_backend(backend) -> tuple[Callable, tuple[str, int]]:
    """(upstream function, server address) for an adapter that does not describe yet."""
    if backend.name == "torchserve":
        return torchserve, address(backend.predict_url)
    return triton, address(backend.infer_url)
