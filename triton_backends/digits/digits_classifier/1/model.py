"""The TorchScript digits classifier in Triton's Python backend.

Runs on CUDA when Triton placed this instance on a GPU (KIND_GPU) and one is
present, else on CPU. Dynamic batching hands execute() several requests: they
are run as one batch and split back, one response per request. Should the batch
fail, each request is run alone, so only the one that fails gets an error (500)."""

import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        model_file = config["parameters"]["model_file"]["string_value"]
        path = Path(args["model_repository"]) / args["model_version"] / model_file
        on_gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if on_gpu
                                   else "cpu")
        self.model = torch.jit.load(str(path), map_location=self.device).eval()
        # Self-test before Triton marks the model ready, so /ping never lies.
        with torch.inference_mode():
            probe = self.model(torch.zeros(1, 64, device=self.device))
        if tuple(probe.shape) != (1, 10) or not torch.isfinite(probe).all():
            raise RuntimeError(f"self-test failed: output shape {tuple(probe.shape)}")
        pb_utils.Logger.log_info(f"digits_classifier on {self.device}")

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, "INSTANCES").as_numpy()
                  for r in requests]
        try:
            parts = self._split(self._run(np.concatenate(arrays)), arrays)
        except Exception:  # noqa: BLE001 - find the request at fault, answer the others
            parts = []
            for array in arrays:
                try:
                    parts.append(self._run(array))
                except Exception as exc:  # noqa: BLE001
                    pb_utils.Logger.log_error(f"digits_classifier: {type(exc).__name__}: {exc}")
                    parts.append(exc)
        return [self._response(part) for part in parts]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            return self.model(tensor).float().cpu().numpy()

    @staticmethod
    def _split(probabilities: np.ndarray, arrays: list) -> list:
        parts, start = [], 0
        for array in arrays:
            parts.append(probabilities[start:start + len(array)])
            start += len(array)
        return parts

    @staticmethod
    def _response(part):
        if isinstance(part, Exception):
            code = getattr(pb_utils.TritonError, "INTERNAL", None)
            message = f"the classifier failed ({type(part).__name__})"
            error = pb_utils.TritonError(message, code) if code is not None else \
                pb_utils.TritonError(message)
            return pb_utils.InferenceResponse(error=error)
        tensor = pb_utils.Tensor("PROBABILITIES", np.ascontiguousarray(part))
        return pb_utils.InferenceResponse(output_tensors=[tensor])
