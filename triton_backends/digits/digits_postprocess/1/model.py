"""Probabilities [N, 10] -> the JSON answer both flavors give, with the shared codec."""

import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import digits_codec

        self.codec = digits_codec

    def execute(self, requests):
        responses = []
        for request in requests:
            probabilities = pb_utils.get_input_tensor_by_name(request, "PROBABILITIES").as_numpy()
            body = self.codec.encode(probabilities)
            tensor = pb_utils.Tensor("RESPONSE", np.array([body], dtype=np.object_))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses
