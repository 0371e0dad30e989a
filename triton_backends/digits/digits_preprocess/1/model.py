"""Request body + Content-Type -> FP32 instances [N, 64], with the shared codec.

A bad request gets its own TritonError (HTTP 400), never an exception that
takes the stub down, and the other requests in the same execute() still answer.
The codec raises only RequestError for a bad body (its limits: README "Request
limits"); anything else is this model's fault and answers 500 for that request."""

import json
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils


def _error(message: str, code_name: str = "INVALID_ARG"):
    """A per-request error: INVALID_ARG is HTTP 400, INTERNAL 500."""
    code = getattr(pb_utils.TritonError, code_name, None)  # older backends: no codes
    if code is None:
        return pb_utils.TritonError(message)
    return pb_utils.TritonError(message, code)


class TritonPythonModel:
    def initialize(self, args):
        # digits_codec.py sits beside this file (copied in at build time).
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import digits_codec

        self.codec = digits_codec
        config = json.loads(args["model_config"])
        output = pb_utils.get_output_config_by_name(config, "INSTANCES")
        self.dtype = pb_utils.triton_string_to_numpy(output["data_type"])

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                body = _first(pb_utils.get_input_tensor_by_name(request, "PAYLOAD"))
                content_type = _first(pb_utils.get_input_tensor_by_name(request, "CONTENT_TYPE"))
                instances = self.codec.decode(body, content_type.decode("utf-8", "replace"))
            except self.codec.RequestError as exc:
                responses.append(pb_utils.InferenceResponse(error=_error(exc.message)))
                continue
            except Exception as exc:  # noqa: BLE001 - one request's fault, not the stub's
                pb_utils.Logger.log_error(f"digits_preprocess: {type(exc).__name__}: {exc}")
                responses.append(pb_utils.InferenceResponse(
                    error=_error(f"preprocessing failed ({type(exc).__name__})", "INTERNAL")))
                continue
            tensor = pb_utils.Tensor("INSTANCES", np.ascontiguousarray(instances, self.dtype))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses


def _first(tensor) -> bytes:
    """The single element of a [1] BYTES tensor (Triton checks that the input exists)."""
    value = tensor.as_numpy().reshape(-1)[0]
    return value if isinstance(value, bytes) else str(value).encode()
