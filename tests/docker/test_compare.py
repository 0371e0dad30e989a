"""`build.py compare` end to end against the real images, kept very short: two load steps
of at most 2 s or 300 requests per server. Checks that every column is filled and the three
files are written, not the numbers themselves (they depend on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compared(torchserve_image, triton_image, tmp_path_factory):
    """One short run for the whole module, through the CLI exactly as a user runs it."""
    out = tmp_path_factory.mktemp("compare")
    result = subprocess.run(
        [sys.executable, str(REPO / "build.py"), "compare", "--no-build",
         "--torchserve-image", torchserve_image, "--triton-image", triton_image,
         "--concurrency", "1,4", "--duration", "2", "--max-requests", "300", "--warmup", "10",
         "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_writes_markdown_json_and_png(compared):
    out, result = compared
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "compare.md").read_text()
    assert markdown in result.stdout  # printed as well as written
    assert "closed loop" in markdown and "### Summary" in markdown


def test_every_column_is_filled(compared):
    out, _ = compared
    doc = json.loads((out / "compare.json").read_text())
    assert [s["flavor"] for s in doc["servers"]] == ["torchserve", "triton"]
    for server in doc["servers"]:
        assert server["size"]["uncompressed_bytes"] > server["size"]["compressed_bytes"] > 0
        assert 0 < server["first_answer_s"] < 240
        assert server["settings_line"]
        assert [st["concurrency"] for st in server["steps"]] == [1, 4]
        for step in server["steps"]:
            assert step["errors"] == 0, step["error_kinds"]
            assert 0 < step["ok"] <= 300 and len(step["latency_us"]) == step["ok"]
            assert step["connections_opened"] <= step["concurrency"]
            for key in ("throughput_rps", "p50_ms", "p90_ms", "p99_ms", "server_cpu_cores",
                        "server_mem_mib", "client_cores", "machine_cpu_cores",
                        "docker_cpu_cores"):
                assert step[key] is not None and step[key] >= 0, key
            assert step["server_mem_mib"] > 0 and step["p50_ms"] <= step["p99_ms"]
    load_rows = [line for line in (out / "compare.md").read_text().split("### Load")[1]
                 .split("###")[0].splitlines() if line.startswith("| ")][1:]
    assert len(load_rows) == 4
    for row in load_rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(cells) and "n/a" not in cells, row


def test_summary_has_the_ratio_and_overheads(compared):
    out, _ = compared
    doc = json.loads((out / "compare.json").read_text())
    summary = doc["summary"]
    assert set(summary["throughput_ratio_triton_over_torchserve"]) == {"1", "4"}
    for flavor in ("torchserve", "triton"):
        overhead = summary["p50_overhead"][flavor]
        assert overhead["concurrency"] == 1 and overhead["overhead_ms"] > 0
    baseline = doc["baseline"]
    assert baseline["same_weights_in_both_images"]
    assert baseline["request"]["p50_us"] > 0
    assert [m["batch"] for m in baseline["model"]] == [1, 4]
