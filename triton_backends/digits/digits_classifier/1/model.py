"""The TorchScript digits classifier in Triton's Python backend.

Runs on CUDA when Triton placed this instance on a GPU (KIND_GPU) and one is
present, else on CPU. Dynamic batching hands execute() several requests: they
are run as one batch and split back, one response per request."""

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
        batch = torch.from_numpy(np.concatenate(arrays)).to(self.device)
        with torch.inference_mode():
            probabilities = self.model(batch).float().cpu().numpy()
        responses, start = [], 0
        for array in arrays:
            part = probabilities[start:start + len(array)]
            start += len(array)
            tensor = pb_utils.Tensor("PROBABILITIES", np.ascontiguousarray(part))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses
