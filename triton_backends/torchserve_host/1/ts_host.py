"""TorchServe's worker, in process: load an archive's handler and answer batches.

What triton_backends/torchserve_host/1/model.py (the Triton model) runs, and what
`build.py compare` times as the in-process baseline; no Triton here. A TorchServe 0.12
worker is reproduced, measured against real ones (docs/torchserve-on-triton.md): the
archive copied to a writable folder under /tmp, that folder as the working directory and
on sys.path after <handler module>, the worker's environment, TorchServe's own loader and
metrics cache, then initialize once. Each request is framed as TorchServe's frontend
frames it (headers, a "body" parameter or one per multipart field) and read back with
TorchServe's own decoder; Service.predict answers; its answer frame is unpacked into
(status, content type, headers, body) per request."""

import email.parser
import email.policy
import io
import json
import logging
import os
import shutil
import struct
import sys
import uuid
from pathlib import Path

WORK_ROOT = Path("/tmp/byoc-torchserve-host")
# The worker environment TorchServe 0.12 sets (measured in its workers).
WORKER_ENV = {"TS_DECODE_INPUT_REQUEST": "true", "TS_IPEX_ENABLE": "false",
              "TS_IPEX_GPU_ENABLE": "false"}


class _PerRequestLines(logging.Filter):
    """TorchServe's decoder logs a line per request at INFO; its frontend drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Backend received inference")


def configure_logging(env=os.environ) -> None:
    """Handler logs at the container's level on stdout, as in a TorchServe worker, without
    TorchServe's per-request metric and decoder lines (unless DEBUG)."""
    given = (env.get("BYOC_LOG_LEVEL") or env.get("SAGEMAKER_CONTAINER_LOG_LEVEL") or "INFO")
    level = logging.getLevelName(int(given)) if given.isdigit() else given.upper()
    level = level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO"
    logging.basicConfig(stream=sys.stdout, level=level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        logging.getLogger("ts.metrics").setLevel(logging.WARNING)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_PerRequestLines())


class _Frames:
    """A socket-like reader over bytes, for TorchServe's protocol decoder."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def recv(self, n: int) -> bytes:
        return self._data.read(n)


def _pack(value: bytes) -> bytes:
    return struct.pack("!i", len(value)) + value


def predict_frame(requests: list[dict]) -> bytes:
    """The frontend's PREDICT message: for each request an id, headers and parameters."""
    out = bytearray(b"I")
    for request in requests:
        out += _pack(request["id"].encode())
        for name, value in request["headers"].items():
            out += _pack(name.encode()) + _pack(value.encode())
        out += struct.pack("!i", -1)
        for name, content_type, value in request["parameters"]:
            out += _pack(name.encode()) + _pack(content_type.encode()) + _pack(value)
        out += struct.pack("!i", -1)
    out += struct.pack("!i", -1)
    return bytes(out)


def parameters(body: bytes, content_type: str) -> list[tuple[str, str, bytes]]:
    """What the frontend passes as parameters: the body, or one per multipart field."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "multipart/form-data":
        return [("body", media, body)]
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition") or "data"
        declared = part.get("Content-Type")
        fields.append((name, str(declared).split(";")[0].strip() if declared else "",
                       part.get_payload(decode=True) or b""))
    return fields or [("body", media, body)]


def read_answers(frame: bytes, count: int) -> list[tuple[int, str, dict, bytes]]:
    """TorchServe's predict response frame -> (status, content type, headers, body) each."""
    view = memoryview(frame)
    at = 0

    def take_int() -> int:
        nonlocal at
        (value,) = struct.unpack_from("!i", view, at)
        at += 4
        return value

    def take_bytes() -> bytes:
        nonlocal at
        n = take_int()
        value = bytes(view[at:at + n]) if n > 0 else b""
        at += max(n, 0)
        return value

    code = take_int()
    message = take_bytes().decode("utf-8", "replace")
    answers = []
    for _ in range(count):
        take_bytes()  # request id
        content_type = take_bytes().decode("utf-8", "replace")
        status = take_int()
        take_bytes()  # reason phrase
        headers = {}
        for _ in range(take_int()):
            key = take_bytes().decode("utf-8", "replace")
            headers[key] = take_bytes().decode("utf-8", "replace")
        body = take_bytes()
        if code != 200:  # a batch-level failure: every request gets its code and message
            answers.append((code, "", {}, message.encode()))
        else:
            answers.append((status, content_type, headers, body))
    return answers


def load(archive: Path, work: Path, name: str | None, gpu_id: int | None,
         batch_size: int):
    """TorchServe's Service for the archive, initialised, working in `work`."""
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
    from ts.model_loader import TsModelLoader

    manifest = json.loads((archive / "MAR-INF" / "MANIFEST.json").read_text())
    handler = manifest["model"]["handler"]
    model_name = manifest["model"].get("modelName") or name
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(archive, work)
    module = handler.split(":", 1)[0].removesuffix(".py").split("/")[-1]
    os.chdir(work)
    sys.path[:0] = [str(work / module), str(work)]
    os.environ.update(WORKER_ENV)
    os.environ["PYTHONPATH"] = f"{module}:{work}:" + os.environ.get("PYTHONPATH", "")
    import ts

    metrics = MetricsCacheYamlImpl(
        config_file_path=str(Path(ts.__file__).parent / "configs" / "metrics.yaml"))
    metrics.initialize_cache()
    metrics.model_name = model_name
    service = TsModelLoader().load(model_name, str(work), handler, gpu_id, batch_size, None,
                                   True, metrics)
    service.set_cl_socket(None)
    return service, model_name, handler


def answer(service, requests: list[tuple[bytes, str, dict]]) -> list[tuple]:
    """(body, content type, headers) per request -> (status, content type, headers, body)."""
    from ts.protocol.otf_message_handler import retrieve_msg

    framed = []
    for body, content_type, headers in requests:
        headers = {str(k): str(v) for k, v in dict(headers).items()}
        # TorchServe's frontend passes every HTTP header, Content-Type included (the front
        # sends it beside the headers): handlers read it to decode bodies TorchServe left
        # as bytes.
        if content_type and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = content_type
        # The TorchServe frontend adds these two to every request's headers.
        headers.setdefault("explain", "False")
        headers.setdefault("url_path", "")
        framed.append({"id": uuid.uuid4().hex, "headers": headers,
                       "parameters": parameters(body, content_type)})
    _, batch = retrieve_msg(_Frames(predict_frame(framed)))
    return read_answers(bytes(service.predict(batch)), len(framed))
