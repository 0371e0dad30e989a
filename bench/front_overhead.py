"""What the front costs, per server: the same request to the server's own HTTP API on
loopback (native) and through the front, side by side in one container, interleaved.

    .venv/bin/python bench/front_overhead.py [--servers torchserve,triton] [--rounds 2]
        [--candidates front] [--requests 8000] [--duration 6] [--out bench/results/X.json]

For each server one container runs as SageMaker runs it (serve: the server and its front
on 8080). The client (bench/front_client.py: raw keep-alive HTTP/1.1, the image's own
Python) runs inside the container, so it reaches the loopback-only native APIs: TorchServe's
inference API (/predictions/NAME) and Triton's HTTP (/v2/models/NAME/infer). Candidate
fronts (bench/front_candidates/run_front.py: the aiohttp front of before issue 15, from
git history, on asyncio or uvloop; front_fast from this checkout; and a Go floor built
when `go` is on PATH) start beside serve's own on other ports, against the same server.
Rounds interleave the targets; each cell is bounded by --requests and --duration.

Per cell: req/s, p50/p99, and CPU per request of the client, each front and the server
(host /proc of the container's processes), and the CPU the rest of the machine used
meanwhile (other work on the shared cores: read the numbers with it)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import front_rows  # noqa: E402
from bench.front_procs import Cell, ContainerProcs, machine_facts  # noqa: E402
from byoc import launcher  # noqa: E402

IMAGES = {"torchserve": "byoc-torchserve:0.1.0-cpu", "triton": "byoc-triton:0.1.0-cpu",
          # bench/heavy_model.py's model, built with build.py --model MODEL/model.yaml --tag
          "torchserve-heavy": "byoc-bench/front-heavy-torchserve:cpu",
          "triton-heavy": "byoc-bench/front-heavy-triton:cpu"}
CANDIDATE_PORTS = {"aiohttp": 9001, "aiohttp-uvloop": 9002, "go": 9003, "fast": 9004}
MOUNT = "/opt/bench"
OLD_RUNTIME = "a223aa0"  # the last runtime whose serve ran the aiohttp front (front.py)


@dataclasses.dataclass(frozen=True)
class Target:
    name: str  # native, front, or a candidate
    port: int
    path: str
    body: str  # file name under the bodies folder
    content_type: str = "application/json"
    proc: str | None = None  # how to find the front's process in `docker top`
    method: str = "POST"


def run_cell(running, target: Target, concurrency: int, args, procs: ContainerProcs) -> dict:
    argv = ["python", f"{MOUNT}/bench/front_client.py", "--port", str(target.port),
            "--path", target.path, "--body", f"{MOUNT}/data/{target.body}",
            "--type", target.content_type, "--concurrency", str(concurrency),
            "--requests", str(args.requests), "--duration", str(args.duration),
            "--warmup", str(args.warmup), "--method", target.method]
    cell = Cell(procs, front=target.proc)
    cell.start()
    code, out = running.container.exec_run(argv, environment={"PYTHONPATH": f"{MOUNT}/site"})
    measured = cell.stop()
    text = out.decode(errors="replace").strip()
    if code != 0:
        raise RuntimeError(f"client failed on {target.name}: {text[-2000:]}")
    result = json.loads(text.splitlines()[-1])
    result.update(measured)
    result["client_us_per_req"] = round(result["client_cpu_s"] / max(result["ok"], 1) * 1e6, 1)
    # The fronts' and server's CPU is read around the whole exec: warm-up requests included.
    served = max(result["requests"] + args.warmup, 1)
    for key in ("front", "server"):
        result[f"{key}_us_per_req"] = round(result[f"{key}_cpu_s"] / served * 1e6, 1)
    return result


def start_candidates(running, candidates: list[str], upstream_url: str, env: dict,
                     ports: dict[str, int] | None = None) -> None:
    """Each candidate on its port, then one /ping each: the adapter reads the model's
    config when it first finds it ready, as serve's own front did during wait_ready."""
    ports = ports or CANDIDATE_PORTS
    for kind in candidates:
        if kind == "front":
            continue
        port = ports[kind]
        if kind == "go":
            argv = [f"{MOUNT}/data/goproxy", "-listen", f"127.0.0.1:{port}",
                    "-upstream", upstream_url]
        else:
            argv = ["python", f"{MOUNT}/bench/front_candidates/run_front.py", kind, str(port)]
        # The aiohttp fronts run from the runtime of before the switch, the rest from this one.
        runtime = "old-runtime" if kind.startswith("aiohttp") else "runtime"
        running.container.exec_run(argv, detach=True, environment={
            "PYTHONPATH": f"{MOUNT}/data/{runtime}:{MOUNT}/site", **env})
    deadline = time.monotonic() + 30
    for kind in candidates:
        if kind == "front":
            continue
        probe = ["python", "-c", "import urllib.request as u; u.urlopen("
                 f"'http://127.0.0.1:{ports[kind]}/ping', timeout=2)"]
        while running.container.exec_run(probe)[0] != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"candidate {kind} did not start")
            time.sleep(0.3)


def measure_setup(setup: front_rows.Setup, args, data: Path) -> list[dict]:
    volumes = {str(ROOT / "bench"): {"bind": f"{MOUNT}/bench", "mode": "ro"},
               str(data): {"bind": f"{MOUNT}/data", "mode": "ro"}}
    if args.site:
        volumes[str(Path(args.site).resolve())] = {"bind": f"{MOUNT}/site", "mode": "ro"}
    # The Go floor passes bodies through unchanged: only for rows whose body the server
    # takes as it is.
    candidates = [c for c in args.candidates
                  if c != "go" or ((data / "goproxy").exists() and setup.upstream_url)]
    key = setup.image or setup.server
    image = args.image.get(key) or IMAGES[key]
    running = launcher.run(image, env=setup.env, volumes=volumes, name_hint="byoc-bench")
    rows = []
    try:
        running.wait_ready()
        start_candidates(running, candidates, setup.upstream_url, setup.env)
        targets = [Target("native", setup.native_port, setup.native_path, setup.native_body,
                          setup.native_type)]
        for kind in candidates:
            port = 8080 if kind == "front" else CANDIDATE_PORTS[kind]
            targets.append(Target(kind, port, "/invocations", setup.body, setup.content_type,
                                  proc=None if kind == "front" else str(port)))
        procs = ContainerProcs(running.container)
        for rnd in range(1, args.rounds + 1):
            for concurrency in args.concurrency:
                for target in targets:
                    result = run_cell(running, target, concurrency, args, procs)
                    result.update(server=setup.server, path=setup.label, target=target.name,
                                  round=rnd, image=image)
                    rows.append(result)
                    print(front_rows.line(result), flush=True)
    finally:
        running.remove()
    return rows


def extract_runtimes(data: Path, old: str) -> None:
    """This checkout's images/runtime, and the one at commit `old` (the aiohttp front)."""
    shutil.copytree(ROOT / "images" / "runtime", data / "runtime")
    (data / "old-runtime").mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", old, "images/runtime"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "--strip-components=2", "-C", str(data / "old-runtime")],
                   input=archive, check=True)


def build_go(data: Path) -> None:
    if not shutil.which("go"):
        print("(go not on PATH: the Go floor is left out)")
        return
    subprocess.run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(data / "goproxy"),
                    str(ROOT / "bench" / "front_candidates" / "goproxy.go")], check=True,
                   env={**os.environ, "CGO_ENABLED": "0", "GOCACHE": str(data / "gocache")})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="torchserve,triton")
    parser.add_argument("--paths", default="", help="row labels to run (default: all)")
    parser.add_argument("--candidates", default="front",
                        help="front (serve's own), aiohttp, aiohttp-uvloop, fast, go")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--image", action="append", default=[], help="SERVER=IMAGE")
    parser.add_argument("--heavy", type=Path, default=None,
                        help="the heavy model's folder (bench/heavy_model.py make_model): its "
                        "rows too, on the images IMAGES names (or --image SERVER-heavy=...)")
    parser.add_argument("--site", default="", help="a folder of wheels' packages for the "
                        "candidates and the client (uvloop, httptools), mounted on PYTHONPATH")
    parser.add_argument("--old-runtime", default=OLD_RUNTIME,
                        help="the commit whose images/runtime the aiohttp candidates run")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    args.candidates = args.candidates.split(",")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.image = dict(item.split("=", 1) for item in args.image)
    facts = machine_facts()
    print(json.dumps(facts))
    rows = []
    with tempfile.TemporaryDirectory(prefix="byoc-front-bench-") as tmp:
        data = Path(tmp)
        os.chmod(data, 0o755)
        front_rows.write_bodies(data, args.heavy)
        extract_runtimes(data, args.old_runtime)
        if "go" in args.candidates:
            build_go(data)
        for setup in front_rows.setups(args.servers.split(","), heavy=args.heavy is not None):
            if args.paths and setup.label not in args.paths.split(","):
                continue
            rows += measure_setup(setup, args, data)
    summary = front_rows.summarise(rows)
    print("\n" + summary)
    if args.out:
        Path(args.out).write_text(json.dumps({"facts": facts, "facts_after": machine_facts(),
                                              "argv": sys.argv, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
