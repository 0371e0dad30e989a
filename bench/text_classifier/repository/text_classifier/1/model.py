"""Triton Python backend of the text classifier: the same model and codec as the
TorchServe handler, in the raw-body convention (PAYLOAD and CONTENT_TYPE in, RESPONSE,
RESPONSE_CONTENT_TYPE and STATUS out). The dynamic batcher hands execute() several
requests; they go through the model in one call."""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import text_codec  # noqa: E402
from text_classifier import TextClassifier  # noqa: E402


def _string(request, name: str) -> bytes | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy().reshape(-1)[0]


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.shape = (1, 1) if int(config.get("max_batch_size", 0)) > 0 else (1,)
        self.device = torch.device("cuda" if args.get("model_instance_kind") == "GPU"
                                   else "cpu")
        self.model = TextClassifier()
        self.model.load_state_dict(torch.load(HERE / "weights.pt", map_location="cpu",
                                              weights_only=True))
        self.model.to(self.device).eval()
        self.seq_len = json.loads((HERE / "classifier.json").read_text())["seq_len"]
        self.vocabulary = text_codec.load_vocabulary(HERE / "vocab.txt")

    def execute(self, requests):
        texts, problems = [], []
        for request in requests:
            content_type = (_string(request, "CONTENT_TYPE") or b"").decode("utf-8", "replace")
            try:
                texts.append(text_codec.request_text(_string(request, "PAYLOAD") or b"",
                                                     content_type))
                problems.append(None)
            except ValueError as exc:
                texts.append(None)
                problems.append(str(exc))
        good = [t for t in texts if t is not None]
        answered = iter([])
        if good:
            ids = text_codec.encode(good, self.vocabulary, self.seq_len).to(self.device)
            with torch.inference_mode():
                answered = iter(text_codec.answers(self.model(ids).cpu()))
        return [self._response(json.dumps({"error": problem, "status": 400}), 400)
                if problem else self._response(next(answered), 200)
                for problem in problems]

    def _response(self, body: str, status: int):
        def text(name, value):
            return pb_utils.Tensor(name, np.array([value], dtype=np.object_).reshape(self.shape))

        return pb_utils.InferenceResponse(output_tensors=[
            text("RESPONSE", body.encode()),
            text("RESPONSE_CONTENT_TYPE", b"application/json"),
            pb_utils.Tensor("STATUS", np.array([status], dtype=np.int32).reshape(self.shape)),
        ])
