"""byoc_runtime.adapters.triton: Triton's SageMaker environment variables map to the same
flags as in Triton's own serve, every model of the repository is loaded and one is the
default, the model-folder checks say how to fix what they find, and requests reach the
default model as KServe v2 or (for a raw-body model) as its PAYLOAD tensor."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest
from byoc_runtime import settings as settings_mod
from byoc_runtime.adapters import triton
from byoc_runtime.front import ClientFault
from byoc_runtime.settings import SettingsError


def model_folder(repo, name: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(f'name: "{name}"\n')


@pytest.fixture
def repository(tmp_path, monkeypatch):
    repo = tmp_path / "model"
    for name in ("digits", "digits_preprocess"):
        model_folder(repo, name)
    monkeypatch.setattr(triton, "find_repository", lambda: repo)
    return repo


def make(env: dict[str, str]) -> triton.Backend:
    env = {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "digits", **env}
    return triton.Backend(settings_mod.from_env(env), env)


def flags(env: dict[str, str]) -> list[str]:
    return make(env).flags()


def test_front_mode_keeps_triton_on_loopback(repository):
    args = flags({})
    assert "--allow-sagemaker=false" in args and "--http-address=127.0.0.1" in args
    assert "--model-control-mode=explicit" in args and "--load-model=digits" in args
    assert "--allow-grpc=false" in args and "--allow-metrics=false" in args


def test_every_model_of_the_repository_is_loaded_for_ensembles_and_bls(repository):
    """Triton's own serve loads only the default model; an ensemble's steps need theirs."""
    args = flags({})
    assert [a for a in args if a.startswith("--load-model=")] == [
        "--load-model=digits", "--load-model=digits_preprocess"]


def test_the_descriptions_load_list_limits_what_is_loaded(repository):
    model_folder(repository, "unused")
    backend = make({"BYOC_TRITON_LOAD": "digits_preprocess,digits"})
    assert backend.loaded == ["digits_preprocess", "digits"]
    assert [a for a in backend.flags() if a.startswith("--load-model=")] == [
        "--load-model=digits_preprocess", "--load-model=digits"]


def test_the_default_model_is_loaded_even_outside_the_load_list(repository):
    backend = make({"BYOC_TRITON_LOAD": "digits_preprocess"})
    assert backend.loaded == ["digits_preprocess", "digits"]


def test_the_descriptions_default_model_is_the_default_without_sagemakers(repository):
    env = {"BYOC_TRITON_DEFAULT_MODEL": "digits_preprocess"}
    backend = triton.Backend(settings_mod.from_env(env), env)
    assert backend.model == "digits_preprocess"
    assert backend.infer_url.endswith("/v2/models/digits_preprocess/infer")
    # SAGEMAKER_TRITON_DEFAULT_MODEL_NAME wins, as in Triton's own images
    assert make(env).model == "digits"


def test_native_mode_is_tritons_own_sagemaker_endpoint(repository):
    args = flags({"BYOC_TRITON_FRONT": "off", "SAGEMAKER_BIND_TO_PORT": "9090",
                  "SAGEMAKER_SAFE_PORT_RANGE": "9100-9110"})
    assert "--allow-sagemaker=true" in args and "--allow-http=false" in args
    assert "--sagemaker-port=9090" in args
    assert "--sagemaker-safe-port-range=9100-9110" in args


def test_c03_internal_http_port_inside_the_safe_range(repository):
    backend = make({"SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_SAFE_PORT_RANGE": "9100-9110"})
    assert 9100 <= backend.http_port <= 9110


@pytest.mark.parametrize("env, expected", [
    ({"SAGEMAKER_TRITON_ALLOW_GRPC": "true"}, ["--allow-grpc=true"]),
    ({"SAGEMAKER_TRITON_ALLOW_GRPC": "true", "SAGEMAKER_TRITON_GRPC_PORT": "9200"},
     ["--grpc-port=9200"]),
    ({"SAGEMAKER_TRITON_ALLOW_METRICS": "true"}, ["--allow-metrics=true"]),
    ({"SAGEMAKER_TRITON_ALLOW_METRICS": "true", "SAGEMAKER_TRITON_METRICS_PORT": "9300"},
     ["--metrics-port=9300"]),
    ({"SAGEMAKER_TRITON_BUFFER_MANAGER_THREAD_COUNT": "4"}, ["--buffer-manager-thread-count=4"]),
    ({"SAGEMAKER_TRITON_THREAD_COUNT": "16", "BYOC_TRITON_FRONT": "off"},
     ["--sagemaker-thread-count=16"]),
    ({"SAGEMAKER_TRITON_THREAD_COUNT": "16"}, ["--http-thread-count=16"]),
    ({"SAGEMAKER_TRITON_LOG_VERBOSE": "true"}, ["--log-verbose=1"]),
    ({"SAGEMAKER_TRITON_LOG_VERBOSE": "2"}, ["--log-verbose=2"]),
    ({"SAGEMAKER_TRITON_LOG_INFO": "false"}, ["--log-info=false"]),
    ({"SAGEMAKER_TRITON_LOG_WARNING": "false"}, ["--log-warning=false"]),
    ({"SAGEMAKER_TRITON_LOG_ERROR": "false"}, ["--log-error=false"]),
    ({"SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE": "8388608"},
     ["--backend-config=python,shm-default-byte-size=8388608"]),
    ({"SAGEMAKER_TRITON_SHM_GROWTH_BYTE_SIZE": "2097152"},
     ["--backend-config=python,shm-growth-byte-size=2097152"]),
    ({"SAGEMAKER_TRITON_ADDITIONAL_ARGS": "--strict-readiness=false --log-format ISO8601"},
     ["--strict-readiness=false", "--log-format", "ISO8601"]),
])
def test_sagemaker_triton_variables_map_to_the_same_flags(repository, env, expected):
    args = flags(env)
    for flag in expected:
        assert flag in args


def test_defaults_sized_for_64mb_shm_and_quiet_pings(repository):
    args = flags({})
    assert f"--backend-config=python,shm-default-byte-size={4 * 1024 * 1024}" in args
    assert "--backend-config=python,shm-growth-byte-size=1048576" in args
    assert "--log-verbose=0" in args  # verbose logging would log every /ping (C16)


def test_log_info_follows_the_log_level(repository):
    assert "--log-info=false" in flags({"BYOC_LOG_LEVEL": "WARNING"})


def test_model_load_gpu_limit_per_gpu(repository, monkeypatch):
    monkeypatch.setattr(triton, "gpu_count", lambda: 2)
    args = flags({"SAGEMAKER_TRITON_MODEL_LOAD_GPU_LIMIT": "0.8"})
    assert "--model-load-gpu-limit=0:0.8" in args and "--model-load-gpu-limit=1:0.8" in args


@pytest.mark.parametrize("env, name", [
    ({"SAGEMAKER_TRITON_ALLOW_GRPC": "maybe"}, "SAGEMAKER_TRITON_ALLOW_GRPC"),
    ({"SAGEMAKER_TRITON_GRPC_PORT": "x", "SAGEMAKER_TRITON_ALLOW_GRPC": "1"},
     "SAGEMAKER_TRITON_GRPC_PORT"),
    ({"SAGEMAKER_TRITON_INFERENCE_TYPE": "predict"}, "SAGEMAKER_TRITON_INFERENCE_TYPE"),
    ({"SAGEMAKER_TRITON_OVERRIDE_PING_MODE": "sometimes"}, "SAGEMAKER_TRITON_OVERRIDE_PING_MODE"),
    ({"SAGEMAKER_TRITON_LOG_VERBOSE": "loud"}, "SAGEMAKER_TRITON_LOG_VERBOSE"),
    ({"SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE": "-1"}, "SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE"),
])
def test_bad_values_name_their_variable(repository, env, name):
    with pytest.raises(SettingsError, match=name):
        flags(env)


def test_inference_type_and_ping_mode_choose_the_endpoints(repository):
    backend = make({"SAGEMAKER_TRITON_INFERENCE_TYPE": "generate",
                    "SAGEMAKER_TRITON_OVERRIDE_PING_MODE": "live"})
    assert backend.infer_url.endswith("/v2/models/digits/generate")
    assert backend.ready_url.endswith("/v2/health/live")
    default = make({})
    assert default.ready_url.endswith("/v2/models/digits/ready")


def test_multi_model_mode_is_native_with_tritons_placeholder_repository(repository):
    backend = make({"SAGEMAKER_MULTI_MODEL": "true"})
    args = backend.flags()
    assert backend.native and backend.model is None
    assert f"--model-repository={triton.MULTI_MODEL_REPOSITORY}" in args
    assert "--model-namespacing=true" in args
    assert not [a for a in args if a.startswith("--load-model")]


# -- model folder checks (Triton's serve) --------------------------------------------------

def test_config_pbtxt_at_the_top_is_an_error(tmp_path):
    (tmp_path / "config.pbtxt").write_text("")
    with pytest.raises(triton.ModelLayoutError, match="at the top"):
        triton.model_folders(tmp_path)


def test_model_folders_are_those_with_a_config(tmp_path):
    model_folder(tmp_path, "b")
    model_folder(tmp_path, "a")
    (tmp_path / "notes").mkdir()
    (tmp_path / "README.md").write_text("x")
    assert triton.model_folders(tmp_path) == ["a", "b"]


def default_of(tmp_path, names, wanted=None, described=None, loaded=None):
    for name in names:
        model_folder(tmp_path, name)
    folders = triton.model_folders(tmp_path)
    return triton.default_model(tmp_path, folders, wanted, described,
                                folders if loaded is None else loaded)


def test_single_model_folder_is_the_default(tmp_path):
    assert default_of(tmp_path, ["only"]) == "only"


def test_several_folders_need_a_name(tmp_path):
    with pytest.raises(triton.ModelLayoutError, match=r"\(a, b\).*SAGEMAKER_TRITON_DEFAULT"):
        default_of(tmp_path, ["b", "a"])
    assert triton.default_model(tmp_path, ["a", "b"], "b", None, ["a", "b"]) == "b"


def test_a_wanted_model_that_is_not_there_names_what_is(tmp_path):
    with pytest.raises(triton.ModelLayoutError,
                       match="no model folder c .found: a, b."):
        default_of(tmp_path, ["a", "b"], wanted="c")


def test_the_described_default_breaks_the_tie(tmp_path):
    assert default_of(tmp_path, ["a", "b"], described="b") == "b"
    # a described default the (user's) repository lacks falls back to Triton's rule
    with pytest.raises(triton.ModelLayoutError, match="2 models"):
        triton.default_model(tmp_path, ["a", "b"], None, "gone", ["a", "b"])


def test_one_loaded_model_among_several_folders_is_the_default(tmp_path):
    assert default_of(tmp_path, ["a", "b"], loaded=["b"]) == "b"


def test_no_model_folder_is_an_error(tmp_path):
    with pytest.raises(triton.ModelLayoutError, match="no model folder"):
        triton.default_model(tmp_path, [], None, None, [])


@pytest.mark.parametrize("described, folders, expected", [
    ("", ["a", "b"], ["a", "b"]),
    ("b", ["a", "b"], ["b"]),
    ("b,a", ["a", "b"], ["b", "a"]),
    ("gone", ["a", "b"], ["a", "b"]),  # another repository in /opt/ml/model: load it all
    ("a,gone,", ["a", "b"], ["a"]),
])
def test_models_to_load(described, folders, expected):
    assert triton.models_to_load(folders, described) == expected


def test_empty_model_dir_falls_back_to_the_baked_repository(tmp_path):
    model_dir, baked = tmp_path / "ml", tmp_path / "baked"
    model_dir.mkdir()
    (baked / "digits").mkdir(parents=True)
    assert triton.find_repository(model_dir, baked) == baked
    (model_dir / "mine").mkdir()
    assert triton.find_repository(model_dir, baked) == model_dir
    with pytest.raises(triton.ModelLayoutError, match="package-model triton"):
        triton.find_repository(tmp_path / "none", tmp_path / "none2")


# -- request translation -------------------------------------------------------------------

RAW_CONFIG = {  # the raw-body convention, as Triton's /v2/models/NAME/config reports it
    "name": "digits", "max_batch_size": 0,
    "input": [{"name": "PAYLOAD", "data_type": "TYPE_STRING", "dims": [1]},
              {"name": "CONTENT_TYPE", "data_type": "TYPE_STRING", "dims": [1]},
              {"name": "HEADERS", "data_type": "TYPE_STRING", "dims": [1]}],
    "output": [{"name": "RESPONSE", "data_type": "TYPE_STRING", "dims": [1]},
               {"name": "RESPONSE_CONTENT_TYPE", "data_type": "TYPE_STRING", "dims": [1]},
               {"name": "RESPONSE_HEADERS", "data_type": "TYPE_STRING", "dims": [1]},
               {"name": "STATUS", "data_type": "TYPE_INT32", "dims": [1]}]}
TENSOR_CONFIG = {"name": "digits", "max_batch_size": 8,
                 "input": [{"name": "INPUT", "data_type": "TYPE_FP32", "dims": [64]}],
                 "output": [{"name": "PROBS", "data_type": "TYPE_FP32", "dims": [10]}]}


def config_with(**changes) -> dict:
    config = json.loads(json.dumps(RAW_CONFIG))
    for kind, names in changes.items():  # input=("PAYLOAD",) keeps only those tensors
        config[kind] = [t for t in config[kind] if t["name"] in names]
    return config


def binary_answer(outputs: list[tuple[str, str, bytes | int]]) -> tuple[bytes, int]:
    """Triton's binary tensor extension: a JSON header, then each output's bytes."""
    blobs, described = [], []
    for name, datatype, value in outputs:
        blob = (struct.pack("<I", len(value)) + value if datatype == "BYTES"
                else struct.pack("<i", value))
        described.append({"name": name, "datatype": datatype, "shape": [1],
                          "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    header = json.dumps({"outputs": described}).encode()
    return header + b"".join(blobs), len(header)


def test_binary_outputs_reads_bytes_and_int32_in_order():
    raw, size = binary_answer([("RESPONSE", "BYTES", b'{"label": 7}'),
                               ("RESPONSE_CONTENT_TYPE", "BYTES", b"application/json"),
                               ("RESPONSE_HEADERS", "BYTES", b"{}"),
                               ("STATUS", "INT32", 201)])
    assert triton.binary_outputs(raw, size) == {
        "RESPONSE": b'{"label": 7}', "RESPONSE_CONTENT_TYPE": b"application/json",
        "RESPONSE_HEADERS": b"{}", "STATUS": 201}


def test_binary_outputs_keeps_empty_and_binary_elements():
    raw, size = binary_answer([("RESPONSE", "BYTES", b""), ("X", "BYTES", b"\x00\xff")])
    assert triton.binary_outputs(raw, size) == {"RESPONSE": b"", "X": b"\x00\xff"}


@pytest.mark.parametrize("config, raw", [
    (RAW_CONFIG, True),
    (config_with(input=("PAYLOAD",), output=("RESPONSE",)), True),  # the minimum
    (config_with(input=("CONTENT_TYPE",)), False),  # no PAYLOAD
    (config_with(output=("STATUS",)), False),  # no RESPONSE
    ({**RAW_CONFIG, "input": [{"name": "PAYLOAD", "data_type": "TYPE_UINT8"}]}, False),
    (TENSOR_CONFIG, False),
    (None, False),  # not fetched yet
])
def test_raw_body_detection_from_the_model_config(repository, config, raw):
    backend = make({})
    backend.model_config = config
    assert backend.raw_body is raw


def test_c07_supported_content_types_follow_the_default_models_config(repository):
    backend = make({})
    declared = ("image/png", "application/json")
    assert backend.supported_content_types(declared) is None  # not ready: invoke() decides
    backend.model_config = TENSOR_CONFIG
    assert backend.supported_content_types(declared) == triton.KSERVE_TYPES
    assert backend.supported_content_types(()) == triton.KSERVE_TYPES
    backend.model_config = RAW_CONFIG
    assert backend.supported_content_types(declared) == (
        "image/png", "application/json", triton.BINARY_JSON)
    assert backend.supported_content_types(()) is None  # a raw-body model takes anything


def test_kserve_v2_is_told_apart_from_the_example_json():
    assert triton._is_kserve_v2(b'{"inputs": [{"name": "x"}]}')
    assert not triton._is_kserve_v2(b'{"instances": [[0]]}')
    assert not triton._is_kserve_v2(b'{"instances": "inputs"')  # not JSON: not v2
    assert not triton._is_kserve_v2(b'{"inputs": "not a list"}')
    assert not triton._is_kserve_v2(b'[{"inputs": []}]')


def test_binary_json_needs_its_header_size():
    assert triton._json_header_size(f"{triton.BINARY_JSON};json-header-size=42") == 42
    with pytest.raises(ClientFault, match="json-header-size"):
        triton._json_header_size(triton.BINARY_JSON)


class _FakeResponse:
    def __init__(self, status, body, headers):
        self.status, self._body, self.headers = status, body, headers

    async def read(self):
        return self._body

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


class _FakeSession:
    """Records what the adapter sends and answers like Triton's binary extension."""

    def __init__(self, outputs=(("RESPONSE", "BYTES", b'{"predictions": []}'),), status=200,
                 error: bytes | None = None):
        self.sent = None
        self.outputs, self.status, self.error = list(outputs), status, error

    def post(self, url, data, headers):
        self.sent = (url, data, headers)
        if self.error is not None:
            return _FakeResponse(self.status, self.error, {})
        body, size = binary_answer(self.outputs)
        return _FakeResponse(200, body, {"Inference-Header-Content-Length": str(size)})


def sent_tensors(session) -> tuple[dict, dict[str, bytes]]:
    """The request header and each input's element, as Triton would read them."""
    url, data, headers = session.sent
    size = int(headers["Inference-Header-Content-Length"])
    header = json.loads(data[:size])
    at, values = size, {}
    for tensor in header["inputs"]:
        n = tensor["parameters"]["binary_data_size"]
        (length,) = struct.unpack_from("<I", data, at)
        assert length == n - 4
        values[tensor["name"]] = data[at + 4:at + n]
        at += n
    assert at == len(data)
    return header, values


def test_raw_bodies_become_payload_tensors_with_type_and_headers(repository):
    backend = make({})
    backend.model_config = RAW_CONFIG
    session = _FakeSession([("RESPONSE", "BYTES", b'{"predictions": [1]}')])
    reply = asyncio.run(backend.invoke(session, b"\x89PNG...", "image/png", {"X-Trace": "1"}))
    header, values = sent_tensors(session)
    assert session.sent[0].endswith("/v2/models/digits/infer")
    assert values == {"PAYLOAD": b"\x89PNG...", "CONTENT_TYPE": b"image/png",
                      "HEADERS": b'{"X-Trace": "1"}'}
    assert all(t["datatype"] == "BYTES" and t["shape"] == [1] for t in header["inputs"])
    assert [o["name"] for o in header["outputs"]] == list(triton.RAW_OUTPUTS)
    assert reply.status == 200 and reply.body == b'{"predictions": [1]}'
    assert reply.content_type == ""  # none given: the front labels it


def test_only_the_declared_raw_inputs_are_sent_batched_models_get_a_batch_of_one(repository):
    backend = make({})
    backend.model_config = {**config_with(input=("PAYLOAD",), output=("RESPONSE",)),
                            "max_batch_size": 4}
    session = _FakeSession()
    asyncio.run(backend.invoke(session, b"text", "text/plain", {}))
    header, values = sent_tensors(session)
    assert values == {"PAYLOAD": b"text"}
    assert header["inputs"][0]["shape"] == [1, 1]
    assert [o["name"] for o in header["outputs"]] == ["RESPONSE"]


def test_raw_answer_carries_the_models_status_type_and_headers(repository):
    backend = make({})
    backend.model_config = RAW_CONFIG
    session = _FakeSession([("RESPONSE", "BYTES", b"created"),
                            ("RESPONSE_CONTENT_TYPE", "BYTES", b"text/plain"),
                            ("RESPONSE_HEADERS", "BYTES",
                             b'{"X-Amzn-SageMaker-Custom-Attributes": "k=v"}'),
                            ("STATUS", "INT32", 201)])
    reply = asyncio.run(backend.invoke(session, b"x", "text/plain", {}))
    assert (reply.status, reply.body, reply.content_type) == (201, b"created", "text/plain")
    assert reply.headers["X-Amzn-SageMaker-Custom-Attributes"] == "k=v"


def test_c11_a_raw_models_4xx_status_is_a_json_error(repository):
    backend = make({})
    backend.model_config = RAW_CONFIG
    session = _FakeSession([("RESPONSE", "BYTES", b"not an image"), ("STATUS", "INT32", 422)])
    reply = asyncio.run(backend.invoke(session, b"x", "image/png", {}))
    assert reply.status == 422
    assert json.loads(reply.body) == {"error": "not an image", "status": 422}


def test_c07_a_raw_body_to_a_kserve_only_model_is_415_naming_kserve(repository):
    backend = make({})
    backend.model_config = TENSOR_CONFIG
    with pytest.raises(ClientFault) as caught:
        asyncio.run(backend.invoke(_FakeSession(), b"\x89PNG", "image/png", {}))
    assert caught.value.status == 415
    assert caught.value.extra == {"supported": list(triton.KSERVE_TYPES)}


@pytest.mark.parametrize("config", [TENSOR_CONFIG, RAW_CONFIG])
def test_kserve_v2_json_goes_to_triton_as_it_is(repository, config):
    backend = make({})
    backend.model_config = config
    body = (b'{"inputs": [{"name": "INPUT", "shape": [1, 2], "datatype": "FP32", '
            b'"data": [0, 1]}]}')
    session = _FakeSession()
    session.post = lambda url, data, headers: (setattr(session, "sent", (url, data, headers))
                                               or _FakeResponse(200, b'{"outputs": []}', {}))
    reply = asyncio.run(backend.invoke(session, body, "application/json", {"X-Trace": "1"}))
    assert session.sent[1] == body and session.sent[2] == {"Content-Type": "application/json"}
    assert (reply.status, reply.body, reply.content_type) == (
        200, b'{"outputs": []}', "application/json")


def test_binary_tensors_pass_with_their_header_size(repository):
    backend = make({})
    backend.model_config = TENSOR_CONFIG
    session = _FakeSession()
    session.post = lambda url, data, headers: (
        setattr(session, "sent", (url, data, headers))
        or _FakeResponse(200, b"{}xxxx", {"Inference-Header-Content-Length": "2"}))
    header = (b'{"inputs":[{"name":"INPUT","shape":[1],"datatype":"FP32",'
              b'"parameters":{"binary_data_size":4}}]}')
    reply = asyncio.run(backend.invoke(session, header + b"abcd",
                                       f"{triton.BINARY_JSON};json-header-size={len(header)}",
                                       {}))
    assert session.sent[2] == {"Inference-Header-Content-Length": str(len(header))}
    assert reply.content_type == f"{triton.BINARY_JSON};json-header-size=2"


@pytest.mark.parametrize("body, fault", [
    (b'{"inputs": [{"shape": [1], "datatype": "BYTES", "data": ["x"]}]}', '"name"'),
    (b'{"inputs": [{"name": "P", "shape": [1], "data": ["x"]}]}', '"datatype"'),
    (b'{"inputs": [{"name": "P", "shape": [1.5], "datatype": "FP32", "data": [0]}]}',
     "whole numbers"),
    (b'{"inputs": [{"name": "P", "shape": [1], "datatype": "FP32"}]}', 'one of "data"'),
    (b'{"inputs": [7]}', "not an object"),
    (b'{"inputs": [], "outputs": [{"nom": "x"}]}', '"outputs"'),
    (b'{"inputs": [{"name": "P", "shape": [-1], "datatype": "FP32", "data": [0]}]}',
     "none negative"),
    # Triton 2.51 sizes its buffer from the shape first: this one ended it in bad_alloc.
    (b'{"inputs": [{"name": "P", "shape": [1000000000000], "datatype": "FP32", '
     b'"data": [1.0]}]}', "more elements than the request has bytes"),
    (b'{"inputs": [{"name": "P", "shape": [4096, 4096, 4096], "datatype": "BOOL", '
     b'"data": [true]}]}', "more elements"),
])
def test_c11_malformed_kserve_v2_is_400_before_triton(repository, body, fault):
    """Triton answers 500 to KServe v2 JSON it cannot parse, and aborts on a shape it cannot
    allocate; the adapter refuses both first."""
    backend = make({})
    backend.model_config = TENSOR_CONFIG
    with pytest.raises(triton.ClientFault) as caught:
        backend.upstream(body, "application/json", {})
    assert caught.value.status == 400 and fault in str(caught.value)


def test_c11_json_for_a_kserve_only_model_is_checked_as_kserve(repository):
    backend = make({})
    backend.model_config = TENSOR_CONFIG
    for body in (b'{"instances": [1]}', b"[1, 2]", b'{"inputs": "x"}', b'{"inputs": [1'):
        with pytest.raises(triton.ClientFault) as caught:
            backend.upstream(body, "application/json", {})
        assert caught.value.status == 400, body


@pytest.mark.parametrize("header, size, fault", [
    (b"{]}}xxxx", 4, "not valid JSON"), (b"{}", 2, '"inputs" list'),
    (b"{}", 9, "larger than the body")])
def test_c11_malformed_binary_header_is_400(repository, header, size, fault):
    backend = make({})
    backend.model_config = TENSOR_CONFIG
    with pytest.raises(triton.ClientFault) as caught:
        backend.upstream(header, f"{triton.BINARY_JSON};json-header-size={size}", {})
    assert caught.value.status == 400 and fault in str(caught.value)


@pytest.mark.parametrize("message, status", [
    ("Unable to parse 'name'", 400), ("failed to parse the request JSON buffer", 400),
    ("Failed to increase the shared memory pool size for key 'x': No space left", 507),
    ("something else broke", 500)])
def test_tritons_500_mapped_by_what_it_says(message, status):
    reply = triton._native_answer(500, {}, json.dumps({"error": message}).encode())
    assert reply.status == status


def test_c06_a_dead_python_stub_is_fatal():
    """Triton 2.51 never restarts a stub that died and keeps the model 'ready'."""
    from byoc_runtime.front import BackendFatal

    with pytest.raises(BackendFatal, match="not healthy"):
        triton._native_answer(500, {}, b'{"error": "Stub process \'m_0_0\' is not healthy."}')


def test_tritons_own_errors_are_json_errors(repository):
    backend = make({})
    backend.model_config = RAW_CONFIG
    session = _FakeSession(status=400, error=b'{"error": "unexpected shape for input"}')
    reply = asyncio.run(backend.invoke(session, b"x", "text/plain", {}))
    assert (reply.status, json.loads(reply.body)["error"]) == (400, "unexpected shape for input")


class _ReadySession:
    def __init__(self, statuses: dict[str, int], config: dict):
        self.statuses, self.config, self.got = statuses, config, []

    def get(self, url):
        self.got.append(url)
        status = next((s for suffix, s in self.statuses.items() if url.endswith(suffix)), 200)
        response = _FakeResponse(status, b"", {})

        async def as_json(content_type=None):
            return self.config

        response.json = as_json
        return response


def test_c04_ready_needs_the_default_model_ready_and_reads_its_config_once(repository):
    backend = make({})
    loading = _ReadySession({"/ready": 400}, RAW_CONFIG)
    assert asyncio.run(backend.ready(loading)) == (False, "digits not ready (400)")
    assert backend.model_config is None
    up = _ReadySession({}, RAW_CONFIG)
    assert asyncio.run(backend.ready(up)) == (True, "ready")
    assert asyncio.run(backend.ready(up)) == (True, "ready")
    assert up.got == [backend.ready_url, backend.config_url, backend.ready_url]
    assert backend.model_config == RAW_CONFIG and backend.raw_body
