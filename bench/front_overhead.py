"""What the front costs: Triton with its own SageMaker endpoint (BYOC_TRITON_FRONT=off)
against the same requests through byoc's front, at concurrency 1 and 8.

    .venv/bin/python bench/front_overhead.py [--image byoc-triton:0.1.0-cpu] [--duration 8]

Rows: the same KServe v2 JSON request native and through the front (the front's pure
cost: one more loopback hop and an aiohttp proxy), and the example model's own JSON
through the front (what SageMaker clients send; it also runs the preprocess model on
the raw body). Closed loop, keep-alive, bounded by --duration and --max-requests;
client and server share the machine's cores."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from byoc import launcher, loadgen, samples  # noqa: E402
from byoc.verify import kserve_payload_request  # noqa: E402


def measure(image: str, env: dict, payload: loadgen.Payload, concurrency: int,
            duration: float, max_requests: int) -> loadgen.StepResult:
    with launcher.launched(image, env=env) as running:
        running.wait_ready()
        return loadgen.run_step(f"{running.url}/invocations", [payload],
                                concurrency=concurrency, duration_s=duration,
                                max_requests=max_requests, warmup=50)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="byoc-triton:0.1.0-cpu")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--max-requests", type=int, default=8000)
    args = parser.parse_args()
    sample = samples.digits()[3]
    v2 = loadgen.Payload("application/json", kserve_payload_request(sample))
    ctype, body = samples.request_bodies(sample)["json"]
    instances = loadgen.Payload(ctype, body)
    rows = [("KServe v2 JSON, native (BYOC_TRITON_FRONT=off)", {"BYOC_TRITON_FRONT": "off"}, v2),
            ("KServe v2 JSON, through the front", {}, v2),
            ('{"instances"} JSON, through the front', {}, instances)]
    print(f"{args.image}; {os.cpu_count()} cores shared by client and server; "
          f"{args.duration:.0f} s or {args.max_requests} requests per cell\n")
    print("| path | concurrency | p50 ms | p99 ms | req/s | errors | client cores |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, env, payload in rows:
        for concurrency in (1, 8):
            r = measure(args.image, env, payload, concurrency, args.duration, args.max_requests)
            print(f"| {name} | {concurrency} | {r.percentile_ms(50):.2f} | "
                  f"{r.percentile_ms(99):.2f} | {r.throughput:.0f} | {r.errors} | "
                  f"{r.client_cores:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
