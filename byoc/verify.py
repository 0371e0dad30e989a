"""verify: start an image as SageMaker does and check each applicable contract point.

The contract lives in shared/docs/sagemaker-contract.md; every check below names
its ID. The same checks back the pytest contract suite."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

from . import launcher, samples
from .console import Console
from .errors import ByocError, VerifyFailed
from .render import BAKED_MODEL_DIR

SIX_MIB = 6 * 1024 * 1024


@dataclasses.dataclass
class Check:
    cid: str
    title: str
    ok: bool | None  # None: not applicable to this image
    detail: str
    seconds: float | None = None


@dataclasses.dataclass
class Report:
    image: str
    checks: list[Check]
    ready_s: float | None = None
    first_answer_s: float | None = None

    @property
    def passed(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def table(self) -> str:
        rows = [("ID", "result", "check", "detail", "time")]
        for c in self.checks:
            result = "n/a" if c.ok is None else ("PASS" if c.ok else "FAIL")
            secs = "" if c.seconds is None else f"{c.seconds:.2f}s"
            rows.append((c.cid, result, c.title, c.detail, secs))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = []
        for i, r in enumerate(rows):
            lines.append("  ".join(r[j].ljust(widths[j]) for j in range(4)) + "  " + r[4])
            if i == 0:
                lines.append("  ".join("-" * w for w in widths) + "  ----")
        summary = (f"{sum(c.ok is True for c in self.checks)} passed, "
                   f"{len(self.failed())} failed, {sum(c.ok is None for c in self.checks)} n/a")
        timing = ""
        if self.ready_s is not None:
            timing = f"; start to ready {self.ready_s:.2f}s"
        if self.first_answer_s is not None:
            timing += f", start to first correct answer {self.first_answer_s:.2f}s"
        return "\n".join(lines) + f"\n{summary}{timing}"


def _is_json_error(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("error"))


def predictions(response: requests.Response) -> list[int]:
    return [p["label"] for p in response.json()["predictions"]]


class Verifier:
    def __init__(self, image: str, *, model_tar: Path | None = None, gpu: bool = False,
                 startup_budget_s: float = launcher.DEFAULT_STARTUP_BUDGET_S,
                 console: Console | None = None):
        self.image = image
        self.model_tar = model_tar
        self.gpu = gpu
        self.budget = startup_budget_s
        self.console = console or Console()
        self.checks: list[Check] = []
        self.http = requests.Session()

    # -- helpers ---------------------------------------------------------------------------
    def record(self, cid: str, title: str, ok: bool | None, detail: str,
               seconds: float | None = None) -> None:
        self.checks.append(Check(cid, title, ok, detail, seconds))
        mark = "n/a " if ok is None else ("ok  " if ok else "FAIL")
        self.console.info(f"{mark} {cid} {title}: {detail}")

    def check(self, cid: str, title: str, fn: Callable[[], tuple[bool | None, str]]) -> None:
        t0 = time.monotonic()
        try:
            ok, detail = fn()
        except Exception as exc:  # a check that crashes is a failed check, with the reason
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self.record(cid, title, ok, detail, time.monotonic() - t0)

    @contextlib.contextmanager
    def container(self, **kwargs) -> Iterator[launcher.Running]:
        with launcher.launched(self.image, model_tar=self.model_tar, gpu=self.gpu,
                               **kwargs) as running:
            yield running

    def post(self, running, body: bytes, content_type: str | None, **headers):
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.http.post(f"{running.url}/invocations", data=body, headers=headers,
                              timeout=65)

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Report:
        dock = launcher.client()
        attrs = dock.images.get(self.image).attrs
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        self.static_checks(attrs, labels)
        report = Report(self.image, self.checks)
        self.console.step(f"verify: starting {self.image} as SageMaker does (serve, 64 MB shm)")
        with self.container() as running:
            report.ready_s = running.wait_ready(self.budget)
            self.record("C05", "ready within the startup budget", report.ready_s < self.budget,
                        f"/ping 200 {report.ready_s:.2f}s after docker run "
                        f"(budget {self.budget:.0f}s)", report.ready_s)
            report.first_answer_s = self.serving_checks(running)
            if self.gpu:
                self.gpu_checks(running)
            self.record_shutdown(running)
        self.console.step("verify: SAGEMAKER_BIND_TO_PORT and SAGEMAKER_SAFE_PORT_RANGE")
        self.port_checks()
        if labels.get("dev.byoc.multi-model") == "true":
            self.console.step("verify: multi-model API (SAGEMAKER_MULTI_MODEL=true, C21-C25)")
            self.multi_model_checks()
        self.console.step("verify: start with no network (C15), server death (C06)")
        self.offline_check()
        self.server_death_check()
        self.debug_command_check()
        self.checks.sort(key=lambda c: c.cid)
        return report

    def static_checks(self, attrs: dict, labels: dict) -> None:
        config = attrs.get("Config") or {}
        entry = config.get("Entrypoint") or []
        self.record("C01", "exec-form ENTRYPOINT, serve as first argument",
                    bool(entry) and entry[0].startswith("/") and "-c" not in entry,
                    f"ENTRYPOINT {json.dumps(entry)} CMD {json.dumps(config.get('Cmd'))}")
        bind = labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port")
        self.record("C17", "accept-bind-to-port label", bind == "true", f"label={bind!r}")
        multi = labels.get("com.amazonaws.sagemaker.capabilities.multi-models")
        implements_mme = labels.get("dev.byoc.multi-model") == "true"
        self.record("C18", "multi-models label only with the multi-model API",
                    (multi == "true") == implements_mme,
                    f"label={multi!r}, multi-model API {'present' if implements_mme else 'absent'}")
        arch = attrs.get("Architecture")
        self.record("C20", "architecture matches the target instances", arch == "amd64",
                    f"{attrs.get('Os')}/{arch} for {labels.get('dev.byoc.instance-types') or '?'}")
        env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
        timeout = int(env.get("BYOC_DEFAULT_TIMEOUT_S", "0") or 0)
        self.record("C08", "server-side timeout under 60 s, configurable", 0 < timeout < 60,
                    f"default {timeout}s, SAGEMAKER_MODEL_SERVER_TIMEOUT overrides")
        self.record("C14", "starts with an empty environment", True,
                    "verify passes no variables to the main container")
        cuda = labels.get("dev.byoc.cuda", "none")
        self.record("C26", "no bundled NVIDIA driver; CUDA runtime matches drivers",
                    None if cuda == "none" else None,
                    "cpu image" if cuda == "none" else f"CUDA {cuda}: see `build.py check`")

    def serving_checks(self, running: launcher.Running) -> float | None:
        first_answer: list[float] = []

        def ping_fast():
            t0 = time.monotonic()
            response = self.http.get(f"{running.url}/ping", timeout=2)
            took = time.monotonic() - t0
            return response.status_code == 200 and took < 2, \
                f"{response.status_code} in {took * 1000:.0f} ms"

        self.check("C04", "/ping 200 within 2 s once loaded", ping_fast)

        def correct_answers():
            wrong = []
            for sample in samples.digits():
                for kind, (ctype, body) in samples.request_bodies(sample).items():
                    response = self.post(running, body, ctype, Accept="application/json")
                    if not first_answer and response.status_code == 200:
                        first_answer.append(time.monotonic() - running.started_at)
                    got = predictions(response) if response.status_code == 200 else \
                        response.status_code
                    if got != [sample.label]:
                        wrong.append(f"{kind} of {sample.label} -> {got}")
            total = len(samples.digits()) * 4
            return not wrong, (f"{total - len(wrong)}/{total} correct over png, jpeg, json, npy"
                               + (f"; wrong: {', '.join(wrong[:3])}" if wrong else ""))

        self.check("C07", "predictions for every supported Content-Type", correct_answers)

        def unsupported_types():
            good = samples.request_bodies(samples.digits()[0])["json"][1]
            r415 = self.post(running, b"hello", "text/plain")
            r406 = self.post(running, good, "application/json", Accept="text/csv")
            supported = r415.json().get("supported") if _is_json_error(r415) else None
            ok = r415.status_code == 415 and r406.status_code == 406 and bool(supported) \
                and _is_json_error(r406)
            return ok, f"text/plain -> {r415.status_code} (supported: {supported}); " \
                       f"Accept text/csv -> {r406.status_code}"

        self.check("C07", "415/406 with JSON naming supported types", unsupported_types)

        def payload_limits():
            big = samples.payload_of_size(SIX_MIB - 4096)
            ok_resp = self.post(running, big, "application/x-npy")
            too_big = samples.payload_of_size(7 * 1024 * 1024)
            r413 = self.post(running, too_big, "application/x-npy")
            ok = ok_resp.status_code == 200 and r413.status_code == 413 and _is_json_error(r413)
            return ok, (f"{len(big)} bytes -> {ok_resp.status_code}; "
                        f"{len(too_big)} bytes -> {r413.status_code}")

        self.check("C09", "6 MiB request served, larger one 413", payload_limits)

        def headers():
            body = samples.request_bodies(samples.digits()[1])["json"][1]
            marker = f"verify-{int(time.time() * 1000)}"
            response = self.post(running, body, "application/json",
                                 **{"X-Unknown-Header": "x",
                                    "X-Amzn-SageMaker-Custom-Attributes": "trace=1",
                                    "X-Amzn-SageMaker-Inference-Id": marker})
            echoed = "X-Amzn-SageMaker-Custom-Attributes" in response.headers
            time.sleep(0.3)
            logged = marker in running.logs()
            ok = response.status_code == 200 and not echoed and logged
            return ok, (f"unknown header ignored ({response.status_code}); custom attributes "
                        f"{'echoed' if echoed else 'not echoed'} (handler sets none); "
                        f"inference id {'logged' if logged else 'NOT logged'}")

        self.check("C10", "headers: ignore unknown, echo only when set, log inference id",
                   headers)

        def bad_inputs():
            good_type, good = samples.request_bodies(samples.digits()[2])["json"]
            cases = {
                "malformed JSON": (b'{"instances": [1, 2', "application/json"),
                "wrong shape": (b'{"instances": [[1, 2, 3]]}', "application/json"),
                "empty body": (b"", "application/json"),
                "undecodable image": (b"\x89PNG\r\n\x1a\nnot really", "image/png"),
                "bad npy": (b"\x93NUMPY garbage", "application/x-npy"),
            }
            results = []
            ok = True
            for name, (body, ctype) in cases.items():
                response = self.post(running, body, ctype)
                after = self.post(running, good, good_type)
                fine = 400 <= response.status_code < 500 and _is_json_error(response) \
                    and after.status_code == 200
                ok &= fine
                results.append(f"{name} {response.status_code}")
            return ok, "; ".join(results) + "; next good request 200 each time"

        self.check("C11", "malformed requests get 4xx JSON, server keeps serving", bad_inputs)
        self.record("C12", "out-of-memory surfaces as 507", None,
                    "not provoked on CPU (the example model cannot exhaust memory)")

        def quiet_ping():
            before = running.logs().count("\n")
            for _ in range(20):
                self.http.get(f"{running.url}/ping", timeout=2)
            time.sleep(0.3)
            added = running.logs().splitlines()[before:]
            ping_lines = [line for line in added if "/ping" in line]
            return not ping_lines, f"{len(ping_lines)} log lines for 20 pings " \
                                   "(logs go to stdout/stderr; BYOC_LOG_LEVEL sets the level)"

        self.check("C16", "logs on stdout, /ping not logged at INFO", quiet_ping)

        def model_dir_untouched():
            changes = running.container.diff() or []
            touched = [c["Path"] for c in changes if c["Path"].startswith("/opt/ml/model/")]
            return not touched, "no writes under /opt/ml/model" if not touched else \
                f"wrote {touched[:3]}"

        self.check("C13", "never writes to /opt/ml/model", model_dir_untouched)
        return first_answer[0] if first_answer else None

    def gpu_checks(self, running: launcher.Running) -> None:
        """C27: with GPUs attached, torch sees them and the model is placed on one."""
        def torch_sees_gpu():
            result = running.container.exec_run(
                ["python", "-c", "import torch; print(torch.cuda.is_available(), "
                 "torch.cuda.device_count(), torch.version.cuda)"])
            text = result.output.decode().strip()
            return text.startswith("True"), f"torch.cuda: {text}"

        self.check("C27", "torch sees the GPU inside the container", torch_sees_gpu)

        def model_on_gpu():
            # Both servers log where the model went: the TorchServe handler ("digits model
            # loaded on device cuda:0") and the Triton classifier ("digits_classifier on
            # cuda:0"); a CPU placement with a GPU present is a failure.
            lines = [line for line in running.logs().splitlines()
                     if "loaded on device" in line or "digits_classifier on" in line]
            on_gpu = [line for line in lines if "cuda" in line]
            return bool(on_gpu) and len(on_gpu) == len(lines), \
                (on_gpu or lines or ["no placement line in the logs"])[-1][-120:]

        self.check("C27", "model instances placed on the GPU", model_on_gpu)

    def record_shutdown(self, running: launcher.Running) -> None:
        code, took = running.stop(timeout_s=30)
        self.record("C02", "SIGTERM: exit 0 within 30 s", code == 0 and took < 30,
                    f"exit {code} {took:.2f}s after SIGTERM", took)

    def port_checks(self) -> None:
        env = {"SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_SAFE_PORT_RANGE": "9100-9110"}
        with self.container(env=env) as running:
            def bound():
                ready = running.wait_ready(self.budget)
                listening = listening_sockets(running)
                stray = [p for p in listening if p != 9090 and not 9100 <= p <= 9110]
                public = sorted(p for p, scope in listening.items() if scope == "public")
                ok = public == [9090] and not stray
                return ok, (f"ready on 9090 after {ready:.2f}s; public {public}; loopback "
                            f"{sorted(p for p in listening if p not in public)}; "
                            f"outside 9100-9110: {stray or 'none'}")

            self.check("C03", "listens on SAGEMAKER_BIND_TO_PORT, others in the safe range",
                       bound)

    def offline_check(self) -> None:
        with self.container(network_mode="none") as running:
            def offline_ready():
                deadline = time.monotonic() + self.budget
                while time.monotonic() < deadline:
                    if running.status() == "exited":
                        return False, f"exited {running.exit_code()} without a network"
                    result = running.container.exec_run(
                        ["python", "-c", "import urllib.request as u;"
                         "print(u.urlopen('http://127.0.0.1:8080/ping', timeout=2).status)"])
                    if result.exit_code == 0 and b"200" in result.output:
                        return True, "ready with --network none (no download at start)"
                    time.sleep(0.5)
                return False, "never ready without a network"

            self.check("C15", "starts without the network", offline_ready)

    def server_death_check(self) -> None:
        with self.container() as running:
            def dies_with_server():
                running.wait_ready(self.budget)
                kill = running.container.exec_run(["python", "-c", KILL_SERVER])
                t0 = time.monotonic()
                while time.monotonic() - t0 < 30:
                    if running.status() == "exited":
                        code = running.exit_code()
                        return code != 0, (f"killed {kill.output.decode().strip()}; container "
                                           f"exited {code} after {time.monotonic() - t0:.1f}s")
                    time.sleep(0.3)
                return False, "container kept running after its server died"

            self.check("C06", "container exits non-zero when the server dies", dies_with_server)

    def multi_model_checks(self) -> None:
        """Load, list, describe, invoke and unload a model the way SageMaker's MME does."""
        with tempfile.TemporaryDirectory(prefix="byoc-mme-") as tmp:
            model_root = Path(tmp) / "digits" / "model"
            self._model_repository_into(model_root)
            Path(tmp).chmod(0o755)
            url = "/opt/ml/models/digits/model"
            with launcher.launched(self.image, gpu=self.gpu, env={"SAGEMAKER_MULTI_MODEL": "true"},
                                   volumes={tmp: {"bind": "/opt/ml/models", "mode": "ro"}}) \
                    as running:
                running.wait_ready(self.budget)
                base = running.url
                http = self.http
                sample = samples.digits()[4]
                body = kserve_payload_request(sample)

                def load():
                    first = http.post(f"{base}/models", json={"model_name": "digits", "url": url},
                                      timeout=120)
                    again = http.post(f"{base}/models", json={"model_name": "digits", "url": url},
                                      timeout=120)
                    return (first.status_code == 200 and again.status_code == 409,
                            f"load {first.status_code}, load again {again.status_code}")

                self.check("C21", "POST /models loads (200), twice is 409", load)

                def listed():
                    response = http.get(f"{base}/models", timeout=10)
                    models = response.json().get("models", [])
                    ok = {"modelName": "digits", "modelUrl": url} in models
                    return ok, f"{response.status_code} {models}"

                self.check("C22", "GET /models lists it", listed)

                def described():
                    found = http.get(f"{base}/models/digits", timeout=10)
                    missing = http.get(f"{base}/models/nope", timeout=10)
                    ok = found.status_code == 200 and found.json().get("modelName") == "digits" \
                        and missing.status_code == 404
                    return ok, f"digits {found.status_code}, unknown {missing.status_code}"

                self.check("C23", "GET /models/{name}, 404 when unknown", described)

                def invoked():
                    response = http.post(f"{base}/models/digits/invoke", data=body,
                                         headers={"Content-Type": "application/json"}, timeout=60)
                    label = kserve_label(response) if response.status_code == 200 else None
                    return label == sample.label, f"{response.status_code}, label {label}"

                self.check("C25", "POST /models/{name}/invoke answers", invoked)

                def unloaded():
                    deleted = http.delete(f"{base}/models/digits", timeout=60)
                    gone = http.get(f"{base}/models/digits", timeout=10)
                    invoke = http.post(f"{base}/models/digits/invoke", data=body,
                                       headers={"Content-Type": "application/json"}, timeout=60)
                    ok = deleted.status_code == 200 and gone.status_code == 404 \
                        and invoke.status_code == 404
                    return ok, (f"delete {deleted.status_code}, then get {gone.status_code}, "
                                f"invoke {invoke.status_code}")

                self.check("C24", "DELETE unloads; then 404", unloaded)

    def _model_repository_into(self, target: Path) -> None:
        """The model to load: the --model-tar given, else the one baked into the image."""
        target.mkdir(parents=True)
        if self.model_tar:
            with tarfile.open(self.model_tar, "r:gz") as archive:
                archive.extractall(target, filter="data")
            return
        dock = launcher.client()
        container = dock.containers.create(self.image, ["true"])
        try:
            stream, _ = container.get_archive(f"{BAKED_MODEL_DIR}/.")
            data = io.BytesIO(b"".join(stream))
        finally:
            container.remove(force=True)
        with tarfile.open(fileobj=data) as archive:
            archive.extractall(target, filter="data")
        for path in [target, *target.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)

    def debug_command_check(self) -> None:
        dock = launcher.client()
        output = dock.containers.run(self.image, ["echo", "byoc-debug-ok"], remove=True)
        self.record("C01", "other first arguments run as commands",
                    b"byoc-debug-ok" in output, "docker run IMAGE echo ... ran echo")


# Kill the model server (the process behind the front) the hard way.
KILL_SERVER = """
import os, signal
me = os.getpid()
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        cmd = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')
    except OSError:
        continue
    name = os.path.basename(cmd[0]).decode()
    if name in ('java', 'tritonserver'):
        os.kill(int(pid), signal.SIGKILL)
        print(name, pid)
"""

LIST_PORTS = """
ports = set()
LOOPBACK = ('0100007F', '00000000000000000000000001000000')
for table in ('/proc/net/tcp', '/proc/net/tcp6'):
    try:
        rows = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for row in rows:
        fields = row.split()
        if fields[3] == '0A':  # LISTEN
            addr, port = fields[1].rsplit(':', 1)
            scope = 'loopback' if addr in LOOPBACK else 'public'
            ports.add(f'{int(port, 16)}/{scope}')
print(' '.join(sorted(ports)))
"""


def kserve_payload_request(sample: samples.Sample) -> bytes:
    """A KServe v2 JSON request for the example ensemble: the JSON body as PAYLOAD."""
    ctype, body = samples.request_bodies(sample)["json"]
    return json.dumps({"inputs": [
        {"name": "PAYLOAD", "shape": [1], "datatype": "BYTES", "data": [body.decode()]},
        {"name": "CONTENT_TYPE", "shape": [1], "datatype": "BYTES", "data": [ctype]},
    ]}).encode()


def kserve_label(response: requests.Response) -> int | None:
    outputs = {o["name"]: o for o in response.json().get("outputs", [])}
    answer = json.loads(outputs["RESPONSE"]["data"][0])
    return answer["predictions"][0]["label"]


def listening_sockets(running: launcher.Running) -> dict[int, str]:
    """Listening TCP ports inside the container -> 'loopback' or 'public'."""
    result = running.container.exec_run(["python", "-c", LIST_PORTS])
    if result.exit_code != 0:
        raise ByocError(f"could not list ports: {result.output.decode()[:200]}")
    found: dict[int, str] = {}
    for entry in result.output.decode().split():
        port, scope = entry.split("/")
        if found.get(int(port)) != "public":
            found[int(port)] = scope
    return found


def verify(image: str, *, model_tar: Path | None = None, gpu: bool = False,
           startup_budget_s: float = launcher.DEFAULT_STARTUP_BUDGET_S,
           console: Console | None = None) -> Report:
    console = console or Console()
    report = Verifier(image, model_tar=model_tar, gpu=gpu, startup_budget_s=startup_budget_s,
                      console=console).run()
    print(report.table(), flush=True)
    if not report.passed:
        failed = ", ".join(f"{c.cid} ({c.title})" for c in report.failed())
        raise VerifyFailed(f"{image} fails the SageMaker contract: {failed}",
                           "fix the image; nothing was tagged for push")
    return report
