"""Where a request's time goes, per server, at 1 client (p50): the client and the kernel, the
front, the hop to the server, the server's HTTP layer, its path to the model, the model.

    .venv/bin/python bench/front_breakdown.py [--servers torchserve,triton] [--requests 2000]
        [--out bench/results/front-breakdown-X.json]

By subtraction of round trips measured back to back in one container (the client inside
it, as in bench/front_overhead.py), each a bounded cell at 1 client:
  server floor   the server's cheapest endpoint (TorchServe /ping, Triton /v2/health/ready):
                 client + kernel + the server's HTTP layer
  native         the inference request to the server's own API
  front /ping    the front's cached /ping: client + kernel + the front's HTTP layer
  through front  the same inference through the front (aiohttp of before, and today's)
and the servers' own tracing for what happens inside: Triton's trace API (level
TIMESTAMPS, every request: per ensemble step, queue and compute) in a second container,
and TorchServe's per-request metrics (queue, backend, handler and prediction times; logged
only at DEBUG, which itself costs time) in a third."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import front_rows  # noqa: E402
from bench.front_overhead import (  # noqa: E402
    IMAGES,
    MOUNT,
    OLD_RUNTIME,
    Target,
    extract_runtimes,
    run_cell,
    start_candidates,
)
from bench.front_procs import ContainerProcs, machine_facts  # noqa: E402
from byoc import launcher  # noqa: E402

CLASSIFIER = {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "digits_classifier"}
TRACE = ("--trace-config=triton,file=/tmp/trace.json --trace-config=level=TIMESTAMPS "
         "--trace-config=rate=1 --trace-config=count=-1 --trace-config=triton,log-frequency=100")


def _targets(server: str) -> list[tuple[str, Target]]:
    """(row, target) cells; candidate fronts on 9001+ start beside serve's own (8080)."""
    if server == "torchserve":
        body = "instances.json"
        return [("server floor", Target("native", 8081, "/ping", "", method="GET")),
                ("native", Target("native", 8081, "/predictions/digits", body)),
                ("front /ping (aiohttp)", Target("aiohttp", 9001, "/ping", "", proc="9001",
                                                 method="GET")),
                ("front /ping (fast)", Target("front", 8080, "/ping", "", method="GET")),
                ("through front (aiohttp)", Target("aiohttp", 9001, "/invocations", body,
                                                   proc="9001")),
                ("through front (fast)", Target("front", 8080, "/invocations", body))]
    v2, raw = "v2_classifier.json", "instances.json"
    return [("server floor", Target("native", 8081, "/v2/health/ready", "", method="GET")),
            ("native classifier v2", Target("native", 8081, "/v2/models/digits_classifier/infer",
                                            v2)),
            ("native ensemble v2", Target("native", 8081, "/v2/models/digits/infer",
                                          "v2_payload.json")),
            ("front /ping (aiohttp)", Target("aiohttp", 9001, "/ping", "", proc="9001",
                                             method="GET")),
            ("front /ping (fast)", Target("front", 8080, "/ping", "", method="GET")),
            ("classifier through front (aiohttp)", Target("aiohttp", 9001, "/invocations", v2,
                                                          proc="9001")),
            ("classifier through front (fast)", Target("fast", 9004, "/invocations", v2,
                                                       proc="9004")),
            ("ensemble raw through front (aiohttp)", Target("aiohttp", 9005, "/invocations",
                                                            raw, proc="9005")),
            ("ensemble raw through front (fast)", Target("front", 8080, "/invocations", raw))]


def _volumes(data: Path) -> dict:
    return {str(ROOT / "bench"): {"bind": f"{MOUNT}/bench", "mode": "ro"},
            str(data): {"bind": f"{MOUNT}/data", "mode": "ro"}}


def round_trips(server: str, args, data: Path) -> list[dict]:
    running = launcher.run(args.image.get(server, IMAGES[server]), volumes=_volumes(data),
                           name_hint="byoc-bench")
    rows = []
    try:
        running.wait_ready()
        env = CLASSIFIER if server == "triton" else {}
        start_candidates(running, ["aiohttp"], "", env, ports={"aiohttp": 9001})
        if server == "triton":
            start_candidates(running, ["fast"], "", env, ports={"fast": 9004})
            start_candidates(running, ["aiohttp"], "", {}, ports={"aiohttp": 9005})
        procs = ContainerProcs(running.container)
        for rnd in range(1, args.rounds + 1):
            for row, target in _targets(server):
                result = run_cell(running, target, 1, args, procs)
                result.update(server=server, row=row, round=rnd)
                rows.append(result)
                print(f"{server:<10} round {rnd} {row:<38} p50 {result['p50_ms']:6.3f} ms  "
                      f"p90 {result['p90_ms']:6.3f}  "
                      f"front cpu/req {result['front_us_per_req']:6.1f} us  "
                      f"server cpu/req {result['server_us_per_req']:7.1f} us  "
                      f"other cores {result['other_cores']:.2f}  {result['statuses']}", flush=True)
    finally:
        running.remove()
    return rows


def triton_trace(args, data: Path) -> dict:
    """Triton's own timestamps for the ensemble (native v2 and raw through the front)."""
    env = {"SAGEMAKER_TRITON_ADDITIONAL_ARGS": TRACE}
    running = launcher.run(args.image.get("triton", IMAGES["triton"]), env=env,
                           volumes=_volumes(data), name_hint="byoc-bench")
    out = {}
    try:
        running.wait_ready()
        procs = ContainerProcs(running.container)
        for row, target in (("native ensemble v2", Target("native", 8081,
                                                          "/v2/models/digits/infer",
                                                          "v2_payload.json")),
                            ("ensemble raw through front", Target("front", 8080, "/invocations",
                                                                  "instances.json"))):
            run_cell(running, target, 1, args, procs)
            # Triton writes every 100 traces to /tmp/trace.json.N (log-frequency).
            code, names = running.container.exec_run(["sh", "-c", "ls /tmp/trace.json.*"])
            entries = []
            for name in names.decode().split() if code == 0 else []:
                raw = running.container.exec_run(["cat", name])[1]
                entries += json.loads(raw) if raw.strip() else []
            running.container.exec_run(["sh", "-c", "rm -f /tmp/trace.json.*"])
            out[row] = summarise_trace(entries)
            print(f"triton trace {row}: {json.dumps(out[row])}", flush=True)
    finally:
        running.remove()
    return out


def summarise_trace(entries: list[dict]) -> dict:
    """p50 (us) of each part of a traced request: Triton's HTTP handling around the
    ensemble, and per step its queue (incl. the dynamic batcher's delay) and compute (the
    Python backend: IPC with its stub and the model's execute)."""
    traces = defaultdict(dict)
    for entry in entries:
        t = traces[entry["id"]]
        for key in ("model_name", "parent_id"):
            if key in entry:
                t[key] = entry[key]
        for stamp in entry.get("timestamps", []):
            t.setdefault("ts", {})[stamp["name"]] = int(stamp["ns"])
    parts = defaultdict(list)
    children = defaultdict(list)
    for t in traces.values():
        if t.get("parent_id"):
            children[t["parent_id"]].append(t)
    for tid, t in traces.items():
        ts = t.get("ts", {})
        if t.get("parent_id") or "HTTP_RECV_START" not in ts or "HTTP_SEND_END" not in ts:
            continue
        parts["http recv (start to end)"].append(ts["HTTP_RECV_END"] - ts["HTTP_RECV_START"])
        parts["in Triton (http recv start to send end)"].append(
            ts["HTTP_SEND_END"] - ts["HTTP_RECV_START"])
        parts["request (start to end)"].append(ts["REQUEST_END"] - ts["REQUEST_START"])
        steps = sorted(children.get(tid, []), key=lambda c: c["ts"].get("REQUEST_START", 0))
        busy = 0
        for step in steps:
            s = step.get("ts", {})
            if {"QUEUE_START", "COMPUTE_START", "COMPUTE_END"} <= s.keys():
                name = step.get("model_name", "?")
                parts[f"{name} queue"].append(s["COMPUTE_START"] - s["QUEUE_START"])
                parts[f"{name} compute"].append(s["COMPUTE_END"] - s["COMPUTE_START"])
                busy += s["REQUEST_END"] - s["REQUEST_START"]
        if steps:
            parts["ensemble between steps"].append(
                (ts["REQUEST_END"] - ts["REQUEST_START"]) - busy)
    return {k: round(statistics.median(v) / 1000, 1) for k, v in parts.items()} | {
        "traced requests": len(parts.get("request (start to end)", []))}


def torchserve_metrics(args, data: Path) -> dict:
    """TorchServe's own per-request numbers (logged at DEBUG only), native, 1 client."""
    running = launcher.run(args.image.get("torchserve", IMAGES["torchserve"]),
                           env={"BYOC_LOG_LEVEL": "DEBUG"},
                           volumes=_volumes(data), name_hint="byoc-bench")
    try:
        running.wait_ready()
        procs = ContainerProcs(running.container)
        cell = run_cell(running, Target("native", 8081, "/predictions/digits", "instances.json"),
                        1, args, procs)
        logs = running.logs()
    finally:
        running.remove()
    found = defaultdict(list)
    for line in logs.splitlines():
        for key, scale in (("ts_inference_latency_microseconds.Microseconds:", 1),
                           ("ts_queue_latency_microseconds.Microseconds:", 1),
                           ("MODEL_METRICS - HandlerTime.ms:", 1000),
                           ("MODEL_METRICS - PredictionTime.ms:", 1000)):
            if key in line:
                found[key.split(".")[0].split(" - ")[-1]].append(
                    float(line.split(key, 1)[1].split("|", 1)[0]) * scale)
        if "Backend time ns:" in line:
            found["backend (worker round trip)"].append(
                int(line.rsplit("Backend time ns:", 1)[1]) / 1000)
    out = {k: round(statistics.median(v), 1) for k, v in found.items() if v}
    out["client p50 us (DEBUG logging on)"] = round(cell["p50_ms"] * 1000, 1)
    print(f"torchserve metrics: {json.dumps(out)}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="torchserve,triton")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--old-runtime", default=OLD_RUNTIME)
    parser.add_argument("--image", action="append", default=[], help="SERVER=IMAGE")
    parser.add_argument("--traces-only", action="store_true", help="only the servers' tracing")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    args.image = dict(item.split("=", 1) for item in args.image)
    servers = args.servers.split(",")
    facts = machine_facts()
    print(json.dumps(facts))
    result = {"facts": facts, "argv": sys.argv, "rows": [], "traces": {}}
    with tempfile.TemporaryDirectory(prefix="byoc-front-breakdown-") as tmp:
        data = Path(tmp)
        data.chmod(0o755)
        front_rows.write_bodies(data)
        extract_runtimes(data, args.old_runtime)
        for server in servers if not args.traces_only else ():
            result["rows"] += round_trips(server, args, data)
        if "triton" in servers:
            result["traces"]["triton"] = triton_trace(args, data)
        if "torchserve" in servers:
            result["traces"]["torchserve"] = torchserve_metrics(args, data)
    result["facts_after"] = machine_facts()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
