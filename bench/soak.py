"""Soak: 32 clients for 10 minutes on each flavor; errors and memory growth after warm-up.

    .venv/bin/python bench/soak.py                                   # the real run (~22 min)
    .venv/bin/python bench/soak.py --duration 20 --warmup 5 --clients 4   # a smoke run
    .venv/bin/python bench/soak.py --benchmarks BENCHMARKS.md        # also write the table

Each flavor's image runs as SageMaker runs it (byoc.launcher: serve, 64 MB /dev/shm, port
on 127.0.0.1). The clients are byoc.loadgen's closed loop on one event loop; the bodies are
the image's samples (every content type the model takes), each answer checked against its
sample's expected JSON. Requests are bounded by --duration and --max-requests.

Memory is the container's resident memory from its cgroup (v1 memory.stat total_rss, v2
memory.stat anon), sampled every --sample-s seconds. Growth is the mean of the last minute
(or last sixth, for shorter runs) over the first sample after warm-up: goal under 5 %.
Errors are every answer that is not a correct 200 (status, wrong body, timeout, broken
connection): goal 0. Results go to build/soak/soak.json and, as a Markdown table, to stdout
(and into BENCHMARKS.md between its soak markers with --benchmarks)."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from byoc import launcher, loadgen  # noqa: E402
from byoc.model import samples as model_samples  # noqa: E402

IMAGES = {"torchserve": "byoc-torchserve:0.1.0-cpu", "triton": "byoc-triton:0.1.0-cpu"}
SAMPLES = ROOT / "images" / "samples" / "digits"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"


def rss_bytes(container_id: str) -> int:
    """Resident (anonymous) memory of the container's cgroup, without page cache."""
    for path, key in ((Path("/sys/fs/cgroup/memory/docker") / container_id / "memory.stat",
                       "total_rss"),
                      (Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope")
                       / "memory.stat", "anon"),
                      (Path("/sys/fs/cgroup/docker") / container_id / "memory.stat", "anon")):
        if path.exists():
            fields = path.read_text().split()
            return int(dict(zip(fields[::2], fields[1::2], strict=False))[key])
    raise SystemExit(f"no memory cgroup for container {container_id[:12]}: run on the "
                     "Docker host")


class Sampler(threading.Thread):
    def __init__(self, container_id: str, every_s: float):
        super().__init__(daemon=True)
        self.container_id, self.every_s = container_id, every_s
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stopped.is_set():
            self.samples.append((time.monotonic() - t0, rss_bytes(self.container_id)))
            self.stopped.wait(self.every_s)


def payloads() -> list[loadgen.Payload]:
    found = [s for s in model_samples.load(SAMPLES) if s.status == 200]
    return [loadgen.Payload(s.content_type, s.body, expected=s,
                            headers=tuple((("Accept", s.accept),) if s.accept else ()))
            for s in found]


def correct(payload: loadgen.Payload, status: int, body: bytes) -> str | None:
    problem = model_samples.mismatch(payload.expected, status, body)
    return None if problem is None else (f"status {status}" if status != 200
                                         else "wrong answer")


def soak(flavor: str, image: str, args) -> dict:
    print(f"soak {flavor}: {image}, {args.clients} clients, {args.warmup:.0f} s warm-up, "
          f"{args.duration:.0f} s measured", file=sys.stderr)
    with launcher.launched(image, name_hint="byoc-soak") as running:
        ready = running.wait_ready()
        bodies = payloads()
        asyncio.run(loadgen.run_step_async(
            f"{running.url}/invocations", bodies, concurrency=args.clients,
            duration_s=args.warmup, max_requests=args.max_requests, check=correct))
        sampler = Sampler(running.container.id, args.sample_s)
        sampler.start()
        step = asyncio.run(loadgen.run_step_async(
            f"{running.url}/invocations", bodies, concurrency=args.clients,
            duration_s=args.duration, max_requests=args.max_requests, check=correct))
        sampler.stopped.set()
        sampler.join()
        still = running.status()
    rss = [value for _, value in sampler.samples]
    tail = rss[-max(1, min(len(rss) // 6, int(60 / args.sample_s))):]
    first = rss[0]
    growth = (statistics.mean(tail) - first) / first * 100 if first else float("nan")
    summary = step.summary()
    return {"flavor": flavor, "image": image, "ready_s": round(ready, 2),
            "clients": args.clients, "duration_s": args.duration, "warmup_s": args.warmup,
            "requests": summary["started"], "ok": summary["ok"], "errors": summary["errors"],
            "error_kinds": summary["error_kinds"], "throughput_rps": summary["throughput_rps"],
            "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"],
            "rss_after_warmup_mib": round(first / 2**20, 1),
            "rss_end_mib": round(statistics.mean(tail) / 2**20, 1),
            "rss_peak_mib": round(max(rss) / 2**20, 1), "rss_growth_pct": round(growth, 2),
            "rss_samples": len(rss), "container_after": still,
            "stopped_by": summary["stopped_by"]}


def table(results: list[dict]) -> str:
    rows = ["| flavor | clients | measured | requests | errors | req/s | p50 / p99 ms | "
            "RSS after warm-up | RSS end (peak) | growth |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        kinds = f" ({', '.join(f'{k}: {v}' for k, v in r['error_kinds'].items())})" \
            if r["errors"] else ""
        rows.append(f"| {r['flavor']} | {r['clients']} | {r['duration_s']:.0f} s | "
                    f"{r['requests']} | {r['errors']}{kinds} | {r['throughput_rps']:.0f} | "
                    f"{r['p50_ms']} / {r['p99_ms']} | {r['rss_after_warmup_mib']} MiB | "
                    f"{r['rss_end_mib']} MiB ({r['rss_peak_mib']}) | "
                    f"{r['rss_growth_pct']:+.2f} % |")
    return "\n".join(rows)


def write_benchmarks(path: Path, text: str) -> None:
    current = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in current and END in current:
        before, rest = current.split(BEGIN, 1)
        current = before + block + rest.split(END, 1)[1]
    else:
        current = current.rstrip() + "\n\n## Soak (bench/soak.py)\n\n" + block + "\n"
    path.write_text(current)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavors", default="torchserve,triton")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=600.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds, not measured")
    parser.add_argument("--max-requests", type=int, default=5_000_000)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--torchserve-image", default=IMAGES["torchserve"])
    parser.add_argument("--triton-image", default=IMAGES["triton"])
    parser.add_argument("--out", default=str(ROOT / "build" / "soak" / "soak.json"))
    parser.add_argument("--benchmarks", help="write the table into this BENCHMARKS.md")
    args = parser.parse_args(argv)
    args.sample_s = min(args.sample_s, max(1.0, args.duration / 6))
    images = {"torchserve": args.torchserve_image, "triton": args.triton_image}
    results = [soak(flavor, images[flavor], args) for flavor in args.flavors.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    text = table(results)
    print(text)
    if args.benchmarks:
        write_benchmarks(Path(args.benchmarks), text + f"\n\n{time.strftime('%Y-%m-%d')}: "
                         "errors goal 0, RSS growth after warm-up goal under 5 %.")
    failed = [r for r in results if r["errors"] or r["rss_growth_pct"] >= 5
              or r["container_after"] != "running"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
