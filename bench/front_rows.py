"""The rows of bench/front_overhead.py: which container, which request natively and through
the front, the bodies, and the tables made of the results."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGIT = 3  # images/samples/digits.json: the same digit in every request


@dataclasses.dataclass(frozen=True)
class Setup:
    server: str
    label: str  # the row's name
    env: dict  # the container's (and the candidate fronts') environment
    native_port: int
    native_path: str
    native_body: str
    body: str  # what goes through the front
    native_type: str = "application/json"
    content_type: str = "application/json"
    upstream_url: str = ""  # where the Go floor sends every body (v2 rows only)
    image: str = ""  # the IMAGES key (default: the server's)


HEAVY = "text_classifier"  # bench/heavy_model.py's model (milliseconds of its own per request)


def setups(servers: list[str], heavy: bool = False) -> list[Setup]:
    rows = []
    if heavy and "torchserve" in servers:
        rows.append(Setup("torchserve", "torchserve heavy text", {}, 8081,
                          f"/predictions/{HEAVY}", "heavy.txt", "heavy.txt",
                          native_type="text/plain", content_type="text/plain",
                          image="torchserve-heavy"))
    if heavy and "triton" in servers:
        rows.append(Setup("triton", "triton heavy text", {}, 8081, f"/v2/models/{HEAVY}/infer",
                          "v2_heavy.json", "heavy.txt", content_type="text/plain",
                          image="triton-heavy"))
    if "torchserve" in servers:
        rows.append(Setup("torchserve", "torchserve instances JSON", {}, 8081,
                          "/predictions/digits", "instances.json", "instances.json",
                          upstream_url="http://127.0.0.1:8081/predictions/digits"))
    if "triton" in servers:
        classifier = "/v2/models/digits_classifier/infer"
        rows.append(Setup("triton", "triton v2 JSON classifier",
                          {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "digits_classifier"}, 8081,
                          classifier, "v2_classifier.json", "v2_classifier.json",
                          upstream_url=f"http://127.0.0.1:8081{classifier}"))
        rows.append(Setup("triton", "triton raw body ensemble", {}, 8081,
                          "/v2/models/digits/infer", "v2_payload.json", "instances.json"))
    return rows


def write_bodies(folder: Path, heavy_model: Path | None = None) -> None:
    pixels = json.loads((ROOT / "images" / "samples" / "digits.json").read_text())[
        "samples"][DIGIT]["pixels"]
    instances = json.dumps({"instances": [pixels]})
    bodies = {
        "instances.json": instances,
        "v2_classifier.json": json.dumps({"inputs": [{"name": "INSTANCES", "shape": [1, 64],
                                                      "datatype": "FP32", "data": pixels}]}),
        # The same bytes the front sends the ensemble for instances.json, as KServe v2 JSON.
        "v2_payload.json": json.dumps({"inputs": [
            {"name": "PAYLOAD", "shape": [1], "datatype": "BYTES", "data": [instances]},
            {"name": "CONTENT_TYPE", "shape": [1], "datatype": "BYTES",
             "data": ["application/json"]}]}),
    }
    if heavy_model is not None:  # the heavy model's first text sample, raw and as KServe v2
        text = (heavy_model / "samples" / "review-0.txt").read_text()
        bodies["heavy.txt"] = text
        bodies["v2_heavy.json"] = json.dumps({"inputs": [
            {"name": "PAYLOAD", "shape": [1], "datatype": "BYTES", "data": [text]},
            {"name": "CONTENT_TYPE", "shape": [1], "datatype": "BYTES", "data": ["text/plain"]}]})
    for name, text in bodies.items():
        (folder / name).write_text(text)


def line(r: dict) -> str:
    return (f"{r['path']:<28} round {r['round']} c={r['concurrency']:<2} {r['target']:<15} "
            f"{r['rps']:>7.0f} req/s  p50 {r['p50_ms']:6.2f}  p99 {r['p99_ms']:6.2f} ms  "
            f"cpu/req us: client {r['client_us_per_req']:6.1f} front {r['front_us_per_req']:6.1f}"
            f" server {r['server_us_per_req']:6.1f}  other cores {r['other_cores']:.2f}  "
            f"statuses {r['statuses']}")


def summarise(rows: list[dict]) -> str:
    """Per row and round: each front's throughput over native at the highest concurrency,
    and its p50 minus native's at the lowest."""
    by = defaultdict(dict)
    for r in rows:
        by[(r["path"], r["round"])][(r["target"], r["concurrency"])] = r
    out = ["| row | round | target | req/s at 8 | ratio to native | p50 at 1 ms | "
           "front share of p50 ms | front CPU us/req (8) | other cores |",
           "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (path, rnd), cells in sorted(by.items()):
        levels = sorted({c for _, c in cells})
        low, high = levels[0], levels[-1]
        native_hi, native_lo = cells.get(("native", high)), cells.get(("native", low))
        for target in dict.fromkeys(t for t, _ in cells):
            hi, lo = cells.get((target, high)), cells.get((target, low))
            if not hi or not lo or not native_hi or not native_lo:
                continue
            ratio = hi["rps"] / native_hi["rps"] if native_hi["rps"] else 0.0
            share = lo["p50_ms"] - native_lo["p50_ms"]
            other = max(hi["other_cores"], lo["other_cores"])
            out.append(f"| {path} | {rnd} | {target} | {hi['rps']:.0f} | {ratio:.2f} | "
                       f"{lo['p50_ms']:.2f} | {share:+.2f} | {hi['front_us_per_req']:.0f} | "
                       f"{other:.2f} |")
    return "\n".join(out)
