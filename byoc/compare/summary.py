"""The report's summary, from the measured document: each server's throughput against
TorchServe's at each concurrency (the Triton-hosted .mar and the native repository side
by side), and each server's p50 over the in-process call at each concurrency.

At one client there is no queueing, so p50 less the in-process request is the serving
overhead (HTTP, the front, the server's routing and IPC); with more clients than the
server runs at once, it also holds the time a request waits for its turn."""

from __future__ import annotations

REFERENCE = "torchserve"


def _by_server(doc: dict) -> dict[str, dict[int, dict]]:
    return {s["server"]: {st["concurrency"]: st for st in s["steps"]} for s in doc["servers"]}


def ratios(doc: dict) -> dict[str, dict[str, float]]:
    """server -> {concurrency: its req/s over TorchServe's}, for every other server."""
    by_server = _by_server(doc)
    base = by_server.get(REFERENCE)
    if not base:
        return {}
    out = {}
    for server, steps in by_server.items():
        if server == REFERENCE:
            continue
        out[server] = {str(c): round(steps[c]["throughput_rps"] / base[c]["throughput_rps"], 3)
                       for c in sorted(set(steps) & set(base)) if base[c]["throughput_rps"]}
    return out


def overheads(doc: dict) -> dict[str, dict[str, dict]]:
    """server -> {concurrency: p50, the in-process p50, their difference and ratio}."""
    baseline = doc["baseline"]
    if not baseline.get("measured"):
        return {}
    in_process_ms = baseline["request"]["p50_us"] / 1000
    out = {}
    for server, steps in _by_server(doc).items():
        rows = {}
        for concurrency, step in sorted(steps.items()):
            p50 = step["p50_ms"]
            if p50 is None:
                continue
            rows[str(concurrency)] = {
                "p50_ms": p50, "in_process_p50_ms": round(in_process_ms, 4),
                "overhead_ms": round(p50 - in_process_ms, 3),
                "times_in_process": round(p50 / in_process_ms, 1) if in_process_ms else None}
        out[server] = rows
    return out


def summarize(doc: dict) -> dict:
    return {"throughput_ratio_over_torchserve": ratios(doc), "p50_overhead": overheads(doc)}
