"""compare's summary: throughput against TorchServe for every other server, overhead over
the in-process call at every concurrency, nothing where nothing was measured."""

from __future__ import annotations

import pytest

from byoc.compare import summary


def doc(servers: dict, baseline_us: float | None = 500.0) -> dict:
    base = {"measured": False, "note": "not measured: x"} if baseline_us is None else \
        {"measured": True, "request": {"p50_us": baseline_us}}
    return {"baseline": base, "servers": [
        {"server": name, "steps": [{"concurrency": c, "throughput_rps": rps, "p50_ms": p50}
                                   for c, rps, p50 in steps]}
        for name, steps in servers.items()]}


def test_ratios_for_each_server_against_torchserve():
    d = doc({"torchserve": [(1, 100, 2.0), (8, 400, 10.0)],
             "triton-mar": [(1, 90, 2.5), (8, 480, 9.0)],
             "triton": [(1, 120, 1.5)]})
    assert summary.ratios(d) == {"triton-mar": {"1": 0.9, "8": 1.2}, "triton": {"1": 1.2}}
    assert summary.ratios(doc({"triton": [(1, 1, 1.0)]})) == {}


def test_overheads_per_concurrency():
    d = doc({"torchserve": [(1, 100, 2.0), (8, 400, 10.0)]})
    over = summary.overheads(d)["torchserve"]
    assert over["1"] == {"p50_ms": 2.0, "in_process_p50_ms": 0.5, "overhead_ms": 1.5,
                         "times_in_process": 4.0}
    assert over["8"]["overhead_ms"] == pytest.approx(9.5)


def test_no_baseline_no_overheads():
    d = doc({"torchserve": [(1, 100, 2.0)]}, baseline_us=None)
    assert summary.summarize(d)["p50_overhead"] == {}
