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

import json
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

# ts_host.py sits beside this file: TorchServe's worker, in process.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ts_host import (  # noqa: E402, F401  (the framing names are also used by tests)
    WORK_ROOT,
    WORKER_ENV,
    _Frames,
    answer,
    configure_logging,
    load,
    parameters,
    predict_frame,
    read_answers,
)


def _string(request, name: str, default: bytes = b"") -> bytes:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    value = tensor.as_numpy().reshape(-1)[0]
    return value if isinstance(value, bytes) else str(value).encode()


class TritonPythonModel:
    def initialize(self, args):
        configure_logging()
        config = json.loads(args["model_config"])
        self.batched = int(config.get("max_batch_size", 0)) > 0
        archive = Path(args["model_repository"]) / args["model_version"] / "archive"
        work = WORK_ROOT / f"{args['model_name']}-{args['model_instance_name']}"
        on_gpu = args.get("model_instance_kind") == "GPU"
        gpu_id = int(args["model_instance_device_id"]) if on_gpu else None
        batch_size = max(1, int(config.get("max_batch_size", 0)))
        self.service, model_name, handler = load(archive, work, args["model_name"], gpu_id,
                                                 batch_size)
        pb_utils.Logger.log_info(f"{model_name}: TorchServe handler {handler} loaded on "
                                 f"{f'cuda:{gpu_id}' if on_gpu else 'cpu'} (batch {batch_size})")

    def execute(self, requests):
        decoded = []
        for request in requests:
            content_type = _string(request, "CONTENT_TYPE").decode("utf-8", "replace")
            try:
                headers = json.loads(_string(request, "HEADERS", b"{}") or b"{}")
            except ValueError:
                headers = {}
            decoded.append((_string(request, "PAYLOAD"), content_type, dict(headers)))
        return [self._response(*reply) for reply in answer(self.service, decoded)]

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
