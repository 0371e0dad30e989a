"""triton_backends/torchserve_host/1/model.py: a TorchServe archive's handler served by
Triton's Python backend, run here without Triton. A small fake triton_python_backend_utils
stands in for Triton's (Tensor, InferenceResponse, get_input_tensor_by_name, Logger); the
handler runs on the REAL TorchServe Python package (`ts`) from the venv, from archives
made by the real torch-model-archiver. The behaviours checked are TorchServe 0.12's, as
measured on its own workers (docs/torchserve-on-triton.md)."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from archiving import make_mar

HOST = Path(__file__).resolve().parents[2] / "triton_backends" / "torchserve_host" / "1" / \
    "model.py"

# -- handlers in the shapes of TorchServe's examples ----------------------------------------

# A BaseHandler subclass that overrides only pre- and post-processing (like the MNIST
# example); BaseHandler.initialize loads the TorchScript weights from the archive.
LINEAR_HANDLER = '''\
import torch
from ts.torch_handler.base_handler import BaseHandler


class LinearHandler(BaseHandler):
    def preprocess(self, data):
        return torch.tensor([row["body"]["inputs"] for row in data], dtype=torch.float32)

    def postprocess(self, data):
        return data.tolist()
'''

# A module:function handler that reports what a TorchServe worker gives it, and behaves
# as each request's x-probe header asks.
PROBE_HANDLER = '''\
import json
import os
import sys

from ts.utils.util import PredictionException

INITIALIZED = []
BATCHES = []


def handle(data, context):
    if data is None:  # TorchServe calls the entry point with None to initialize
        INITIALIZED.append(context)
        observed = {
            "cwd": os.getcwd(), "sys_path": sys.path[:2],
            "env": {k: os.environ.get(k) for k in ("TS_DECODE_INPUT_REQUEST", "TS_IPEX_ENABLE",
                                                    "TS_IPEX_GPU_ENABLE", "PYTHONPATH")},
            "model_name": context.model_name, "manifest": context.manifest,
            "system_properties": context.system_properties,
            "model_yaml_config": context.model_yaml_config,
        }
        with open(os.path.join(context.system_properties["model_dir"], "observed.json"),
                  "w") as f:
            json.dump(observed, f)
        return None
    BATCHES.append(len(data))
    probes = [context.get_request_header(i, "x-probe") for i in range(len(data))]
    if "prediction-exception" in probes:
        raise PredictionException("digit out of range", 422)
    if "crash" in probes:
        raise RuntimeError("handler bug")
    if "oom" in probes:
        raise MemoryError()
    if "not-a-list" in probes:
        return {"not": "a list"}
    if "short" in probes:
        return data[:-1]
    answers = []
    for i, row in enumerate(data):
        if probes[i] == "status":
            context.set_response_status(201, "Created", i)
            context.set_response_header(i, "X-Amzn-SageMaker-Custom-Attributes", "k=v")
            context.set_response_content_type(i, "application/x-probe")
        answers.append({
            "fields": {k: [type(v).__name__, v if isinstance(v, (str, dict, list)) else
                           bytes(v).hex()] for k, v in row.items()},
            "headers": context.get_all_request_header(i),
            "batch": len(data),
        })
    return answers
'''


# -- a fake triton_python_backend_utils ---------------------------------------------------

class Tensor:
    def __init__(self, name: str, array):
        self._name, self._array = name, np.asarray(array)

    def name(self) -> str:
        return self._name

    def as_numpy(self):
        return self._array


class InferenceResponse:
    def __init__(self, output_tensors=(), error=None):
        self._outputs, self.error = list(output_tensors), error

    def output_tensors(self):
        return self._outputs


class Request:
    def __init__(self, tensors: dict[str, Tensor]):
        self.tensors = tensors


class Logger:
    lines: list[str] = []

    @classmethod
    def log_info(cls, message):
        cls.lines.append(message)

    log_warn = log_error = log_verbose = log_info


def fake_pb_utils() -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor, module.InferenceResponse, module.Logger = Tensor, InferenceResponse, Logger
    module.get_input_tensor_by_name = lambda request, name: request.tensors.get(name)
    return module


# -- running the host ---------------------------------------------------------------------

class Host:
    """The generated Triton model: its repository folder and the loaded TritonPythonModel."""

    def __init__(self, module, model, folder: Path, work_root: Path, batched: bool):
        self.module, self.model, self.folder = module, model, folder
        self.work_root, self.batched = work_root, batched

    @property
    def work(self) -> Path:
        (found,) = self.work_root.iterdir()
        return found

    def observed(self) -> dict:
        return json.loads((self.work / "observed.json").read_text())

    def request(self, body: bytes, content_type: str = "application/json",
                headers: dict | None = None) -> Request:
        shape = (1, 1) if self.batched else (1,)

        def text(value: bytes) -> Tensor:
            return Tensor("", np.array([value], dtype=np.object_).reshape(shape))

        tensors = {"PAYLOAD": text(body), "CONTENT_TYPE": text(content_type.encode())}
        if headers is not None:
            tensors["HEADERS"] = text(json.dumps(headers).encode())
        return Request(tensors)

    def execute(self, *requests: Request) -> list[tuple[int, str, dict, bytes]]:
        """(STATUS, RESPONSE_CONTENT_TYPE, RESPONSE_HEADERS, RESPONSE) of each response."""
        responses = self.model.execute(list(requests))
        assert len(responses) == len(requests)
        out = []
        for response in responses:
            tensors = {t.name(): t.as_numpy() for t in response.output_tensors()}
            shape = (1, 1) if self.batched else (1,)
            assert all(v.shape == shape for v in tensors.values())
            out.append((int(tensors["STATUS"].reshape(-1)[0]),
                        tensors["RESPONSE_CONTENT_TYPE"].reshape(-1)[0].decode(),
                        json.loads(tensors["RESPONSE_HEADERS"].reshape(-1)[0]),
                        tensors["RESPONSE"].reshape(-1)[0]))
        return out

    def ask(self, body=b"{}", content_type="application/json", headers=None) -> dict:
        ((status, _, _, answer),) = self.execute(self.request(body, content_type, headers))
        assert status == 200, answer
        return json.loads(answer)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """initialize() changes the process as a TorchServe worker's start does (cwd, sys.path,
    environment, logging); undo all of it, and forget the handler modules it imported."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("TS_DECODE_INPUT_REQUEST", "TS_IPEX_ENABLE", "TS_IPEX_GPU_ENABLE",
                 "PYTHONPATH"):
        monkeypatch.setenv(name, "")  # recorded, so monkeypatch restores the original
        monkeypatch.delenv(name)
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_pb_utils())
    ts_metrics = logging.getLogger("ts.metrics")
    level, handlers = ts_metrics.level, list(logging.getLogger().handlers)
    filters = {h: list(h.filters) for h in handlers}
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        file = getattr(sys.modules[name], "__file__", None) or ""
        if file.startswith(str(tmp_path)):
            del sys.modules[name]
    ts_metrics.setLevel(level)
    for handler in handlers:
        handler.filters[:] = filters[handler]


def load_host(tmp_path: Path, mar: Path, *, max_batch_size: int = 0, kind: str = "CPU",
              device: str = "0", instance: str = "m_0") -> Host:
    """Lay the archive out as the image does (NAME/1/archive, unpacked), import model.py
    and initialize it with the arguments Triton's Python backend passes."""
    folder = tmp_path / "repository" / "m"
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(folder / "1" / "archive")
    spec = importlib.util.spec_from_file_location(f"torchserve_host_{instance}", HOST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    work_root = tmp_path / "work"
    module.WORK_ROOT = work_root
    model = module.TritonPythonModel()
    model.initialize({
        "model_config": json.dumps({"name": "m", "max_batch_size": max_batch_size}),
        "model_repository": str(folder), "model_version": "1", "model_name": "m",
        "model_instance_name": instance, "model_instance_kind": kind,
        "model_instance_device_id": device})
    return Host(module, model, folder, work_root, max_batch_size > 0)


@pytest.fixture
def probe_mar(tmp_path) -> Path:
    return make_mar(tmp_path / "mars", "probe", "probe.py",
                    {"probe.py": PROBE_HANDLER, "helper.txt": "data",
                     "model-config.yaml": "batchSize: 4\nhandler:\n  threshold: 0.5\n"},
                    function="handle", extra=["helper.txt"], config="model-config.yaml")


@pytest.fixture
def probe(isolated, probe_mar) -> Host:
    return load_host(isolated, probe_mar, max_batch_size=4)


# -- start: what initialize sees ----------------------------------------------------------

def test_initialize_runs_once_with_torchserves_context(probe):
    handler = sys.modules["probe"]
    assert len(handler.INITIALIZED) == 1
    context = handler.INITIALIZED[0]
    assert type(context).__module__ == "ts.context"  # TorchServe's own Context
    probe.ask()
    probe.ask()
    assert len(handler.INITIALIZED) == 1 and handler.BATCHES == [1, 1]


def test_model_dir_is_a_writable_copy_under_tmp(probe):
    seen = probe.observed()  # written by the handler into its model_dir
    work = probe.work
    assert seen["system_properties"]["model_dir"] == str(work)
    assert work.parent == probe.work_root and work.name == "m-m_0"  # per model instance
    assert (work / "helper.txt").read_text() == "data"
    assert not (probe.folder / "1" / "archive" / "observed.json").exists()  # original intact


def test_c13_the_default_work_root_is_scratch_under_tmp(isolated):
    """Never /opt/ml/model, which SageMaker mounts read-only (the tests patch WORK_ROOT)."""
    spec = importlib.util.spec_from_file_location("torchserve_host_defaults", HOST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.WORK_ROOT.is_relative_to("/tmp")
    assert not module.WORK_ROOT.is_relative_to("/opt/ml")


def test_context_carries_manifest_system_properties_and_model_config(probe):
    seen = probe.observed()
    assert seen["model_name"] == "probe"  # the manifest's modelName
    assert seen["manifest"]["model"]["handler"] == "probe:handle"
    assert seen["manifest"]["model"]["configFile"] == "model-config.yaml"
    props = seen["system_properties"]
    assert (props["gpu_id"], props["batch_size"]) == (None, 4)
    assert props["server_name"] == "MMS" and props["limit_max_image_pixels"] is True
    assert seen["model_yaml_config"] == {"batchSize": 4, "handler": {"threshold": 0.5}}


def test_a_gpu_instance_gets_its_device_as_gpu_id(isolated, probe_mar):
    host = load_host(isolated, probe_mar, kind="GPU", device="1")
    props = host.observed()["system_properties"]
    assert (props["gpu_id"], props["batch_size"]) == (1, 1)  # no batching: batch_size 1


def test_cwd_sys_path_and_environment_are_a_torchserve_0_12_workers(probe):
    seen = probe.observed()
    work = str(probe.work)
    assert seen["cwd"] == work
    assert seen["sys_path"] == [f"{work}/probe", work]
    assert seen["env"] == {"TS_DECODE_INPUT_REQUEST": "true", "TS_IPEX_ENABLE": "false",
                           "TS_IPEX_GPU_ENABLE": "false", "PYTHONPATH": f"probe:{work}:"}


def test_pythonpath_keeps_what_was_there(isolated, probe_mar, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/opt/venv/site")
    host = load_host(isolated, probe_mar)
    assert host.observed()["env"]["PYTHONPATH"] == f"probe:{host.work}:/opt/venv/site"


# -- requests: what handle sees -----------------------------------------------------------

def test_a_json_body_arrives_parsed(probe):
    answer = probe.ask(b'{"inputs": [1, 2]}', "application/json")
    assert answer["fields"] == {"body": ["dict", {"inputs": [1, 2]}]}
    assert answer["headers"]["body"] == {"content-type": "application/json"}


def test_a_json_list_body_arrives_as_a_list(probe):
    assert probe.ask(b"[[0, 1]]")["fields"] == {"body": ["list", [[0, 1]]]}


def test_text_arrives_as_str_with_parameters_stripped_from_its_type(probe):
    answer = probe.ask("café".encode(), "text/plain; charset=utf-8")
    assert answer["fields"] == {"body": ["str", "café"]}
    assert answer["headers"]["body"] == {"content-type": "text/plain"}


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream",
                                          "application/x-npy", ""])
def test_other_bodies_arrive_as_bytearray(probe, content_type):
    body = b"\x89PNG\r\n\x1a\n\x00\xff"
    assert probe.ask(body, content_type)["fields"] == {"body": ["bytearray", body.hex()]}


def test_json_that_does_not_parse_arrives_as_bytes(probe):
    assert probe.ask(b"{not json", "application/json")["fields"]["body"] == \
        ["bytearray", b"{not json".hex()]


def multipart(fields: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    boundary = "byoc-test-boundary"
    out = b""
    for name, content_type, value in fields:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def test_multipart_fields_arrive_under_their_names_with_their_types(probe):
    body, content_type = multipart([("text", "text/plain", b"hello"),
                                    ("meta", "application/json", b'{"k": 1}'),
                                    ("image", "image/png", b"\x89PNG\x00"),
                                    ("raw", None, b"\x01\x02")])
    answer = probe.ask(body, content_type)
    assert answer["fields"] == {"text": ["str", "hello"], "meta": ["dict", {"k": 1}],
                                "image": ["bytearray", b"\x89PNG\x00".hex()],
                                "raw": ["bytearray", "0102"]}
    headers = answer["headers"]
    assert (headers["text"], headers["meta"], headers["image"], headers["raw"]) == (
        {"content-type": "text/plain"}, {"content-type": "application/json"},
        {"content-type": "image/png"}, {"content-type": ""})


def test_a_multipart_body_as_clients_write_it(probe):
    """A form encoded by urllib3 (what `requests` sends): a file field with its type and a
    plain field without one."""
    from urllib3.filepost import encode_multipart_formdata

    body, content_type = encode_multipart_formdata(
        {"data": ("digit.png", b"\x89PNG\r\n", "image/png"), "note": "seven"})
    answer = probe.ask(body, content_type)
    assert answer["fields"] == {"data": ["bytearray", b"\x89PNG\r\n".hex()],
                                "note": ["bytearray", b"seven".hex()]}
    assert answer["headers"]["data"] == {"content-type": "image/png"}


def test_request_headers_are_the_clients_plus_explain_and_url_path(probe):
    answer = probe.ask(headers={"X-Amzn-SageMaker-Custom-Attributes": "trace=1",
                                "Accept": "application/json"})
    headers = answer["headers"]
    assert headers["X-Amzn-SageMaker-Custom-Attributes"] == "trace=1"
    assert headers["Accept"] == "application/json"
    assert (headers["explain"], headers["url_path"]) == ("False", "")


def test_no_headers_tensor_still_gives_content_type_explain_and_url_path(probe):
    headers = probe.ask(headers=None)["headers"]
    assert {k: v for k, v in headers.items() if k != "body"} == {
        "Content-Type": "application/json", "explain": "False", "url_path": ""}


def test_the_content_type_is_a_request_header_as_torchserve_passes_it(probe):
    """The front sends Content-Type beside the headers, not in them; handlers that decode
    bodies TorchServe left as bytes read it with get_request_header, as on TorchServe."""
    headers = probe.ask(b"\xff", "text/plain", headers={"Accept": "*/*"})["headers"]
    assert headers["Content-Type"] == "text/plain"
    kept = probe.ask(b"{}", "application/json", headers={"content-type": "application/json"})
    assert [k for k in kept["headers"] if k.lower() == "content-type"] == ["content-type"]


def test_unreadable_headers_are_dropped_not_fatal(probe):
    request = probe.request(b"{}")
    request.tensors["HEADERS"] = Tensor("", np.array([[b"{not json"]], dtype=np.object_))
    ((status, _, _, answer),) = probe.execute(request)
    assert status == 200 and json.loads(answer)["headers"]["explain"] == "False"


# -- batches and answers ------------------------------------------------------------------

def test_a_batch_of_three_is_one_handle_call_with_answers_in_order(probe):
    answers = probe.execute(probe.request(b'{"n": 0}'), probe.request(b"one", "text/plain"),
                            probe.request(b'{"n": 2}', headers={"x-probe": "status"}))
    assert sys.modules["probe"].BATCHES == [3]
    bodies = [json.loads(a[3]) for a in answers]
    assert [b["fields"]["body"] for b in bodies] == [["dict", {"n": 0}], ["str", "one"],
                                                     ["dict", {"n": 2}]]
    assert all(b["batch"] == 3 for b in bodies)
    assert [a[0] for a in answers] == [200, 200, 201]


def test_dict_answers_are_json_with_torchserves_indent(probe):
    ((_, _, _, answer),) = probe.execute(probe.request(b"{}"))
    assert answer.startswith(b'{\n  "fields": {')  # json.dumps(indent=2), TorchServe's encoder


def test_per_request_status_headers_and_content_type_pass_through(probe):
    answers = probe.execute(probe.request(b"{}"),
                            probe.request(b"{}", headers={"x-probe": "status"}))
    (status, content_type, headers, _), (status2, content_type2, headers2, _) = answers
    assert (status, content_type) == (200, "")  # none unless the handler sets one
    assert "X-Amzn-SageMaker-Custom-Attributes" not in headers
    assert (status2, content_type2) == (201, "application/x-probe")
    assert headers2["X-Amzn-SageMaker-Custom-Attributes"] == "k=v"
    assert headers2["content-type"] == "application/x-probe"


@pytest.mark.parametrize("probe_header, status, message", [
    ("prediction-exception", 422, b"digit out of range"),
    ("crash", 503, b"Prediction failed"),
    ("not-a-list", 503, b"Invalid model predict output"),
    ("short", 503, b"number of batch response mismatched"),
    ("oom", 507, b"Out of resources"),
])
def test_batch_failures_give_every_request_torchserves_status_and_message(
        probe, probe_header, status, message):
    answers = probe.execute(probe.request(b"{}"),
                            probe.request(b"{}", headers={"x-probe": probe_header}),
                            probe.request(b"{}"))
    assert [(a[0], a[1], a[2], a[3]) for a in answers] == [(status, "", {}, message)] * 3


def test_the_host_keeps_serving_after_a_failed_batch(probe):
    probe.execute(probe.request(b"{}", headers={"x-probe": "crash"}))
    assert probe.ask(b'{"ok": 1}')["fields"]["body"] == ["dict", {"ok": 1}]


def test_an_unbatched_host_answers_with_unbatched_shapes(isolated, probe_mar):
    host = load_host(isolated, probe_mar, max_batch_size=0)
    assert host.ask(b'{"a": 1}')["fields"]["body"] == ["dict", {"a": 1}]  # shapes (1,)


# -- a BaseHandler subclass with real (random) TorchScript weights ------------------------

@pytest.fixture
def linear(isolated) -> tuple[Host, torch.jit.ScriptModule]:
    torch.manual_seed(0)
    scripted = torch.jit.script(torch.nn.Linear(3, 2))
    weights = io.BytesIO()
    torch.jit.save(scripted, weights)
    mar = make_mar(isolated / "mars", "linear", "linear_handler.py",
                   {"linear_handler.py": LINEAR_HANDLER, "linear.pt": weights.getvalue()},
                   serialized="linear.pt")
    return load_host(isolated, mar, max_batch_size=8), scripted


def test_a_base_handler_subclass_loads_its_weights_and_predicts(linear):
    host, scripted = linear
    rows = [[1.0, 2.0, 3.0], [0.0, -1.0, 0.5], [4.0, 4.0, 4.0]]
    answers = host.execute(*(host.request(json.dumps({"inputs": r}).encode()) for r in rows))
    with torch.no_grad():
        expected = scripted(torch.tensor(rows)).tolist()
    got = [json.loads(a[3]) for a in answers]
    assert [a[0] for a in answers] == [200, 200, 200]
    assert np.allclose(got, expected, atol=1e-6)
    handler = sys.modules["linear_handler"]
    assert handler.LinearHandler.__mro__[1].__name__ == "BaseHandler"


def test_a_base_handler_runs_on_cpu_without_cuda(linear):
    host, _ = linear
    assert any("loaded on cpu (batch 8)" in line for line in Logger.lines)
    assert os.getcwd() == str(host.work)


# -- the frames the host writes and reads -------------------------------------------------

def test_predict_frame_reads_back_with_torchserves_decoder(probe, monkeypatch):
    from ts.protocol.otf_message_handler import retrieve_msg

    monkeypatch.setenv("TS_DECODE_INPUT_REQUEST", "true")
    frame = probe.module.predict_frame([
        {"id": "r1", "headers": {"a": "1"}, "parameters": [("body", "text/plain", b"hi")]},
        {"id": "r2", "headers": {}, "parameters": [("x", "image/png", b"\x00"),
                                                   ("y", "application/json", b"[1]")]}])
    command, batch = retrieve_msg(probe.module._Frames(frame))
    assert command == b"I"
    assert [(r["requestId"], [(h["name"], h["value"]) for h in r["headers"]],
             [(p["name"], p["contentType"], p["value"]) for p in r["parameters"]])
            for r in batch] == [
        (b"r1", [(b"a", b"1")], [("body", "text/plain", "hi")]),
        (b"r2", [], [("x", "image/png", bytearray(b"\x00")), ("y", "application/json", [1])])]
