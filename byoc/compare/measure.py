"""Measuring one server: start its image as SageMaker does, time the first correct answer,
then one closed-loop load step per concurrency with the probes over exactly each step,
then stop it as SageMaker does (SIGTERM)."""

from __future__ import annotations

import time

import requests
from docker.errors import NotFound

from .. import launcher, loadgen
from ..console import Console
from ..errors import ByocError
from ..report import name as label_of
from . import bodies, probes
from .facts import ImageFacts
from .options import CompareOptions
from .settings import settings_line

WRONG_IN_A_ROW = 20


def first_correct_answer(running: launcher.Running, payload: loadgen.Payload,
                         budget_s: float, name: str = "the container") -> float:
    """Seconds from `docker run` to the first correct answer to a real request. A server
    that says it is ready (/ping 200) and answers wrongly WRONG_IN_A_ROW times in a row
    will not get it right by waiting."""
    deadline = running.started_at + budget_s
    wrong = 0
    with requests.Session() as http:
        while time.monotonic() < deadline:
            try:
                response = http.post(f"{running.url}/invocations", data=payload.body,
                                     headers=payload.request_headers(), timeout=2)
                problem = bodies.check(payload, response.status_code, response.content)
                if problem is None:
                    return time.monotonic() - running.started_at
                # Only a wrong answer from a server that says it is ready counts: a front
                # may refuse requests before its model is loaded.
                ready = response.status_code < 500 and _ready(http, running)
                wrong = wrong + 1 if ready else 0
                if wrong >= WRONG_IN_A_ROW:
                    raise ByocError(f"{name} answers {payload.expected.name} wrongly: "
                                    f"{problem}: {response.content[:300]!r}",
                                    f"`python build.py verify {name}` checks every sample")
            except requests.RequestException:
                wrong = 0
            if running.status() in ("exited", "dead"):
                raise ByocError(f"{name} exited with code "
                                f"{running.exit_code()} before answering; last log lines:\n"
                                + "\n".join(running.logs().splitlines()[-20:]))
            time.sleep(0.05)
    raise ByocError(f"{name}: no correct answer within {budget_s:.0f} s of docker run",
                    "raise --startup-timeout if the model is large; `python build.py verify "
                    "IMAGE` says what the image answers")


def _ready(http: requests.Session, running: launcher.Running) -> bool:
    try:
        return http.get(f"{running.url}/ping", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def measure_server(facts: ImageFacts, options: CompareOptions,
                   payloads: list[loadgen.Payload], console: Console) -> dict:
    try:
        return _measure_server(facts, options, payloads, console)
    except NotFound as exc:  # docker rm -f or a prune elsewhere on a shared engine
        raise ByocError(f"the {facts.server} container vanished while it was measured: "
                        f"{exc.explanation}", "something else on this Docker engine removed "
                        "it (docker rm, container prune); run compare again") from None


def _probes(running: launcher.Running, gpu: bool, console: Console) -> dict:
    found: dict = {"server": probes.DockerStatsProbe(running.container)}
    try:
        found["machine"] = probes.MachineCpuProbe()
        found["docker"] = probes.DockerSideProbe(running.port, running.container.id)
    except ImportError:
        console.warn("psutil missing: machine and Docker-side CPU not measured")
    if gpu:
        found["gpu"] = probes.GpuProbe()
    return found


def _measure_server(facts: ImageFacts, options: CompareOptions,
                    payloads: list[loadgen.Payload], console: Console) -> dict:
    label = label_of(facts.server)
    console.step(f"{label}: start {facts.reference} as SageMaker does")
    busy_before = probes.machine_busy()
    with launcher.launched(facts.reference, gpu=options.gpu,
                           name_hint="byoc-compare") as running:
        cold = first_correct_answer(running, payloads[0], options.startup_timeout_s,
                                    facts.reference)
        console.info(f"first correct answer {cold:.2f} s after docker run")
        found = _probes(running, options.gpu, console)
        steps = []
        for concurrency in options.concurrency:
            console.step(f"{label}: {concurrency} clients, up to {options.max_requests} "
                         f"requests or {options.duration_s:g} s")
            result = loadgen.run_step(
                f"{running.url}/invocations", payloads, concurrency=concurrency,
                duration_s=options.duration_s, max_requests=options.max_requests,
                warmup=options.warmup, timeout_s=options.timeout_s, check=bodies.check,
                probes=found)
            summary = result.summary()
            console.info(f"{summary['ok']} ok, {summary['errors']} errors, "
                         f"{summary['throughput_rps']:.0f} req/s, p50 {summary['p50_ms']} ms, "
                         f"p99 {summary['p99_ms']} ms; server {summary['server_cpu_cores']} "
                         f"cores, client {summary['client_cores']} cores")
            steps.append({**summary,
                          "latency_us": [round(v * 1e6) for v in result.latencies_s]})
        exit_code, stop_s = running.stop()
    return {"server": facts.server, "label": label,
            "flavor": facts.labels.get("dev.byoc.flavor"), "image": facts.reference,
            "image_id": facts.image_id, "server_version": facts.labels.get("dev.byoc.server"),
            "model_kind": facts.model_kind, "settings": facts.settings,
            "settings_line": settings_line(facts.server, facts.settings), "size": facts.size,
            "first_answer_s": round(cold, 3), "machine_busy_before_cores": busy_before,
            "stop": {"exit_code": exit_code, "seconds": round(stop_s, 2)}, "steps": steps}
