#!/usr/bin/env python3
"""Side by side, the key numbers of several `build.py compare` runs (their compare.json):
the run-to-run spread that BENCHMARKS.md shows.

    .venv/bin/python bench/spread.py build/compare/run1/compare.json build/compare/run2/compare.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NAMES = {"torchserve": "TorchServe", "triton-mar": "Triton (.mar)",
         "triton": "Triton (repository)"}


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    docs = [json.loads(Path(p).read_text()) for p in paths]
    runs = [f"run {i + 1}" for i in range(len(docs))]
    print("| server | clients | " + " | ".join(
        f"{what} ({run})" for what in ("req/s", "p50 ms", "p99 ms", "other CPU")
        for run in runs) + " |")
    print("|---|---:|" + "---:|" * (4 * len(runs)))
    first = docs[0]
    for s_index, server in enumerate(first["servers"]):
        for c_index, step in enumerate(server["steps"]):
            steps = [d["servers"][s_index]["steps"][c_index] for d in docs]
            cells = []
            for key, places in (("throughput_rps", 0), ("p50_ms", 2), ("p99_ms", 2)):
                cells += [f"{st[key]:.{places}f}" if st[key] is not None else "n/a"
                          for st in steps]
            cells += [f"{_other(st):.2f}" for st in steps]
            print(f"| {NAMES.get(server['server'], server['server'])} | "
                  f"{step['concurrency']} | " + " | ".join(cells) + " |")
    print()
    for run, doc in zip(runs, docs, strict=True):
        ratios = "; ".join(
            f"{NAMES.get(s, s)}/TorchServe " + ", ".join(f"{c} clients {r:.2f}"
                                                         for c, r in per.items())
            for s, per in doc["summary"]["throughput_ratio_over_torchserve"].items())
        base = doc["baseline"]
        if base.get("measured"):
            overheads = ", ".join(
                f"{NAMES.get(s, s)} {per[min(per, key=int)]['overhead_ms']:.2f} ms"
                for s, per in doc["summary"]["p50_overhead"].items() if per)
            baseline = (f"p50 overhead at the lowest concurrency over in-process "
                        f"({base['request']['p50_us']:.0f} us): {overheads}")
        else:
            baseline = "in-process baseline not measured"
        colds = ", ".join(f"{NAMES.get(s['server'], s['server'])} {s['first_answer_s']:.1f} s"
                          for s in doc["servers"])
        print(f"- {run} ({doc['date']}): {ratios or 'no TorchServe to compare with'}; "
              f"{baseline}; cold start {colds}")
    return 0


def _other(step: dict) -> float:
    used = sum(step.get(k) or 0.0 for k in ("server_cpu_cores", "client_cores",
                                            "docker_cpu_cores"))
    return max(0.0, (step.get("machine_cpu_cores") or 0.0) - used)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
