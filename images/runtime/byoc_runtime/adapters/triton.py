"""Triton behind the front, or alone (native mode). Everything Triton-specific at run
time lives here.

Environment variables mean what they mean in Triton's own SageMaker images
(docker/sagemaker/serve), so users moving from those keep their settings. Two
documented differences: SAGEMAKER_TRITON_LOG_VERBOSE defaults to false (verbose
logging logs every /ping, against contract C16), and the Python backend's shared
memory defaults to 4 MiB per stub instead of 16 MiB, because this repository runs
several Python-backend models in SageMaker's fixed 64 MB /dev/shm.

Single-model mode loads every model of the repository (or the model description's
load:, BYOC_TRITON_LOAD), so ensembles and BLS calls find their models; /invocations
runs the default model: SAGEMAKER_TRITON_DEFAULT_MODEL_NAME, else the description's
default_model (BYOC_TRITON_DEFAULT_MODEL), else Triton's rule (the only folder).

Front mode (default): tritonserver serves HTTP on loopback only; the front owns the
public port. KServe v2 JSON and binary tensor requests pass through to the default
model. Other bodies reach it only when it follows the raw-body convention (a TYPE_STRING
input PAYLOAD, optional CONTENT_TYPE and HEADERS, a TYPE_STRING output RESPONSE and
optional RESPONSE_CONTENT_TYPE, RESPONSE_HEADERS and STATUS; read from Triton's own
model config): the body goes as PAYLOAD in Triton's binary tensor extension.
Native mode (BYOC_TRITON_FRONT=off, and always with SAGEMAKER_MULTI_MODEL=true):
tritonserver's own SageMaker endpoint is the public port, as in Triton's images."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import struct
import subprocess
from collections.abc import Mapping
from pathlib import Path

from aiohttp import ClientSession

from ..front import ClientFault, Reply, Upstream, invoke, media_type
from ..settings import Settings, SettingsError
from .triton_protocol import (  # noqa: F401  (the adapter's names for its formats)
    BINARY_JSON,
    RAW_HEADERS_OUT,
    RAW_OUTPUT,
    _check_binary_header,
    _is_kserve_v2,
    _json_document,
    _json_header_size,
    _kserve_v2,
    _native_answer,
    _payload_answer,
    _server_error,
    binary_outputs,
    kserve_fault,
)
from .triton_repository import (  # noqa: F401  (check_model: the build-time check)
    BAKED_REPOSITORY,
    MODEL_DIR,
    ModelLayoutError,
    check_model,
    default_model,
    find_repository,
    model_folders,
    models_to_load,
)

MULTI_MODEL_REPOSITORY = Path("/tmp/sagemaker")  # Triton's MME placeholder repository
TRITON = "/opt/tritonserver/bin/tritonserver"
SHM_DEFAULT_BYTES = 4 * 1024 * 1024
SHM_GROWTH_BYTES = 1024 * 1024
EXIT_TIMEOUT_S = 20  # in-flight requests get this long after SIGTERM (C02: 30 s in all)
INFERENCE_TYPES = ("infer", "generate", "generate_stream")
KSERVE_TYPES = ("application/json", BINARY_JSON)
# Triton APIs that change the server (load/unload models, shared memory, tracing, log
# settings), restricted to a header only the adapter knows; the multi-model mode, which
# needs model control, runs Triton's own SageMaker endpoint instead of loopback HTTP.
RESTRICTED_APIS = "model-repository,shared-memory,trace,logging"
ADMIN_HEADER = "x-byoc-admin-key"
# The raw-body convention (triton_backends/README.md).
RAW_INPUT, RAW_CONTENT_TYPE, RAW_HEADERS = "PAYLOAD", "CONTENT_TYPE", "HEADERS"
RAW_OUTPUTS = (RAW_OUTPUT, "RESPONSE_CONTENT_TYPE", RAW_HEADERS_OUT, "STATUS")
PING_MODES = ("ready", "live")


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not true or false")


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or allowed[0]
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _positive(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise SettingsError(f"{name}={raw!r} must be a positive whole number")
    return int(raw)


def gpu_count() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    return len([line for line in out.stdout.splitlines() if line.startswith("GPU ")])


def placement(state: dict) -> dict[str, str]:
    """Each loaded model's instance groups, as Triton's own model config reports them."""
    import urllib.request

    found = {}
    for model in state["models"]:
        with urllib.request.urlopen(f"{state['base']}/v2/models/{model}/config",
                                    timeout=10) as response:
            config = json.loads(response.read())
        kinds = {g.get("kind") for g in config.get("instance_group", [])}
        if kinds:  # ensembles run no instances of their own
            found[model] = "gpu" if kinds == {"KIND_GPU"} else "cpu"
    return found


class Backend:
    name = "tritonserver"

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        self.settings = settings
        self.env_in = env
        self.multi_model = _bool(env, "SAGEMAKER_MULTI_MODEL", False)
        self.native = self.multi_model or not _bool(env, "BYOC_TRITON_FRONT", True)
        self.inference_type = _choice(env, "SAGEMAKER_TRITON_INFERENCE_TYPE", INFERENCE_TYPES)
        self.ping_mode = _choice(env, "SAGEMAKER_TRITON_OVERRIDE_PING_MODE", PING_MODES)
        # Every tensor of a Python-backend model passes through /dev/shm, which SageMaker
        # cannot raise (64 MB on many instances): a request over half of it fails in the
        # stub (measured: 45 MB served, 60 MB refused in 64 MB), so the front answers 413
        # above that instead (C09, C29).
        self.max_request_bytes = shm_request_cap()
        self.loaded: list[str] = []
        self.model_config: dict | None = None  # the default model's, fetched once ready
        if self.multi_model:
            self.repository = MULTI_MODEL_REPOSITORY
            self.model = None
        else:
            self.repository = find_repository()
            folders = model_folders(self.repository)
            self.loaded = models_to_load(folders, env.get("BYOC_TRITON_LOAD", ""))
            self.model = default_model(self.repository, folders,
                                       env.get("SAGEMAKER_TRITON_DEFAULT_MODEL_NAME"),
                                       env.get("BYOC_TRITON_DEFAULT_MODEL"), self.loaded)
            if self.model not in self.loaded:
                self.loaded.append(self.model)
        # Loopback ports from SAGEMAKER_SAFE_PORT_RANGE: HTTP behind the front, and the
        # opt-in gRPC and metrics endpoints (C03).
        self.http_port, self.grpc_port, self.metrics_port = settings.internal_ports(3)
        # The admin APIs stay closed to anything that lacks this per-start header: the
        # front never sends it, so nothing in the container can load or unload models.
        self.admin_key = secrets.token_hex(16)
        self.secrets = (self.admin_key,)
        base = f"http://127.0.0.1:{self.http_port}"
        self.address = ("127.0.0.1", self.http_port)
        self.infer_path = f"/v2/models/{self.model}/{self.inference_type}"
        self.infer_url = f"{base}{self.infer_path}"
        self.config_url = f"{base}/v2/models/{self.model}/config"
        self.ready_url = (f"{base}/v2/models/{self.model}/ready" if self.ping_mode == "ready"
                          else f"{base}/v2/health/live")

    def flags(self) -> list[str]:
        env, s = self.env_in, self.settings
        args = [f"--model-repository={self.repository}", "--model-control-mode=explicit",
                f"--exit-timeout-secs={EXIT_TIMEOUT_S}"]
        if self.native:
            args += ["--allow-sagemaker=true", "--allow-http=false", f"--sagemaker-port={s.port}"]
            if s.safe_ports:
                args.append(f"--sagemaker-safe-port-range={s.safe_ports[0]}-{s.safe_ports[1]}")
            if self.multi_model:
                namespacing = env.get("SAGEMAKER_TRITON_DISABLE_MODEL_NAMESPACING") or "true"
                args.append(f"--model-namespacing={namespacing}")
        else:
            args += ["--allow-sagemaker=false", "--allow-http=true", "--http-address=127.0.0.1",
                     f"--http-port={self.http_port}",
                     f"--http-restricted-api={RESTRICTED_APIS}:{ADMIN_HEADER}={self.admin_key}"]
        args += [f"--load-model={name}" for name in self.loaded]
        grpc = _bool(env, "SAGEMAKER_TRITON_ALLOW_GRPC", False)
        args.append(f"--allow-grpc={str(grpc).lower()}")
        if grpc:
            args += ["--grpc-address=127.0.0.1",
                     f"--grpc-port={_positive(env, 'SAGEMAKER_TRITON_GRPC_PORT', self.grpc_port)}",
                     f"--grpc-restricted-protocol={RESTRICTED_APIS}:{ADMIN_HEADER}="
                     f"{self.admin_key}"]
        metrics = _bool(env, "SAGEMAKER_TRITON_ALLOW_METRICS", False)
        args.append(f"--allow-metrics={str(metrics).lower()}")
        if metrics:
            port = _positive(env, "SAGEMAKER_TRITON_METRICS_PORT", self.metrics_port)
            args += ["--metrics-address=127.0.0.1", f"--metrics-port={port}"]
        for name, flag in (("SAGEMAKER_TRITON_BUFFER_MANAGER_THREAD_COUNT",
                            "--buffer-manager-thread-count"),
                           ("SAGEMAKER_TRITON_THREAD_COUNT",
                            "--sagemaker-thread-count" if self.native else "--http-thread-count")):
            value = _positive(env, name, None)
            if value:
                args.append(f"{flag}={value}")
        # --log-verbose takes a level; Triton's serve passes true/false, so accept both.
        verbose = env.get("SAGEMAKER_TRITON_LOG_VERBOSE", "").strip().lower() or "0"
        verbose = {"true": "1", "false": "0"}.get(verbose, verbose)
        if not verbose.isdigit():
            raise SettingsError(f"SAGEMAKER_TRITON_LOG_VERBOSE={verbose!r} is not a level or "
                                "true/false")
        args.append(f"--log-verbose={verbose}")
        info_default = "true" if s.log_level in ("DEBUG", "INFO") else "false"
        for level, default in (("INFO", info_default), ("WARNING", "true"), ("ERROR", "true")):
            value = env.get(f"SAGEMAKER_TRITON_LOG_{level}", "").strip() or default
            args.append(f"--log-{level.lower()}={value}")
        shm = _positive(env, "SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE", SHM_DEFAULT_BYTES)
        growth = _positive(env, "SAGEMAKER_TRITON_SHM_GROWTH_BYTE_SIZE", SHM_GROWTH_BYTES)
        args += [f"--backend-config=python,shm-default-byte-size={shm}",
                 f"--backend-config=python,shm-growth-byte-size={growth}"]
        limit = env.get("SAGEMAKER_TRITON_MODEL_LOAD_GPU_LIMIT", "").strip()
        if limit:
            args += [f"--model-load-gpu-limit={gpu}:{limit}" for gpu in range(gpu_count())]
        args += shlex.split(env.get("SAGEMAKER_TRITON_ADDITIONAL_ARGS", ""))
        return args

    def command(self) -> list[str]:
        if self.multi_model:
            MULTI_MODEL_REPOSITORY.mkdir(parents=True, exist_ok=True)
        return [TRITON, *self.flags()]

    def env(self) -> dict[str, str]:
        # The Python backend stub runs models with the venv's packages (numpy, torch).
        env = {"PYTHONPATH": _venv_site_packages()}
        if self.native and self.model:
            # Triton's own SageMaker endpoint reads the model /invocations runs from here.
            env["SAGEMAKER_TRITON_DEFAULT_MODEL_NAME"] = self.model
        return env

    def state(self) -> dict:
        return {"base": f"http://127.0.0.1:{self.http_port}", "models": self.loaded}

    async def ready(self, session: ClientSession) -> tuple[bool, str]:
        async with session.get(self.ready_url) as response:
            if response.status != 200:
                return False, f"{self.model} not ready ({response.status})"
        if self.model_config is None:
            async with session.get(self.config_url) as response:
                if response.status != 200:
                    return False, f"{self.model} config not readable ({response.status})"
                self.model_config = await response.json(content_type=None)
        return True, "ready"

    # -- what the default model takes ---------------------------------------------------------
    def _tensors(self, kind: str) -> dict[str, dict]:
        return {t["name"]: t for t in (self.model_config or {}).get(kind, [])}

    @property
    def raw_body(self) -> bool:
        inputs, outputs = self._tensors("input"), self._tensors("output")
        return (inputs.get(RAW_INPUT, {}).get("data_type") == "TYPE_STRING"
                and outputs.get(RAW_OUTPUT, {}).get("data_type") == "TYPE_STRING")

    def supported_content_types(self, declared: tuple[str, ...]) -> tuple[str, ...] | None:
        if self.model_config is None:
            return None  # not ready yet: invoke() answers
        if self.raw_body:
            return tuple(dict.fromkeys((*declared, *KSERVE_TYPES))) if declared else None
        return KSERVE_TYPES

    def upstream(self, body: bytes, content_type: str, headers: dict[str, str]) -> Upstream:
        """The request for the default model; the front sends it (front_fast). KServe v2
        JSON and binary tensors go as they are; other bodies as the PAYLOAD tensor."""
        kind = media_type(content_type)
        if kind == BINARY_JSON:
            size = _json_header_size(content_type)
            _check_binary_header(body, size)
            return Upstream(self.infer_path, {"Inference-Header-Content-Length": str(size)},
                            body, _native_answer)
        document = _kserve_v2(body) if kind == "application/json" else None
        if document is None and kind == "application/json" and not self.raw_body:
            document = _json_document(body)  # JSON for a KServe-only model is KServe v2
        if document is not None:
            fault = kserve_fault(document, len(body))
            if fault:
                raise ClientFault(f"malformed KServe v2 request: {fault}")
            return Upstream(self.infer_path, {"Content-Type": "application/json"}, body,
                            _native_answer)
        if self.model_config is None:  # not ready yet: what it takes is not known
            raise ClientFault(f"{self.model} is not ready yet", status=503)
        if not self.raw_body:
            raise ClientFault(f"{self.model} takes KServe v2 requests only (its config has no "
                              f"{RAW_INPUT} input for raw bodies)", status=415,
                              supported=list(KSERVE_TYPES))
        return self._payload(body, content_type, headers)

    async def invoke(self, session: ClientSession, body: bytes, content_type: str,
                     headers: dict[str, str]) -> Reply:
        """The same request over an aiohttp session (tests and tools)."""
        return await invoke(self, session, body, content_type, headers)

    def _payload(self, body: bytes, content_type: str, headers: dict[str, str]) -> Upstream:
        """A raw body as the model's PAYLOAD tensor, in Triton's binary tensor extension (no
        base64, no copy into JSON); the answer is the RESPONSE tensor's bytes."""
        declared_in, declared_out = self._tensors("input"), self._tensors("output")
        shape = [1, 1] if int((self.model_config or {}).get("max_batch_size", 0)) > 0 else [1]
        values = {RAW_INPUT: body, RAW_CONTENT_TYPE: content_type.encode(),
                  RAW_HEADERS: json.dumps(headers).encode()}
        sent = [name for name in (RAW_INPUT, RAW_CONTENT_TYPE, RAW_HEADERS)
                if name in declared_in]
        wanted = [name for name in RAW_OUTPUTS if name in declared_out]
        header = json.dumps({
            "inputs": [{"name": name, "shape": shape, "datatype": "BYTES",
                        "parameters": {"binary_data_size": len(values[name]) + 4}}
                       for name in sent],
            "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in wanted],
        }).encode()
        data = b"".join([header] + [struct.pack("<I", len(values[n])) + values[n] for n in sent])
        return Upstream(self.infer_path, {"Inference-Header-Content-Length": str(len(header)),
                                          "Content-Type": "application/octet-stream"},
                        data, _payload_answer)


SHM_DIR = "/dev/shm"


def shm_request_cap(shm_dir: str = SHM_DIR) -> int | None:
    """Half of /dev/shm: the largest request the Python backend's stubs can take."""
    try:
        stat = os.statvfs(shm_dir)
    except OSError:
        return None
    return stat.f_blocks * stat.f_frsize // 2


def _venv_site_packages() -> str:
    import sysconfig

    return sysconfig.get_paths()["purelib"]
