"""`build.py compare` end to end on a model that is not the example: a tiny transformer text
classifier (random weights) with a TorchServe handler in the shape of TorchServe's examples,
archived with the real torch-model-archiver here, and its own Triton repository, so all
three servers run: TorchServe, Triton hosting the same .mar, Triton's own backend.

Kept short (two steps of at most 2 s or 100 requests per server). Checks that every column
is filled and the three files are written, not the numbers (they depend on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVERS = ["torchserve", "triton-mar", "triton"]
TAGS = {s: f"byoc-test/compare-{s}:tiny" for s in SERVERS}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import heavy_model
    finally:
        sys.path.remove(str(REPO / "bench"))
    return heavy_model.make_model(tmp_path_factory.mktemp("tiny") / "model", "tiny",
                                  samples=4)


@pytest.fixture(scope="module")
def compared(tiny_model, tmp_path_factory):
    """One short run for the whole module, through the CLI exactly as a user runs it."""
    out = tmp_path_factory.mktemp("compare")
    images = [arg for s in SERVERS for arg in (f"--{s}-image", TAGS[s])]
    result = subprocess.run(
        [sys.executable, str(REPO / "build.py"), "compare", "--model", str(tiny_model),
         *images, "--concurrency", "1,4", "--duration", "2", "--max-requests", "100",
         "--warmup", "5", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
        timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result, json.loads((out / "compare.json").read_text())


def tables(markdown: str, heading: str) -> list[list[list[str]]]:
    section = markdown.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    found, current = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip("|").split("|")])
        elif current:
            found.append(current[2:])
            current = []
    return found


def test_writes_markdown_json_and_png(compared):
    out, result, _ = compared
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "compare.md").read_text()
    assert markdown in result.stdout  # printed as well as written
    assert markdown.startswith("## text_classifier: TorchServe vs Triton (.mar) vs Triton "
                               "(repository), CPU")


def test_every_column_of_every_table_is_filled(compared):
    out, _, _ = compared
    markdown = (out / "compare.md").read_text()
    for heading in ("Model", "Images", "Load", "In-process baseline: the model's own cost",
                    "Summary"):
        for table in tables(markdown, heading):
            assert table, heading
            for row in table:
                assert all(cell and cell != "n/a" for cell in row), (heading, row)
    assert len(tables(markdown, "Load")[0]) == 6  # three servers, two steps each


def test_every_server_is_measured(compared):
    _, _, doc = compared
    assert [s["server"] for s in doc["servers"]] == SERVERS
    assert doc["model"]["kinds"] == {"torchserve": "mar", "triton-mar": "torchserve-host",
                                     "triton": "repository"}
    assert {m["content_type"] for m in doc["model"]["mix"]} == {"text/plain",
                                                                 "application/json"}
    for server in doc["servers"]:
        assert server["image"] == TAGS[server["server"]]
        assert server["size"]["uncompressed_bytes"] > server["size"]["compressed_bytes"] > 0
        assert 0 < server["first_answer_s"] < 240 and server["settings_line"]
        assert [st["concurrency"] for st in server["steps"]] == [1, 4]
        for step in server["steps"]:
            assert step["errors"] == 0, step["error_kinds"]
            assert 0 < step["ok"] <= 100 and len(step["latency_us"]) == step["ok"]
            assert step["connections_opened"] <= step["concurrency"]
            for key in ("throughput_rps", "p50_ms", "p90_ms", "p99_ms", "server_cpu_cores",
                        "server_mem_mib", "client_cores", "machine_cpu_cores",
                        "docker_cpu_cores"):
                assert step[key] is not None and step[key] >= 0, key
    ts, hosted, native = (s["settings"] for s in doc["servers"])
    assert (ts["workers"], ts["batch_size"]) == (1, 1)
    assert hosted["text_classifier"]["instances"] == 1
    assert native["text_classifier"]["backend"] == "python"


def test_baseline_ratios_and_overheads(compared):
    _, _, doc = compared
    baseline = doc["baseline"]
    assert baseline["measured"] and baseline["wrong_answers"] == {}
    assert baseline["same_archive_in_images"] is True and baseline["archive_differences"] == []
    assert baseline["request"]["p50_us"] > 0 and [b["batch"] for b in baseline["batches"]] \
        == [1, 4]
    summary = doc["summary"]
    assert {s: set(r) for s, r in summary["throughput_ratio_over_torchserve"].items()} == \
        {"triton-mar": {"1", "4"}, "triton": {"1", "4"}}
    assert {s: set(o) for s, o in summary["p50_overhead"].items()} == \
        {s: {"1", "4"} for s in SERVERS}
