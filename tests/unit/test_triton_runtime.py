"""byoc_runtime.triton: Triton's SageMaker environment variables map to the same flags as
in Triton's own serve, and the model-folder checks say how to fix what they find."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest
from byoc_runtime import settings as settings_mod
from byoc_runtime import triton
from byoc_runtime.front import ClientFault
from byoc_runtime.settings import SettingsError


@pytest.fixture
def repository(tmp_path, monkeypatch):
    repo = tmp_path / "model"
    for name in ("digits", "digits_preprocess"):
        (repo / name / "1").mkdir(parents=True)
    monkeypatch.setattr(triton, "find_repository", lambda: repo)
    return repo


def make(env: dict[str, str]) -> triton.Triton:
    env = {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "digits", **env}
    return triton.Triton(settings_mod.from_env(env), env)


def flags(env: dict[str, str]) -> list[str]:
    return make(env).flags()


def test_front_mode_keeps_triton_on_loopback(repository):
    args = flags({})
    assert "--allow-sagemaker=false" in args and "--http-address=127.0.0.1" in args
    assert "--model-control-mode=explicit" in args and "--load-model=digits" in args
    assert "--allow-grpc=false" in args and "--allow-metrics=false" in args


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
    ({"SAGEMAKER_TRITON_ALLOW_GRPC": "true"}, ["--allow-grpc=true", "--grpc-port=8001"]),
    ({"SAGEMAKER_TRITON_ALLOW_GRPC": "true", "SAGEMAKER_TRITON_GRPC_PORT": "9200"},
     ["--grpc-port=9200"]),
    ({"SAGEMAKER_TRITON_ALLOW_METRICS": "true"}, ["--allow-metrics=true", "--metrics-port=8002"]),
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
        triton.default_model(tmp_path, None)


def test_single_model_folder_is_the_default(tmp_path):
    (tmp_path / "only").mkdir()
    assert triton.default_model(tmp_path, None) == "only"


def test_several_folders_need_a_name(tmp_path):
    for name in ("b", "a"):
        (tmp_path / name).mkdir()
    with pytest.raises(triton.ModelLayoutError, match="a, b"):
        triton.default_model(tmp_path, None)
    assert triton.default_model(tmp_path, "b") == "b"
    with pytest.raises(triton.ModelLayoutError, match="no folder c"):
        triton.default_model(tmp_path, "c")


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

def test_kserve_v2_is_told_apart_from_the_example_json():
    assert triton._is_kserve_v2(b'{"inputs": [{"name": "x"}]}')
    assert not triton._is_kserve_v2(b'{"instances": [[0]]}')
    assert not triton._is_kserve_v2(b'{"instances": "inputs"')  # not JSON: not v2


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

    def __init__(self, answer: bytes = b'{"predictions": []}'):
        self.sent = None
        self.answer = answer

    def post(self, url, data, headers):
        self.sent = (url, data, headers)
        header = json.dumps({"outputs": [{"name": "RESPONSE", "datatype": "BYTES",
                                          "shape": [1],
                                          "parameters": {"binary_data_size": 4 + len(
                                              self.answer)}}]}).encode()
        body = header + struct.pack("<I", len(self.answer)) + self.answer
        return _FakeResponse(200, body, {"Inference-Header-Content-Length": str(len(header))})


def test_example_content_types_become_payload_tensors(repository):
    backend = make({})
    session = _FakeSession(b'{"predictions": [1]}')
    reply = asyncio.run(backend.invoke(session, b"\x89PNG...", "image/png", {}))
    url, data, headers = session.sent
    size = int(headers["Inference-Header-Content-Length"])
    header = json.loads(data[:size])
    assert url.endswith("/v2/models/digits/infer")
    assert [i["name"] for i in header["inputs"]] == ["PAYLOAD", "CONTENT_TYPE"]
    (length,) = struct.unpack_from("<I", data, size)
    assert data[size + 4:size + 4 + length] == b"\x89PNG..."
    assert data.endswith(b"image/png")
    assert reply.status == 200 and reply.body == b'{"predictions": [1]}'
