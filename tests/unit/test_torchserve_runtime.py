"""byoc_runtime.adapters.torchserve: model discovery, the .mar manifest, and the security
posture of the generated config.properties (everything loopback-only, no model API, no env
overrides, allowed_urls limited to local .mar files)."""

from __future__ import annotations

import asyncio
import json
import re
import zipfile
from pathlib import Path

import pytest
from byoc_runtime.adapters import torchserve
from byoc_runtime.adapters.torchserve import (
    Backend,
    ModelLayoutError,
    find_model_store,
    mar_manifest,
    pick_model,
)
from byoc_runtime.settings import Settings

SETTINGS = Settings(port=9005, safe_ports=(9000, 9010), workers=2, timeout_s=40,
                    max_payload_bytes=6 * 1024 * 1024, log_level="INFO",
                    accept_content_types=("application/json",))
ADDRESSES = ("inference_address", "management_address", "metrics_address",
             "grpc_inference_address", "grpc_management_address")


def make_mar(path: Path, manifest: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {"model": {"modelName": path.stem, "modelVersion": "2.0"}} \
        if manifest is None else manifest
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        archive.writestr("handler.py", "")
    return path


def parse_properties(text: str) -> dict[str, str]:
    """key=value lines with Java properties-file escapes undone (\\\\ -> \\, \\t -> tab...)."""
    controls = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    result = {}
    for line in text.splitlines():
        if not line or line.startswith(("#", "!")):
            continue
        key, _, raw = line.partition("=")
        result[key] = re.sub(r"\\(.)", lambda m: controls.get(m[1], m[1]), raw)
    return result


@pytest.fixture
def store(tmp_path) -> Path:
    store = tmp_path / "model"
    make_mar(store / "digits.mar")
    return store


@pytest.fixture
def server(store, monkeypatch) -> Backend:
    monkeypatch.setattr(torchserve, "find_model_store", lambda: store)
    monkeypatch.setattr(torchserve, "WORK_DIR", store.parent / "work")
    return Backend(SETTINGS, env={"BYOC_BATCH_SIZE": "8", "BYOC_MAX_BATCH_DELAY_MS": "20"})


@pytest.fixture
def props(server) -> dict[str, str]:
    return parse_properties(server.config_properties())


# -- finding and picking the model ----------------------------------------------------------

def test_c13_model_dir_with_a_mar_wins_over_the_baked_model(tmp_path):
    model_dir = make_mar(tmp_path / "ml" / "custom.mar").parent
    baked = make_mar(tmp_path / "baked" / "digits.mar").parent
    assert find_model_store(model_dir, baked) == model_dir


@pytest.mark.parametrize("model_dir_files", [None, [], ["README.txt", "digits.pt"]])
def test_baked_model_serves_when_model_dir_has_no_mar(tmp_path, model_dir_files):
    model_dir = tmp_path / "ml"
    if model_dir_files is not None:
        model_dir.mkdir()
        for name in model_dir_files:
            (model_dir / name).write_text("x")
    baked = make_mar(tmp_path / "baked" / "digits.mar").parent
    assert find_model_store(model_dir, baked) == baked


def test_no_model_anywhere_is_a_clear_error(tmp_path):
    (tmp_path / "ml").mkdir()
    with pytest.raises(ModelLayoutError) as caught:
        find_model_store(tmp_path / "ml", tmp_path / "baked")
    message = str(caught.value)
    assert f"{tmp_path / 'ml'} holds no .mar" in message and "package-model" in message


def test_model_layout_error_is_what_serve_turns_into_exit_1():
    assert issubclass(ModelLayoutError, RuntimeError)


def test_pick_model_takes_the_only_one(store):
    assert pick_model(store, None) == store / "digits.mar"


def test_pick_model_with_several_and_no_name_lists_them(store):
    make_mar(store / "other.mar")
    with pytest.raises(ModelLayoutError) as caught:
        pick_model(store, None)
    assert "(digits.mar, other.mar)" in str(caught.value)
    assert "BYOC_DEFAULT_MODEL_NAME" in str(caught.value)


def test_pick_model_takes_the_wanted_one(store):
    make_mar(store / "other.mar")
    assert pick_model(store, "other") == store / "other.mar"


def test_pick_model_with_an_absent_name_says_what_is_there(store):
    with pytest.raises(ModelLayoutError, match="BYOC_DEFAULT_MODEL_NAME='nope' .* digits.mar"):
        pick_model(store, "nope")


def test_mar_manifest_reads_name_and_version(store):
    assert mar_manifest(store / "digits.mar") == ("digits", "2.0")


def test_mar_manifest_name_is_the_manifests_not_the_file_name(tmp_path):
    """TorchServe registers the archive under its manifest's modelName."""
    mar = make_mar(tmp_path / "file-name.mar", {"model": {"modelName": "real", "modelVersion": 3}})
    assert mar_manifest(mar) == ("real", "3")


def test_mar_manifest_defaults_to_the_stem_and_1_0(tmp_path):
    assert mar_manifest(make_mar(tmp_path / "m.mar", {"model": {}})) == ("m", "1.0")
    assert mar_manifest(make_mar(tmp_path / "n.mar", {})) == ("n", "1.0")


def test_backend_serves_the_manifests_model_name(tmp_path, monkeypatch):
    store = tmp_path / "store"
    make_mar(store / "file-name.mar", {"model": {"modelName": "real", "modelVersion": "4"}})
    monkeypatch.setattr(torchserve, "find_model_store", lambda: store)
    backend = Backend(SETTINGS, env={})
    assert (backend.model, backend.version) == ("real", "4")
    assert backend.predict_url.endswith("/predictions/real")
    models = json.loads(parse_properties(backend.config_properties())["models"])
    assert models == {"real": {"4": {"marName": "file-name.mar", "minWorkers": 2,
                                     "maxWorkers": 2, "batchSize": 1, "maxBatchDelay": 5,
                                     "responseTimeout": 40}}}


def test_byoc_default_model_name_picks_the_archive(tmp_path, monkeypatch):
    store = tmp_path / "store"
    make_mar(store / "a.mar")
    make_mar(store / "b.mar")
    monkeypatch.setattr(torchserve, "find_model_store", lambda: store)
    assert Backend(SETTINGS, env={"BYOC_DEFAULT_MODEL_NAME": "b"}).mar == store / "b.mar"
    with pytest.raises(ModelLayoutError, match="BYOC_DEFAULT_MODEL_NAME"):
        Backend(SETTINGS, env={})


@pytest.mark.parametrize("content", ["not a zip", "no manifest", "bad json"])
def test_invalid_archive_is_a_model_layout_error(tmp_path, content):
    mar = tmp_path / "broken.mar"
    if content == "not a zip":
        mar.write_bytes(b"PK but not really")
    else:
        with zipfile.ZipFile(mar, "w") as archive:
            if content == "bad json":
                archive.writestr("MAR-INF/MANIFEST.json", "{nope")
            else:
                archive.writestr("handler.py", "")
    with pytest.raises(ModelLayoutError, match="is not a valid TorchServe model archive"):
        mar_manifest(mar)


# -- config.properties: security posture ----------------------------------------------------

def test_every_torchserve_address_is_loopback(props):
    for key in ADDRESSES:
        host = props[key].removeprefix("http://").split(":")[0]
        assert host == "127.0.0.1", f"{key}={props[key]}"
    assert not [k for k in props if k.endswith("_address") and k not in ADDRESSES]


def test_c03_internal_ports_are_distinct_in_the_safe_range_and_not_public(server, props):
    ports = [int(props[k].rsplit(":", 1)[1]) for k in ADDRESSES[:3]]
    ports += [int(props["grpc_inference_port"]), int(props["grpc_management_port"])]
    assert len(set(ports)) == 5
    assert all(9000 <= p <= 9010 and p != SETTINGS.port for p in ports)
    assert server.predict_url == f"http://127.0.0.1:{ports[0]}/predictions/digits"


def test_token_auth_off_model_api_off_env_overrides_off(props):
    assert props["disable_token_authorization"] == "true"
    assert props["enable_model_api"] == "false"
    assert props["enable_envvars_config"] == "false"


def test_c15_no_pip_install_at_model_load(props):
    assert props["install_py_dep_per_model"] == "false"


def test_allowed_urls_admit_only_mar_files_in_the_store(store, props):
    allowed = re.compile(props["allowed_urls"])
    assert allowed.match(f"file://{store}/digits.mar")
    for url in ("http://evil.example/x.mar", "https://evil.example/digits.mar",
                "file:///etc/passwd", f"file://{store}/digits.py", f"file://{store}/a/b.mar",
                f"file://{store}-evil/x.mar", f"file://{store}/x.mar.tar.gz",
                f"http://evil.example/?file://{store}/x.mar"):
        assert not allowed.match(url), url


def test_c09_torchserve_size_limits_are_at_least_the_fronts(props):
    assert int(props["max_request_size"]) >= SETTINGS.max_payload_bytes
    assert int(props["max_response_size"]) >= SETTINGS.max_payload_bytes


def test_c08_response_timeout_follows_the_settings(props):
    assert props["default_response_timeout"] == str(SETTINGS.timeout_s)


def test_models_json_carries_workers_batching_and_timeout(store, props):
    assert (props["model_store"], props["load_models"]) == (str(store), "digits.mar")
    assert json.loads(props["models"]) == {"digits": {"2.0": {
        "marName": "digits.mar", "minWorkers": 2, "maxWorkers": 2, "batchSize": 8,
        "maxBatchDelay": 20, "responseTimeout": 40}}}


def test_batching_defaults_without_env(store, monkeypatch):
    monkeypatch.setattr(torchserve, "find_model_store", lambda: store)
    model = json.loads(parse_properties(Backend(SETTINGS, env={}).config_properties())
                       ["models"])["digits"]["2.0"]
    assert (model["batchSize"], model["maxBatchDelay"]) == (1, 5)


def test_c13_command_writes_its_config_to_scratch_not_the_model_store(server, store):
    before = sorted(p.name for p in store.iterdir())
    argv = server.command()
    config_path = Path(argv[argv.index("--ts-config") + 1])
    assert config_path.read_text() == server.config_properties()
    assert not config_path.is_relative_to(store)
    assert sorted(p.name for p in store.iterdir()) == before
    assert {"--foreground", "--disable-token-auth", "--ncs"} <= set(argv)


# -- readiness: a READY worker, not TorchServe's own /ping (C04) ----------------------------

class FakeResponse:
    def __init__(self, status: int, payload=None, headers=None):
        self.status = status
        self.payload = payload
        self.headers = headers or {}

    async def json(self, content_type=None):
        return self.payload

    async def read(self):
        return self.payload

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


class FakeSession:
    def __init__(self, response: FakeResponse):
        self.response = response
        self.requests: list[tuple[str, str]] = []

    def get(self, url):
        self.requests.append(("GET", url))
        return self.response

    def post(self, url, data, headers):
        self.requests.append(("POST", url))
        self.sent_headers = headers
        return self.response


@pytest.mark.parametrize("status, described, ready", [
    (404, None, False),
    (200, [], False),
    (200, [{"workers": []}], False),
    (200, [{"workers": [{"status": "LOADING"}, {"status": "UNLOADING"}]}], False),
    (200, [{"workers": [{"status": "LOADING"}, {"status": "READY"}]}], True),
])
def test_c04_ready_only_with_a_ready_worker(server, status, described, ready):
    session = FakeSession(FakeResponse(status, described))
    assert asyncio.run(server.ready(session))[0] is ready
    assert session.requests == [("GET", server.describe_url)]


def test_c07_torchserve_takes_the_declared_types_or_any(server):
    assert server.supported_content_types(("image/png",)) == ("image/png",)
    assert server.supported_content_types(()) is None  # the handler decides


def test_invoke_sends_the_content_type_and_headers_and_keeps_an_untyped_answer(server):
    session = FakeSession(FakeResponse(200, b"7", {}))
    reply = asyncio.run(server.invoke(session, b"body", "text/csv", {"X-Trace": "1"}))
    assert session.requests == [("POST", server.predict_url)]
    assert session.sent_headers == {"X-Trace": "1", "Content-Type": "text/csv"}
    # TorchServe sends no Content-Type unless the handler sets one: the front labels it.
    assert (reply.status, reply.body, reply.content_type) == (200, b"7", "")


def test_invoke_keeps_the_handlers_content_type_and_headers(server):
    headers = {"Content-Type": "application/json", "X-Amzn-SageMaker-Custom-Attributes": "a"}
    reply = asyncio.run(server.invoke(FakeSession(FakeResponse(201, b"{}", headers)), b"{}",
                                      "application/json", {}))
    assert (reply.status, reply.content_type) == (201, "application/json")
    assert reply.headers["x-amzn-sagemaker-custom-attributes"] == "a"


def test_invoke_normalises_torchserve_errors(server):
    raw = b'{"code": 503, "type": "ServiceUnavailableException", "message": "no worker"}'
    reply = asyncio.run(server.invoke(FakeSession(FakeResponse(503, raw)), b"{}",
                                      "application/json", {}))
    assert (reply.status, json.loads(reply.body)) == (503, {"error": "no worker",
                                                           "status": 503})


def test_c11_a_handler_exception_is_500_not_503(server):
    """TorchServe answers a handler's exception 503 ("unavailable, retry"): it is a fault
    of this request, so 500, as the Triton host of archives answers it."""
    raw = b'{"code": 503, "type": "InternalServerException", "message": "Prediction failed"}'
    reply = asyncio.run(server.invoke(FakeSession(FakeResponse(503, raw)), b"{}",
                                      "application/json", {}))
    assert (reply.status, json.loads(reply.body)["error"]) == (500, "Prediction failed")


def test_c04_c06_a_model_whose_workers_keep_dying_while_loading_is_fatal(server):
    """TorchServe restarts a worker that fails to load for ever; after LOAD_ATTEMPTS died
    the adapter gives up, so the container exits and SageMaker replaces it."""
    for pid in range(100, 100 + torchserve.LOAD_ATTEMPTS):
        described = [{"workers": [{"status": "WORKER_STARTED", "pid": pid}]}]
        assert asyncio.run(server.ready(FakeSession(FakeResponse(200, described))))[0] is False
    described = [{"workers": [{"status": "WORKER_STARTED", "pid": 999}]}]
    with pytest.raises(torchserve.BackendFatal, match="failed to load"):
        asyncio.run(server.ready(FakeSession(FakeResponse(200, described))))


def test_a_worker_restarting_after_the_model_was_ready_is_not_fatal(server):
    ready = [{"workers": [{"status": "READY", "pid": 1}]}]
    assert asyncio.run(server.ready(FakeSession(FakeResponse(200, ready))))[0]
    for pid in range(2, 10):  # a killed worker coming back: /ping 503 until READY again
        described = [{"workers": [{"status": "WORKER_STARTED", "pid": pid}]}]
        assert asyncio.run(server.ready(FakeSession(FakeResponse(200, described))))[0] is False


def _log_config(level: str) -> str:
    from byoc_runtime.settings import from_env

    backend = torchserve.Backend.__new__(torchserve.Backend)
    backend.settings = from_env({"BYOC_LOG_LEVEL": level})
    return backend.log_config()


def test_c16_torchserve_logs_to_stdout_without_per_request_lines():
    import xml.etree.ElementTree as ET

    root = ET.fromstring(_log_config("INFO"))
    console = root.find("./Appenders/Console")
    assert console is not None and console.get("target") == "SYSTEM_OUT"
    levels = {lg.get("name"): lg.get("level") for lg in root.find("Loggers")}
    assert root.find("./Loggers/Root").get("level") == "INFO"
    for name in ("ACCESS_LOG", "TS_METRICS", "MODEL_METRICS",
                 "org.pytorch.serve.wlm.WorkerThread"):
        assert levels[name] == "WARN"
    assert ET.fromstring(_log_config("DEBUG")).find("./Loggers/Root").get("level") == "DEBUG"
    assert ET.fromstring(_log_config("WARNING")).find("./Loggers/Root").get("level") == "WARN"
