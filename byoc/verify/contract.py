"""Contract checks about the container, not the model's answers (see model_checks.py).

Each check names its ID in shared/docs/sagemaker-contract.md."""

from __future__ import annotations

import json
import time

from .. import launcher
from ..errors import ByocError
from .report import NOT_CHECKED, PASS
from .session import Session, is_json_error

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


def static_checks(s: Session, attrs: dict) -> None:
    labels, config = s.target.labels, attrs.get("Config") or {}
    entry = config.get("Entrypoint") or []
    s.record("C01", "exec-form ENTRYPOINT, serve as first argument",
             bool(entry) and entry[0].startswith("/") and "-c" not in entry,
             f"ENTRYPOINT {json.dumps(entry)} CMD {json.dumps(config.get('Cmd'))}")
    bind = labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port")
    s.record("C17", "accept-bind-to-port label", bind == "true", f"label={bind!r}")
    multi = labels.get("com.amazonaws.sagemaker.capabilities.multi-models")
    implements = s.target.multi_model
    s.record("C18", "multi-models label only with the multi-model API",
             (multi == "true") == implements,
             f"label={multi!r}, multi-model API {'present' if implements else 'absent'}")
    arch = attrs.get("Architecture")
    s.record("C20", "architecture matches the target instances", arch == "amd64",
             f"{attrs.get('Os')}/{arch} for {labels.get('dev.byoc.instance-types') or '?'}")


def ping_fast(s: Session, running: launcher.Running) -> None:
    def fast():
        t0 = time.monotonic()
        response = s.http.get(f"{running.url}/ping", timeout=2)
        took = time.monotonic() - t0
        return response.status_code == 200 and took < 2, \
            f"{response.status_code} in {took * 1000:.0f} ms"

    s.check("C04", "/ping 200 within 2 s once loaded", fast)


def headers(s: Session, running: launcher.Running) -> None:
    request = s.good_request()
    if request is None:
        s.record("C10", "headers: ignore unknown, echo only when set, log inference id",
                 NOT_CHECKED, "no request with a known good answer (give the model samples)")
        return

    def check():
        marker = f"verify-{int(time.time() * 1000)}"
        response = s.send(running, request, **{"X-Unknown-Header": "x",
                                                "X-Amzn-SageMaker-Custom-Attributes": "trace=1",
                                                "X-Amzn-SageMaker-Inference-Id": marker})
        echoed = response.headers.get("X-Amzn-SageMaker-Custom-Attributes")
        time.sleep(0.3)
        logged = marker in running.logs()
        # Echoed only when the handler sets it: an echo of exactly what was sent means the
        # front copied the request header, which it must not.
        ok = response.status_code == 200 and echoed != "trace=1" and logged
        return ok, (f"unknown header ignored ({response.status_code}); custom attributes "
                    f"{'not echoed' if echoed is None else 'set by the model: ' + echoed}; "
                    f"inference id {'logged' if logged else 'NOT logged'}")

    s.check("C10", "headers: ignore unknown, echo only when set, log inference id", check)


def quiet_ping(s: Session, running: launcher.Running) -> None:
    def check():
        time.sleep(0.5)
        before = len(running.logs().splitlines())
        for _ in range(20):
            s.http.get(f"{running.url}/ping", timeout=2)
        time.sleep(0.5)
        added = running.logs().splitlines()[before:]
        return not added, (f"{len(added)} log lines during 20 pings at INFO"
                           + (f": {added[0][:80]!r}" if added else "")
                           + " (logs go to stdout/stderr; BYOC_LOG_LEVEL sets the level)")

    s.check("C16", "logs on stdout, /ping not logged at INFO", check)


def model_dir_untouched(s: Session, running: launcher.Running) -> None:
    def check():
        changes = running.container.diff() or []
        touched = [c["Path"] for c in changes if c["Path"].startswith("/opt/ml/model/")]
        return not touched, ("no writes under /opt/ml/model (the packaged model, mounted "
                             "read-only)" if not touched else f"wrote {touched[:3]}")

    s.check("C13", "never writes to /opt/ml/model", check)


def shutdown(s: Session, running: launcher.Running) -> None:
    code, took = running.stop(timeout_s=30)
    s.record("C02", "SIGTERM: exit 0 within 30 s", code == 0 and took < 30,
             f"exit {code} {took:.2f}s after SIGTERM", took)


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


# SageMaker allows 100 variables of up to 1024 bytes each (C14): the ports run uses
# nearly all of them, beside the port variables and a short deadline for C08.
DEADLINE_S = 2
FILLER_VARIABLES = {f"BYOC_VERIFY_FILLER_{i:02d}": "x" * 1024 for i in range(96)}
PAUSE_SERVER = """
import os, signal, sys
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        name = os.path.basename(open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')[0])
    except OSError:
        continue
    if name in (b'java', b'tritonserver'):
        os.kill(int(pid), getattr(signal, sys.argv[1]))
        print(name.decode(), pid)
"""


def ports(s: Session) -> None:
    env = {"SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_SAFE_PORT_RANGE": "9100-9110",
           "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(DEADLINE_S), **FILLER_VARIABLES}
    with s.container(env=env) as running:
        def bound():
            ready = running.wait_ready(s.options.startup_budget_s)
            listening = listening_sockets(running)
            stray = [p for p in listening if p != 9090 and not 9100 <= p <= 9110]
            public = sorted(p for p, scope in listening.items() if scope == "public")
            ok = public == [9090] and not stray
            return ok, (f"ready on 9090 after {ready:.2f}s with {len(env)} variables "
                        f"(96 of 1024 bytes); public {public}; loopback "
                        f"{sorted(p for p in listening if p not in public)}; "
                        f"outside 9100-9110: {stray or 'none'}")

        s.check("C03", "listens on SAGEMAKER_BIND_TO_PORT, others in the safe range", bound)
        deadline(s, running)


def deadline(s: Session, running: launcher.Running) -> None:
    """C08, measured: with the model server paused (SIGSTOP), a request still gets a
    504 JSON at SAGEMAKER_MODEL_SERVER_TIMEOUT, well before SageMaker's 60 s."""
    request = s.good_request()

    def check():
        body, headers = (request.body, request.headers) if request else \
            (b"{}", {"Content-Type": "application/json"})
        paused = running.container.exec_run(["python", "-c", PAUSE_SERVER, "SIGSTOP"])
        try:
            t0 = time.monotonic()
            response = s.http.post(f"{running.url}/invocations", data=body, headers=headers,
                                   timeout=DEADLINE_S + 30)
            took = time.monotonic() - t0
        finally:
            running.container.exec_run(["python", "-c", PAUSE_SERVER, "SIGCONT"])
        in_time = DEADLINE_S <= took < DEADLINE_S + 3
        ok = response.status_code == 504 and is_json_error(response) and in_time
        return ok, (f"server paused ({paused.output.decode().strip()}): "
                    f"{response.status_code} after {took:.2f}s at "
                    f"SAGEMAKER_MODEL_SERVER_TIMEOUT={DEADLINE_S} (default "
                    f"{s.target.env.get('BYOC_DEFAULT_TIMEOUT_S', '?')}s, under SageMaker's 60)")

    s.check("C08", "a request slower than the deadline gets 504 JSON in time", check)


def empty_environment(s: Session, ready_s: float) -> None:
    s.record("C14", "starts with an empty environment, and with SageMaker's largest",
             PASS, f"ready {ready_s:.2f}s after docker run with no variables of its own; "
                   f"the C03 run adds {len(FILLER_VARIABLES) + 3} (96 of 1024 bytes)")


# Driver libraries come from the host through the NVIDIA container toolkit; a copy in
# the image shadows the host's and breaks CUDA (C26). cuda-compat's libcuda is allowed.
FIND_DRIVER = ("find / -xdev \\( -name 'libcuda.so*' -o -name 'libnvidia-*.so*' \\) "
               "-not -path '*/cuda/compat/*' 2>/dev/null | head -20")


def bundled_driver(s: Session) -> None:
    def check():
        output = launcher.client().containers.run(
            s.target.image, ["-c", FIND_DRIVER], entrypoint="sh", network_mode="none",
            remove=True).decode().split()
        cuda = s.target.labels.get("dev.byoc.cuda", "none")
        runs = "CPU image" if cuda == "none" else \
            f"CUDA {cuda} against drivers: see `python build.py check`"
        return not output, (f"no libcuda or libnvidia-* in the image ({runs})" if not output
                            else f"bundles {', '.join(output[:3])}")

    s.check("C26", "no bundled NVIDIA driver libraries", check)


def offline(s: Session) -> None:
    with s.container(network_mode="none") as running:
        def ready():
            deadline = time.monotonic() + s.options.startup_budget_s
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

        s.check("C15", "starts without the network", ready)


def server_death(s: Session) -> None:
    with s.container() as running:
        def dies():
            running.wait_ready(s.options.startup_budget_s)
            kill = running.container.exec_run(["python", "-c", KILL_SERVER])
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30:
                if running.status() == "exited":
                    code = running.exit_code()
                    return code != 0, (f"killed {kill.output.decode().strip()}; container "
                                       f"exited {code} after {time.monotonic() - t0:.1f}s")
                time.sleep(0.3)
            return False, "container kept running after its server died"

        s.check("C06", "container exits non-zero when the server dies", dies)


def debug_command(s: Session) -> None:
    output = launcher.client().containers.run(s.target.image, ["echo", "byoc-debug-ok"],
                                              remove=True)
    s.record("C01", "other first arguments run as commands", b"byoc-debug-ok" in output,
             "docker run IMAGE echo ... ran echo")
