"""A TorchServe model archive served by Triton's Python backend, its handler unchanged.

byoc generates one such model per archive (`python build.py triton --mar FILE`): the
archive is unpacked into archive/ beside this file at build time, its requirements are
installed in the image. At load, each instance does what a TorchServe worker does:

- copies the archive to a writable folder under /tmp (TorchServe extracts every .mar to
  /tmp/models/<id>; /opt/ml/model is read-only on SageMaker) and works there: the
  working directory, sys.path (<handler module>, then the archive folder) and the
  environment (PYTHONPATH, TS_DECODE_INPUT_REQUEST ...) of a TorchServe 0.12 worker;
- loads the handler with TorchServe's own loader (ts.model_loader: a module with one
  handler class, module:function entry points, stock handler names) and its metrics
  cache, then calls initialize once.

Per batch, each request is written as the TorchServe frontend frames it (headers, one
"body" parameter, or one per multipart field) and read back with TorchServe's own
decoder (so JSON bodies arrive parsed, text as str, the rest as bytes), handed to
TorchServe's Service.predict, and its answer frame is unpacked: per request a status,
content type, headers and body. PredictionException(message, code) keeps its code; an
exception is 503 "Prediction failed", exactly as TorchServe answers.
docs/torchserve-on-triton.md lists what is and is not supported."""

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

import numpy as np
import triton_python_backend_utils as pb_utils

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


def _string(request, name: str, default: bytes = b"") -> bytes:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    value = tensor.as_numpy().reshape(-1)[0]
    return value if isinstance(value, bytes) else str(value).encode()


class TritonPythonModel:
    def initialize(self, args):
        from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
        from ts.model_loader import TsModelLoader

        configure_logging()
        config = json.loads(args["model_config"])
        self.batched = int(config.get("max_batch_size", 0)) > 0
        archive = Path(args["model_repository"]) / args["model_version"] / "archive"
        manifest = json.loads((archive / "MAR-INF" / "MANIFEST.json").read_text())
        handler = manifest["model"]["handler"]
        model_name = manifest["model"].get("modelName") or args["model_name"]
        work = WORK_ROOT / f"{args['model_name']}-{args['model_instance_name']}"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(archive, work)
        module = handler.split(":", 1)[0].removesuffix(".py").split("/")[-1]
        os.chdir(work)
        sys.path[:0] = [str(work / module), str(work)]
        os.environ.update(WORKER_ENV)
        os.environ["PYTHONPATH"] = f"{module}:{work}:" + os.environ.get("PYTHONPATH", "")
        on_gpu = args.get("model_instance_kind") == "GPU"
        gpu_id = int(args["model_instance_device_id"]) if on_gpu else None
        batch_size = max(1, int(config.get("max_batch_size", 0)))
        import ts

        metrics = MetricsCacheYamlImpl(
            config_file_path=str(Path(ts.__file__).parent / "configs" / "metrics.yaml"))
        metrics.initialize_cache()
        metrics.model_name = model_name
        self.service = TsModelLoader().load(model_name, str(work), handler, gpu_id,
                                            batch_size, None, True, metrics)
        self.service.set_cl_socket(None)
        pb_utils.Logger.log_info(f"{model_name}: TorchServe handler {handler} loaded on "
                                 f"{f'cuda:{gpu_id}' if on_gpu else 'cpu'} (batch {batch_size})")

    def execute(self, requests):
        from ts.protocol.otf_message_handler import retrieve_msg

        framed = []
        for request in requests:
            content_type = _string(request, "CONTENT_TYPE").decode("utf-8", "replace")
            try:
                headers = json.loads(_string(request, "HEADERS", b"{}") or b"{}")
            except ValueError:
                headers = {}
            headers = {str(k): str(v) for k, v in dict(headers).items()}
            # The TorchServe frontend adds these two to every request's headers.
            headers.setdefault("explain", "False")
            headers.setdefault("url_path", "")
            framed.append({"id": uuid.uuid4().hex, "headers": headers,
                           "parameters": parameters(_string(request, "PAYLOAD"), content_type)})
        _, batch = retrieve_msg(_Frames(predict_frame(framed)))
        answers = read_answers(bytes(self.service.predict(batch)), len(framed))
        return [self._response(*answer) for answer in answers]

    def _response(self, status, content_type, headers, body):
        shape = (1, 1) if self.batched else (1,)

        def text(name, value):
            return pb_utils.Tensor(name, np.array([value], dtype=np.object_).reshape(shape))

        return pb_utils.InferenceResponse(output_tensors=[
            text("RESPONSE", body),
            text("RESPONSE_CONTENT_TYPE", content_type.encode()),
            text("RESPONSE_HEADERS", json.dumps(headers).encode()),
            pb_utils.Tensor("STATUS", np.array([status], dtype=np.int32).reshape(shape)),
        ])
