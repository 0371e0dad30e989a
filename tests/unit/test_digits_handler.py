"""DigitsHandler inside TorchServe 0.12's own worker code, without a server.

Requests are framed as the Java frontend sends them to a worker and parsed with TorchServe's
protocol code, so the handler sees what it sees in production: bytearray bodies, JSON bodies
already parsed, headers spelled as the client sent them. Responses are checked either as the
handler returns them or as the worker encodes them for the frontend.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import digits_codec
import digits_data
import digits_handler
import numpy as np
import pytest
import torch
import train_digits
import ts
from digits_handler import DigitsHandler
from PIL import Image
from torch import nn
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
from ts.protocol import otf_message_handler
from ts.service import Service
from ts.utils.util import list_classes_from_module

# torch 2.13 deprecates TorchScript, which TorchServe 0.12's BaseHandler loads with torch.jit.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

MANIFEST = {"model": {"serializedFile": "digits.pt", "modelName": "digits"}}
END = struct.pack("!i", -1)


# --- a TorchServe worker without sockets ----------------------------------------------------


class FakeSocket:
    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def recv(self, size: int) -> bytes:
        return self._stream.read(size)


def sized(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


def frontend_batch(
    requests: list[tuple[bytes, str]], header_name: str = "Content-Type"
) -> list[dict]:
    """Frame (body, content type) requests as the frontend does and parse them as a worker."""
    frames = bytearray()
    for idx, (body, content_type) in enumerate(requests):
        frames += sized(f"request-{idx}".encode())
        frames += sized(header_name.encode()) + sized(content_type.encode()) + END
        frames += sized(b"body") + sized(content_type.encode()) + sized(body) + END
    frames += END
    return otf_message_handler._retrieve_inference_msg(FakeSocket(bytes(frames)))


def make_service(model_dir: Path) -> tuple[Service, DigitsHandler]:
    metrics = MetricsCacheYamlImpl(Path(ts.__file__).parent / "configs" / "metrics.yaml")
    metrics.initialize_cache()
    metrics.model_name = "digits"
    handler = DigitsHandler()
    service = Service(
        "digits", str(model_dir), MANIFEST, handler.handle, None, 8, metrics_cache=metrics
    )
    service.set_cl_socket(None)
    handler.initialize(service.context)
    return service, handler


def handle(service: Service, handler: DigitsHandler, batch: list[dict]) -> list[bytes]:
    """Call the handler the way Service.predict does, letting its exceptions through."""
    processors, rows, request_ids = Service.retrieve_data_for_inference(batch)
    service.context.request_processor = processors
    service.context.request_ids = request_ids
    service.context.metrics.request_ids = request_ids
    return handler.handle(rows, service.context)


def parse_worker_response(message: bytes) -> tuple[int, str, list[dict]]:
    """Decode create_predict_response's frame: batch status and message, then each request."""
    reader = io.BytesIO(message)

    def read_int() -> int:
        return struct.unpack("!i", reader.read(4))[0]

    def read_text() -> str:
        return reader.read(read_int()).decode("utf-8")

    code, text = read_int(), read_text()
    responses = []
    while (id_length := read_int()) != -1:  # -1 ends the list
        response = {"request_id": reader.read(id_length).decode("utf-8")}
        response["content_type"] = read_text()
        response["status"], response["phrase"] = read_int(), read_text()
        response["headers"] = {read_text(): read_text() for _ in range(read_int())}
        response["body"] = reader.read(read_int())
        responses.append(response)
    assert not reader.read(), "bytes after the end of the response list"
    return code, text, responses


# --- fixtures and request bodies ------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits-model")
    assert train_digits.main(["--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def worker(model_dir: Path) -> Iterator[tuple[Service, DigitsHandler]]:
    yield make_service(model_dir)


@pytest.fixture(scope="module")
def test_digits() -> tuple[np.ndarray, np.ndarray]:
    _, x_test, _, y_test = digits_data.load_split()
    return x_test[:40], y_test[:40]


def json_body(features: np.ndarray) -> bytes:
    return json.dumps({"instances": features.tolist()}).encode("utf-8")


def png_body(features: np.ndarray) -> bytes:
    eight_bit = np.round(features.reshape(8, 8) * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.kron(eight_bit, np.ones((4, 4), dtype=np.uint8)), "L").save(buffer, "PNG")
    return buffer.getvalue()


def labels(response: bytes) -> list[int]:
    return [p["label"] for p in json.loads(response)["predictions"]]


def expected_labels(model_dir: Path, features: np.ndarray) -> list[int]:
    model = torch.jit.load(str(model_dir / "digits.pt"), map_location="cpu")
    with torch.inference_mode():
        return model(torch.from_numpy(features)).argmax(dim=1).tolist()


# --- loading --------------------------------------------------------------------------------


def test_module_defines_exactly_one_class() -> None:
    # TorchServe refuses a handler module that defines more than one class.
    assert list_classes_from_module(digits_handler) == [DigitsHandler]


def test_initialize_loads_the_model_on_cpu(worker: tuple[Service, DigitsHandler]) -> None:
    _, handler = worker
    assert handler.initialized
    assert handler.device == torch.device("cpu")


class WrongShape(nn.Module):
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.zeros(pixels.shape[0], 9)


class NotFinite(nn.Module):
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.full((pixels.shape[0], 10), float("nan"))


@pytest.mark.parametrize(
    "model, message", [(WrongShape(), r"shape \(1, 9\)"), (NotFinite(), "not finite")]
)
def test_initialize_refuses_a_broken_model(tmp_path: Path, model: nn.Module, message: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(model).save(str(tmp_path / "digits.pt"))
    with pytest.raises(RuntimeError, match=f"self-test: .*{message}"):
        make_service(tmp_path)


# --- predictions ----------------------------------------------------------------------------


def test_json_request(worker, model_dir: Path, test_digits) -> None:
    features, truth = test_digits
    batch = frontend_batch([(json_body(features), "application/json")])
    assert isinstance(batch[0]["parameters"][0]["value"], dict)  # TorchServe parsed it
    [response] = handle(*worker, batch)
    predicted = labels(response)
    assert predicted == expected_labels(model_dir, features)
    assert np.mean(np.array(predicted) == truth) >= 0.9
    service, _ = worker
    assert service.context.get_response_content_type(0) == "application/json"


def test_json_with_charset_arrives_unparsed_and_decodes(worker, model_dir: Path, test_digits):
    features, _ = test_digits
    batch = frontend_batch([(json_body(features[:3]), "application/json; charset=utf-8")])
    assert isinstance(batch[0]["parameters"][0]["value"], bytearray)
    [response] = handle(*worker, batch)
    assert labels(response) == expected_labels(model_dir, features[:3])


def test_png_request(worker, model_dir: Path, test_digits) -> None:
    features, _ = test_digits
    for digit in features[:5]:
        [response] = handle(*worker, frontend_batch([(png_body(digit), "image/png")]))
        assert labels(response) == expected_labels(model_dir, digit.reshape(1, 64))


def test_npy_request(worker, model_dir: Path, test_digits) -> None:
    features, _ = test_digits
    buffer = io.BytesIO()
    np.save(buffer, features[:4].reshape(4, 8, 8))
    [response] = handle(*worker, frontend_batch([(buffer.getvalue(), "application/x-npy")]))
    assert labels(response) == expected_labels(model_dir, features[:4])


def test_batch_of_two_requests_is_split_per_request(worker, model_dir: Path, test_digits):
    features, _ = test_digits
    batch = frontend_batch(
        [(json_body(features[:3]), "application/json"), (png_body(features[3]), "image/png")]
    )
    first, second = handle(*worker, batch)
    assert labels(first) == expected_labels(model_dir, features[:3])
    assert labels(second) == expected_labels(model_dir, features[3:4])
    service, _ = worker
    assert [service.context.get_response_content_type(i) for i in (0, 1)] == [
        "application/json"
    ] * 2
    probabilities = json.loads(second)["predictions"][0]["probabilities"]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("header_name", ["content-type", "CONTENT-TYPE"])
def test_header_name_in_any_case(worker, test_digits, header_name: str) -> None:
    features, _ = test_digits
    batch = frontend_batch([(json_body(features[:1]), "application/json")], header_name)
    assert len(labels(handle(*worker, batch)[0])) == 1


def test_body_part_content_type_is_used_without_a_header(worker, test_digits) -> None:
    features, _ = test_digits
    batch = frontend_batch([(png_body(features[0]), "image/png")])
    batch[0]["headers"] = []
    assert len(labels(handle(*worker, batch)[0])) == 1


# --- bad requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, content_type, status, message",
    [
        (b'{"instances": [[1, 2]]}', "application/json", 400, "got shape (1, 2)"),
        (b"{not json", "application/json; charset=utf-8", 400, "invalid JSON"),
        (b"not a png", "image/png", 400, "not a decodable PNG or JPEG image"),
        (b"", "application/x-npy", 400, "empty request body"),
        (b"hello", "text/plain", 415, "unsupported content type text/plain"),
        (b'{"instances": ' + b"[" * 100_000, "application/json", 400, "nested 100001 deep"),
        (b'{"instances": [[' + b"1" * 5000 + b"]]}", "application/json", 400, "40 digits"),
    ],
)
def test_bad_request_gets_its_status_and_a_json_error(
    worker, body: bytes, content_type: str, status: int, message: str
) -> None:
    service, handler = worker
    [answer] = handle(service, handler, frontend_batch([(body, content_type)]))
    assert service.context.get_response_status(0)[0] == status
    assert service.context.get_response_content_type(0) == "application/json"
    error = json.loads(answer)
    assert error["status"] == status and message in error["error"]


def test_worker_answers_a_bad_request_with_the_codec_status_and_message(worker) -> None:
    service, _ = worker
    batch = frontend_batch([(b"hello", "text/csv")])
    code, _, [response] = parse_worker_response(service.predict(batch))
    supported = ", ".join(digits_codec.SUPPORTED_CONTENT_TYPES)
    expected = f"unsupported content type text/csv; use one of {supported}"
    # The batch succeeded; the request carries its own status, reason and JSON body,
    # which the frontend sends as the HTTP answer.
    assert code == 200
    assert (response["request_id"], response["status"], response["phrase"]) == (
        "request-0", 415, "Unsupported Media Type")
    assert response["content_type"] == "application/json"
    assert json.loads(response["body"])["error"] == expected


def test_one_bad_request_fails_only_itself_in_a_batch(worker, model_dir, test_digits) -> None:
    """The gpu variants batch 8: a bad request answers 4xx, its batch-mates 200."""
    service, _ = worker
    features, _ = test_digits
    requests = [(json_body(features[:1]), "application/json"), (b"{}", "application/json"),
                (png_body(features[1]), "image/png"),
                (b'{"instances": ' + b"[" * 100_000, "application/json"),
                (json_body(features[2:5]), "application/json"), (b"x", "text/csv")]
    code, _, responses = parse_worker_response(service.predict(frontend_batch(requests)))
    assert code == 200
    assert [r["status"] for r in responses] == [200, 400, 200, 400, 200, 415]
    assert labels(responses[0]["body"]) == expected_labels(model_dir, features[:1])
    assert labels(responses[2]["body"]) == expected_labels(model_dir, features[1:2])
    assert labels(responses[4]["body"]) == expected_labels(model_dir, features[2:5])
    assert "instances" in json.loads(responses[1]["body"])["error"]


def test_a_batch_of_only_bad_requests_runs_no_inference(worker, monkeypatch) -> None:
    service, handler = worker
    monkeypatch.setattr(handler, "model", None)  # calling it would raise
    requests = [(b"{}", "application/json"), (b"", "image/png")]
    code, _, responses = parse_worker_response(service.predict(frontend_batch(requests)))
    assert (code, [r["status"] for r in responses]) == (200, [400, 400])


def test_worker_answers_a_good_request_with_json(worker, model_dir: Path, test_digits) -> None:
    service, _ = worker
    features, _ = test_digits
    batch = frontend_batch([(json_body(features[:2]), "application/json")])
    code, _, [response] = parse_worker_response(service.predict(batch))
    assert (code, response["status"], response["content_type"]) == (200, 200, "application/json")
    assert labels(response["body"]) == expected_labels(model_dir, features[:2])
