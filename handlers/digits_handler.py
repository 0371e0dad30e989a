"""TorchServe handler for the example digits model (TorchScript, see train_digits.py).

Request and response formats live in digits_codec, shared with the Triton backend. Each
request of a batch is answered on its own: a bad one gets the codec's 4xx status and a
JSON error body (context.set_response_status for its index), its batch-mates their
predictions. With batching on (the gpu variants batch 8) one bad request fails no other.

TorchServe loads the one class defined here; keep helpers as methods or functions.
"""

from __future__ import annotations

import http
import json
import logging

import digits_codec
import numpy as np
import torch
from ts.torch_handler.base_handler import BaseHandler

logger = logging.getLogger(__name__)


class DigitsHandler(BaseHandler):
    """Decode requests with digits_codec, run the model, encode one response per request.

    Loading the TorchScript file, choosing the device and inference under
    torch.inference_mode() are BaseHandler's.
    """

    def __init__(self) -> None:
        super().__init__()
        # Per request of the batch in flight, from preprocess to postprocess (BaseHandler.
        # handle passes only the tensor between them): its instance count, or the
        # RequestError that refused it. A worker handles one batch at a time.
        self._outcomes: list[int | digits_codec.RequestError] = []

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
        """The good requests' instances as one tensor; bad requests are remembered."""
        self._outcomes, good = [], []
        for idx, row in enumerate(data):
            try:
                features = digits_codec.decode(_body_bytes(row), self._content_type(idx))
            except digits_codec.RequestError as err:
                self._outcomes.append(err)
                continue
            self._outcomes.append(len(features))
            good.append(features)
        if not good:
            return torch.empty(0, digits_codec.N_FEATURES, device=self.device)
        return torch.from_numpy(np.concatenate(good)).to(self.device)

    def inference(self, data: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if len(data) == 0:  # every request of the batch was refused
            return torch.empty(0, digits_codec.N_CLASSES)
        return super().inference(data, *args, **kwargs)

    def postprocess(self, data: torch.Tensor) -> list[bytes]:
        probabilities = data.detach().cpu().numpy()
        responses, start = [], 0
        for idx, outcome in enumerate(self._outcomes):
            self.context.set_response_content_type(idx, digits_codec.RESPONSE_CONTENT_TYPE)
            if isinstance(outcome, digits_codec.RequestError):
                self.context.set_response_status(outcome.status, _phrase(outcome.status), idx)
                responses.append(outcome.to_json())
                continue
            responses.append(digits_codec.encode(probabilities[start:start + outcome]))
            start += outcome
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


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
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
    try:
        return json.dumps(body).encode("utf-8")
    except (ValueError, TypeError, RecursionError) as err:
        raise digits_codec.RequestError("the JSON body cannot be read") from err
