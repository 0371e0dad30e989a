"""Triton's wire formats as the front sees them: KServe v2 JSON and the binary tensor
extension, checked before Triton (which answers a request it cannot parse with 500),
and Triton's answers read back, its error messages mapped to the right status."""

from __future__ import annotations

import json
import struct

from multidict import CIMultiDict

from ..front import BackendFatal, ClientFault, Reply, error_reply

BINARY_JSON = "application/vnd.sagemaker-triton.binary+json"
# The raw-body convention's outputs (docs/models.md).
RAW_OUTPUT, RAW_HEADERS_OUT = "RESPONSE", "RESPONSE_HEADERS"


def _server_error(status: int, raw: bytes) -> Reply:
    message = json.loads(error_reply(status, raw).body)["error"]
    if "Stub process" in message and "is not healthy" in message:
        # Triton 2.51 never restarts a Python stub that died, and keeps saying the model is
        # ready: nothing but a new container serves again (C04, C06).
        raise BackendFatal(message[:300])
    if status == 500 and "shared memory" in message:
        status = 507  # a stub that cannot grow its shared memory is out of memory (C12)
    elif status == 500 and message.startswith(UNPARSABLE):
        status = 400  # Triton answers 500 to KServe v2 JSON it cannot parse (C11)
    return error_reply(status, raw)


UNPARSABLE = ("Unable to parse", "failed to parse the request JSON buffer")


def kserve_fault(document, body_bytes: int) -> str | None:
    """Why a KServe v2 request is malformed (Triton would answer 500, or abort), or None.
    body_bytes: the request's size; no tensor may claim more elements than it has bytes
    (Triton 2.51 sizes its buffers from the shape first: a shape of 10**12 elements ends
    the server in std::bad_alloc)."""
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        return 'a KServe v2 request is a JSON object with an "inputs" list'
    for i, tensor in enumerate(document["inputs"]):
        if not isinstance(tensor, dict):
            return f"inputs[{i}] is not an object"
        for key, kind in (("name", str), ("datatype", str), ("shape", list)):
            if not isinstance(tensor.get(key), kind):
                return f'inputs[{i}] needs "{key}" ({kind.__name__})'
        if not all(type(d) is int and d >= 0 for d in tensor["shape"]):
            return f"inputs[{i}].shape must be whole numbers, none negative"
        elements = 1
        for d in tensor["shape"]:
            elements *= d
            if elements > body_bytes:
                return (f"inputs[{i}].shape {tensor['shape'][:8]} claims more elements than "
                        f"the request has bytes ({body_bytes})")
        params = tensor.get("parameters", {})
        if not isinstance(params, dict):
            return f"inputs[{i}].parameters must be an object"
        if ("data" in tensor) == ("binary_data_size" in params):
            return f'inputs[{i}] needs exactly one of "data" and parameters.binary_data_size'
    outputs = document.get("outputs", [])
    if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        return '"outputs" must be a list of objects with a "name"'
    return None


def _check_binary_header(body: bytes, size: int) -> None:
    if size > len(body):
        raise ClientFault(f"json-header-size={size} is larger than the body ({len(body)} bytes)")
    try:
        document = json.loads(body[:size])
    except (ValueError, RecursionError):
        raise ClientFault("the binary request's JSON header is not valid JSON") from None
    fault = kserve_fault(document, len(body))
    if fault:
        raise ClientFault(f"malformed KServe v2 request: {fault}")


def _native_answer(status: int, headers, raw: bytes) -> Reply:
    """KServe v2 JSON or binary tensors back as Triton sent them."""
    if status >= 400:
        return _server_error(status, raw)
    header_size = headers.get("Inference-Header-Content-Length")
    if header_size is not None:
        return Reply(200, raw, f"{BINARY_JSON};json-header-size={header_size}")
    return Reply(200, raw, "application/json")


def _payload_answer(status: int, headers, raw: bytes) -> Reply:
    """The raw-body convention's outputs: RESPONSE, its type, headers and STATUS."""
    if status >= 400:
        return _server_error(status, raw)
    outputs = binary_outputs(raw, int(headers["Inference-Header-Content-Length"]))
    status = int(outputs.get("STATUS", 200))
    answer = outputs.get(RAW_OUTPUT, b"")
    if status >= 400:
        return error_reply(status, answer)
    extra = json.loads(outputs.get(RAW_HEADERS_OUT) or b"{}")
    return Reply(status, answer, outputs.get("RESPONSE_CONTENT_TYPE", b"").decode(),
                 CIMultiDict({str(k): str(v) for k, v in extra.items()}))


def binary_outputs(raw: bytes, header_size: int) -> dict[str, bytes | int]:
    """Outputs of one request from Triton's binary tensor extension: a BYTES element's
    bytes (a 4-byte little-endian length, then the bytes), an INT32's value."""
    header = json.loads(raw[:header_size])
    at, found = header_size, {}
    for output in header.get("outputs", []):
        size = int(output.get("parameters", {}).get("binary_data_size", 0))
        blob = raw[at:at + size]
        at += size
        if output.get("datatype") == "BYTES":
            (length,) = struct.unpack_from("<I", blob, 0)
            found[output["name"]] = blob[4:4 + length]
        elif output.get("datatype") == "INT32":
            found[output["name"]] = struct.unpack_from("<i", blob, 0)[0]
    return found


def _json_header_size(content_type: str) -> int:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "json-header-size" and value.strip().isdigit():
            return int(value.strip())
    raise ClientFault(f"Content-Type {BINARY_JSON} needs ;json-header-size=N")


def _kserve_v2(body: bytes) -> dict | None:
    """A KServe v2 request: a JSON object with an "inputs" list (parsed), else None; any
    other application/json body is a raw body for a model that takes them."""
    head = body[:4096].lstrip()
    if not head.startswith(b"{") or b'"inputs"' not in body:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) and isinstance(parsed.get("inputs"), list) \
        else None


def _is_kserve_v2(body: bytes) -> bool:
    return _kserve_v2(body) is not None


def _json_document(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ClientFault("invalid JSON: a KServe v2 request is a JSON object with an "
                          '"inputs" list') from None
