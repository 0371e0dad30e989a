"""TorchServe behind the front. Everything TorchServe-specific at run time lives here,
so the flavor can be replaced without touching the supervisor or the front.

Security posture (see README "Security"): TorchServe's inference, management and
metrics APIs all bind to 127.0.0.1; only the front is public. Token authorization
is off because nothing outside the container can reach TorchServe's APIs, and
SageMaker authenticates callers (SigV4) before traffic reaches the container.
allowed_urls admits only .mar files in the two local model stores, and model
registration through the API stays disabled (ShellTorch, CVE-2023-43654)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from aiohttp import ClientSession
from multidict import CIMultiDict

from ..check_model import check_archive
from ..front import BackendFatal, Reply, Upstream, error_reply, invoke
from ..settings import Settings

MODEL_DIR = Path("/opt/ml/model")  # where SageMaker extracts ModelDataUrl
BAKED_STORE = Path("/opt/byoc/model-store")  # the model built into the image
WORK_DIR = Path("/tmp/byoc-torchserve")  # scratch; /opt/ml/model is read-only


LOAD_ATTEMPTS = 3  # workers that may die loading the model before the container gives up


class ModelLayoutError(RuntimeError):
    pass


def find_model_store(model_dir: Path = MODEL_DIR, baked: Path = BAKED_STORE) -> Path:
    """/opt/ml/model wins when it holds a .mar; else the model baked into the image."""
    for store in (model_dir, baked):
        if store.is_dir() and any(store.glob("*.mar")):
            return store
    raise ModelLayoutError(
        f"no model: {model_dir} holds no .mar file and the image has no baked model "
        "(built with --no-model). Point ModelDataUrl at a model.tar.gz made by "
        "`python build.py package-model torchserve`.")


def pick_model(store: Path, wanted: str | None) -> Path:
    mars = sorted(store.glob("*.mar"))
    if wanted:
        for mar in mars:
            if mar.stem == wanted:
                return mar
        raise ModelLayoutError(f"BYOC_DEFAULT_MODEL_NAME={wanted!r} but {store} holds only "
                               f"{', '.join(m.name for m in mars)}")
    if len(mars) > 1:
        raise ModelLayoutError(f"{store} holds {len(mars)} models "
                               f"({', '.join(m.name for m in mars)}); set "
                               "BYOC_DEFAULT_MODEL_NAME to the one to serve")
    return mars[0]


def mar_manifest(mar: Path) -> tuple[str, str]:
    """(model name, version) as TorchServe registers the archive: from its manifest."""
    try:
        with zipfile.ZipFile(mar) as archive:
            manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ModelLayoutError(f"{mar} is not a valid TorchServe model archive: {exc}") from None
    model = manifest.get("model") or {}
    return str(model.get("modelName") or mar.stem), str(model.get("modelVersion") or "1.0")


def check_model(model_dir: Path) -> int:
    """Build time (byoc_runtime.check_model): each archive's handler imports here."""
    return check_archive_files(sorted(Path(model_dir).glob("*.mar")), model_dir)


def check_archive_files(archives: list[Path], model_dir: Path) -> int:
    from ..check_model import fail

    if not archives:
        return fail(f"no .mar in the model stage ({model_dir})", "see the model stage above")
    for mar in archives:
        if check_archive(mar, mar.name):
            return 1
    return 0


def placement(state: dict) -> dict[str, str]:
    """Each worker, as TorchServe's management API describes it (its gpu flag)."""
    import urllib.request

    with urllib.request.urlopen(state["describe_url"], timeout=10) as response:
        described = json.loads(response.read())
    workers = described[0].get("workers", []) if described else []
    return {f"{state['model']} worker {w.get('id')}": "gpu" if w.get("gpu") else "cpu"
            for w in workers}


class Backend:
    name = "torchserve"

    def __init__(self, settings: Settings, env: dict[str, str] | None = None):
        env = os.environ if env is None else env
        self.settings = settings
        self.store = find_model_store()
        self.mar = pick_model(self.store, env.get("BYOC_DEFAULT_MODEL_NAME"))
        self.model, self.version = mar_manifest(self.mar)
        self.ever_ready = False
        self.loading_pids: set[int] = set()  # workers seen while the model never loaded
        # TorchServe also opens two gRPC ports; they get loopback ports in the safe range too.
        (self.inference_port, self.management_port, self.metrics_port,
         self.grpc_inference_port, self.grpc_management_port) = settings.internal_ports(5)
        self.batch_size = int(env.get("BYOC_BATCH_SIZE", "1"))
        self.max_batch_delay_ms = int(env.get("BYOC_MAX_BATCH_DELAY_MS", "5"))
        self.address = ("127.0.0.1", self.inference_port)
        self.predict_path = f"/predictions/{self.model}"
        self.predict_url = f"http://127.0.0.1:{self.inference_port}{self.predict_path}"
        self.describe_url = (f"http://127.0.0.1:{self.management_port}/models/"
                             f"{self.model}")

    def config_properties(self) -> str:
        s = self.settings
        # The front already refuses bodies over the limit; leave TorchServe a little room.
        max_bytes = s.max_payload_bytes + 65536
        models = {self.model: {self.version: {
            "marName": self.mar.name,
            "minWorkers": s.workers,
            "maxWorkers": s.workers,
            "batchSize": self.batch_size,
            "maxBatchDelay": self.max_batch_delay_ms,
            "responseTimeout": s.timeout_s,
        }}}
        store = str(self.store)
        lines = {
            "inference_address": f"http://127.0.0.1:{self.inference_port}",
            "management_address": f"http://127.0.0.1:{self.management_port}",
            "metrics_address": f"http://127.0.0.1:{self.metrics_port}",
            "grpc_inference_address": "127.0.0.1",
            "grpc_inference_port": str(self.grpc_inference_port),
            "grpc_management_address": "127.0.0.1",
            "grpc_management_port": str(self.grpc_management_port),
            "disable_token_authorization": "true",
            "enable_model_api": "false",
            "enable_envvars_config": "false",
            "allowed_urls": f"^file://{store}/[^/]+\\\\.mar$",
            "model_store": store,
            "load_models": self.mar.name,
            "models": json.dumps(models),
            "default_workers_per_model": str(s.workers),
            "default_response_timeout": str(s.timeout_s),
            "max_request_size": str(max_bytes),
            "max_response_size": str(max_bytes),
            "install_py_dep_per_model": "false",
            "disable_system_metrics": "true",
            "job_queue_size": "256",
        }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    def log_config(self) -> str:
        """log4j2 for TorchServe: everything on stdout (C16), at the container's level, but
        without TorchServe's per-request lines (access log, metrics, worker chatter: about 17
        lines a request at its defaults, which cost CPU and CloudWatch) unless DEBUG."""
        level = {"WARNING": "WARN"}.get(self.settings.log_level, self.settings.log_level)
        quiet = "DEBUG" if level == "DEBUG" else "WARN"
        per_request = ("ACCESS_LOG", "TS_METRICS", "MODEL_METRICS",
                       "org.pytorch.serve.wlm.WorkerThread",
                       "org.pytorch.serve.wlm.WorkerLifeCycle",
                       "org.pytorch.serve.wlm.BatchAggregator", "org.pytorch.serve.job")
        loggers = "".join(f'    <Logger name="{name}" level="{quiet}"/>\n'
                          for name in per_request)
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<Configuration status="WARN">\n'
                '  <Appenders>\n    <Console name="STDOUT" target="SYSTEM_OUT">\n'
                '      <PatternLayout pattern="%d{ISO8601} [%-5p] %t %c - %m%n"/>\n'
                '    </Console>\n  </Appenders>\n  <Loggers>\n'
                f'{loggers}'
                f'    <Root level="{level}"><AppenderRef ref="STDOUT"/></Root>\n'
                '  </Loggers>\n</Configuration>\n')

    def command(self) -> list[str]:
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        config = WORK_DIR / "config.properties"
        config.write_text(self.config_properties())
        log_config = WORK_DIR / "log4j2.xml"
        log_config.write_text(self.log_config())
        return ["torchserve", "--start", "--foreground", "--ncs", "--disable-token-auth",
                "--ts-config", str(config), "--model-store", str(self.store),
                "--log-config", str(log_config)]

    def env(self) -> dict[str, str]:
        logs = WORK_DIR / "logs"
        return {"LOG_LOCATION": str(logs), "METRICS_LOCATION": str(logs)}

    def state(self) -> dict:
        return {"model": self.model, "describe_url": self.describe_url}

    def supported_content_types(self, declared: tuple[str, ...]) -> tuple[str, ...] | None:
        return declared or None  # TorchServe takes any body; the handler decides

    async def ready(self, session: ClientSession) -> tuple[bool, str]:
        # TorchServe's own /ping says 200 before the model loads and while a worker
        # crash-loops; a READY worker (whose handler ran its self-test) is the truth.
        async with session.get(self.describe_url) as response:
            if response.status != 200:
                return False, f"model {self.model} not registered yet ({response.status})"
            described = await response.json(content_type=None)
        workers = described[0].get("workers", []) if described else []
        states = [w.get("status") for w in workers]
        if "READY" in states:
            self.ever_ready = True
            return True, "ready"
        if not self.ever_ready:
            # TorchServe restarts a worker whose model fails to load for ever, with back-off;
            # after LOAD_ATTEMPTS workers died loading it, it will not load (C04, C06).
            self.loading_pids |= {w.get("pid") for w in workers
                                  if isinstance(w.get("pid"), int) and w.get("pid") > 0}
            if len(self.loading_pids) > LOAD_ATTEMPTS:
                raise BackendFatal(f"model {self.model} failed to load: "
                                   f"{len(self.loading_pids) - 1} workers died loading it "
                                   "(the handler's error is in the log above)")
        return False, f"no READY worker for {self.model} ({', '.join(states) or 'none'})"

    def upstream(self, body: bytes, content_type: str, headers: dict[str, str]) -> Upstream:
        """The request for TorchServe's inference API; the front sends it (front_fast)."""
        return Upstream(self.predict_path, {**headers, "Content-Type": content_type}, body,
                        _answer)

    async def invoke(self, session: ClientSession, body: bytes, content_type: str,
                     headers: dict[str, str]) -> Reply:
        """The same request over an aiohttp session (tests and tools)."""
        return await invoke(self, session, body, content_type, headers)


def _answer(status: int, headers, raw: bytes) -> Reply:
    if status == 503 and b"Prediction failed" in raw:
        # TorchServe answers a handler's exception 503 ("unavailable, retry"); it is a
        # server fault of this request: 500, as the Triton host says it (C11).
        return error_reply(500, raw)
    if status >= 400:
        return error_reply(status, raw)
    # No Content-Type unless the handler set one: the front labels it (label_untyped).
    headers = headers if isinstance(headers, CIMultiDict) else CIMultiDict(headers)
    return Reply(status, raw, headers.get("Content-Type", ""), headers)
