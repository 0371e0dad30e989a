"""TorchServe handler for the example digits model (TorchScript, see train_digits.py).

Request and response formats live in digits_codec, shared with the Triton backend. A bad
request fails with the codec's status and message through PredictionException. TorchServe
answers a whole batch with one status then, so with batching enabled one bad request fails
the requests batched with it.

TorchServe loads the one class defined here; keep helpers as methods or functions.
"""

from __future__ import annotations

import json
import logging

import digits_codec
import numpy as np
import torch
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException

logger = logging.getLogger(__name__)


class DigitsHandler(BaseHandler):
    """Decode requests with digits_codec, run the model, encode one response per request.

    Loading the TorchScript file, choosing the device and inference under
    torch.inference_mode() are BaseHandler's.
    """

    def __init__(self) -> None:
        super().__init__()
        # Instances per request of the batch in flight, from preprocess to postprocess:
        # BaseHandler.handle passes only the tensor between them. A worker handles one
        # batch at a time, so an attribute is safe.
        self._instance_counts: list[int] = []

    def initialize(self, context) -> None:
        super().initialize(context)
        self._self_test()
        logger.info("digits model loaded on device %s", self.device)

    def _self_test(self) -> None:
        """Fail loading, so the worker never reports READY, unless the model answers sanely."""
        with torch.inference_mode():
            output = self.model(torch.zeros(1, digits_codec.N_FEATURES, device=self.device))
        if tuple(output.shape) != (1, digits_codec.N_CLASSES):
            raise RuntimeError(f"model self-test: output shape {tuple(output.shape)}, not (1, 10)")
        if not torch.isfinite(output).all():
            raise RuntimeError("model self-test: output on a zero batch is not finite")

    def preprocess(self, data: list[dict]) -> torch.Tensor:
        batches = []
        for idx, row in enumerate(data):
            try:
                batches.append(digits_codec.decode(_body_bytes(row), self._content_type(idx)))
            except digits_codec.RequestError as err:
                raise PredictionException(err.message, err.status) from err
        self._instance_counts = [len(features) for features in batches]
        return torch.from_numpy(np.concatenate(batches)).to(self.device)

    def postprocess(self, data: torch.Tensor) -> list[bytes]:
        probabilities = data.detach().cpu().numpy()
        boundaries = np.cumsum(self._instance_counts)[:-1]
        responses = []
        for idx, request_probabilities in enumerate(np.split(probabilities, boundaries)):
            responses.append(digits_codec.encode(request_probabilities))
            self.context.set_response_content_type(idx, digits_codec.RESPONSE_CONTENT_TYPE)
        return responses

    def _content_type(self, idx: int) -> str:
        headers = self.context.get_all_request_header(idx)
        # Header names arrive as the client spelled them; HTTP says they are case-insensitive.
        for name, value in headers.items():
            if name.lower() == "content-type" and isinstance(value, str):
                return value
        # TorchServe also files each body part's own type under the part's name.
        for part in ("data", "body"):
            part_headers = headers.get(part)
            if isinstance(part_headers, dict) and part_headers.get("content-type"):
                return part_headers["content-type"]
        return ""


def _body_bytes(row: dict) -> bytes:
    """The request body as bytes, undoing TorchServe's parsing of JSON and text bodies."""
    body = row.get("data")
    if body is None:
        body = row.get("body")
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    # TorchServe hands an application/json body over already parsed.
    return json.dumps(body).encode("utf-8")
