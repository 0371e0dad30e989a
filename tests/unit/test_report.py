"""The compare report (byoc.report), on a made-up measurement of three servers: no Docker,
no servers. The summary numbers come from byoc.compare.summary, as in a real run."""

from __future__ import annotations

import json

import pytest

from byoc import report
from byoc.compare import summary

SERVERS = ("torchserve", "triton-mar", "triton")


def step(concurrency: int, rps: float, p50: float, *, errors: int = 0, client: float = 0.2,
         machine: float = 1.2, gpu: bool = False) -> dict:
    out = {"concurrency": concurrency, "started": 100 + errors, "ok": 100, "errors": errors,
           "error_kinds": {"status 500": errors} if errors else {}, "elapsed_s": 100 / rps,
           "throughput_rps": rps, "client_cpu_s": 1.0, "client_cores": client,
           "connections_opened": concurrency, "warmup": 10, "stopped_by": "duration",
           "mean_ms": p50 * 1.1, "p50_ms": p50, "p90_ms": p50 * 2, "p99_ms": p50 * 3,
           "server_cpu_cores": 0.7, "server_mem_mib": 321.5, "machine_cpu_cores": machine,
           "docker_cpu_cores": 0.1, "latency_us": [int(p50 * 1000)] * 5}
    if gpu:
        out.update(gpu_mem_mib=1234.0, gpu_util_pct=40.5)
    return out


def server(name: str, steps: list[dict]) -> dict:
    return {"server": name, "label": report.name(name),
            "flavor": "torchserve" if name == "torchserve" else "triton",
            "image": f"byoc-{name}:0.1.0-cpu", "image_id": "sha256:abc",
            "server_version": f"{name} 1.0", "model_kind": "mar", "settings": {},
            "settings_line": f"{name} settings",
            "size": {"uncompressed_bytes": 1_330_000_000, "compressed_bytes": 430_000_000,
                     "layers": 10, "method": "gzip -6 per layer", "seconds": 1.0},
            "first_answer_s": 4.2, "machine_busy_before_cores": 0.05,
            "stop": {"exit_code": 0, "seconds": 0.3}, "steps": steps}


def baseline(measured: bool = True) -> dict:
    if not measured:
        return {"measured": False, "note": "not measured: no archive"}
    stats = {"n": 1000, "p50_us": 200.0, "p90_us": 250.0, "p99_us": 400.0}
    return {"measured": True, "archive_origin": "the torchserve image (x)",
            "same_archive_in_images": True, "device": "cpu", "torch": "2.13.0", "threads": 2,
            "handler": "text_handler.py", "answers_checked": 6, "wrong_answers": {},
            "request": stats,
            "batches": [{**stats, "batch": 1, "per_row_us": 200.0},
                        {**stats, "batch": 8, "per_row_us": 25.0}],
            "stages": {"preprocess": stats, "inference": stats, "postprocess": stats}}


def make_doc(gpu: bool = False, servers=SERVERS, measured: bool = True, **kw) -> dict:
    speeds = {"torchserve": ((100, 10.0), (200, 40.0)), "triton-mar": ((150, 7.0), (300, 30.0)),
              "triton": ((250, 4.0), (700, 11.0))}
    doc = {
        "schema": 2, "command": "python build.py compare --concurrency 1,8", "seconds": 60,
        "date": "2026-01-01T00:00:00+00:00",
        "machine": {"nproc": 2, "cpu_model": "AMD EPYC", "memory_gib": 23.5,
                    "docker": "20.10.24", "kernel": "6.1", "python": "3.11.2",
                    "client": "aiohttp 3.14"},
        "model": {"name": "text_classifier", "origin": "model.yaml",
                  "kinds": {s: {"torchserve": "mar", "triton-mar": "torchserve-host",
                                "triton": "repository"}[s] for s in servers},
                  "samples_origin": "samples/", "samples": ["a.txt", "b.json", "c.json"],
                  "left_out": [],
                  "mix": [{"content_type": "application/json", "samples": 2, "min_bytes": 600,
                           "max_bytes": 640, "total_bytes": 1240},
                          {"content_type": "text/plain", "samples": 1, "min_bytes": 630,
                           "max_bytes": 630, "total_bytes": 630}]},
        "load": {"model": "closed loop", "concurrency": [1, 8], "duration_s": 10,
                 "max_requests": 20000, "warmup": 100, "timeout_s": 30, "body": "mix",
                 "payloads": [], "gpu": gpu},
        "baseline": baseline(measured),
        "servers": [server(s, [step(c, *speeds[s][i], gpu=gpu, **kw)
                               for i, c in enumerate((1, 8))]) for s in servers],
    }
    doc["summary"] = summary.summarize(doc)
    return doc


def table_rows(markdown: str, heading: str, index: int = 0) -> list[list[str]]:
    section = markdown.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    tables, current = [], []
    for line in section.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in tables[index][2:]]


def test_every_load_column_is_filled():
    text = report.markdown(make_doc())
    rows = table_rows(text, "Load")
    assert len(rows) == 6
    for row in rows:
        assert len(row) == 14 and all(cell and cell != "n/a" for cell in row), row
    assert rows[0][:8] == ["TorchServe", "1", "100", "0", "100", "10.00", "20.00", "30.00"]
    assert [r[0] for r in rows] == ["TorchServe"] * 2 + ["Triton (.mar)"] * 2 + \
        ["Triton (repository)"] * 2
    # other CPU: machine 1.2 - server 0.7 - client 0.2 - docker 0.1
    assert rows[0][12] == "0.20"


def test_model_images_and_baseline_sections():
    text = report.markdown(make_doc())
    assert text.startswith("## text_classifier: TorchServe vs Triton (.mar) vs Triton "
                           "(repository), CPU")
    assert "served as TorchServe: mar, Triton (.mar): torchserve-host, Triton (repository): " \
           "repository" in text
    mix = table_rows(text, "Model")
    assert mix == [["application/json", "2", "600-640", "1,240"],
                   ["text/plain", "1", "630", "630"]]
    images = table_rows(text, "Images")
    assert images[0][:6] == ["TorchServe, torchserve 1.0", "`byoc-torchserve:0.1.0-cpu`",
                             "1.33 GB", "0.43 GB", "4.20 s", "0.05 cores"]
    assert all(all(cell and cell != "n/a" for cell in row) for row in images)
    rows = table_rows(text, "In-process baseline: the model's own cost")
    assert [r[0] for r in rows] == [
        "preprocess (decode), alone", "inference (model), alone",
        "postprocess (encode), alone", "**whole request**, batch 1",
        "whole request, batch 8"]
    assert rows[4][4] == "25.0" and all(all(cell for cell in row) for row in rows)
    assert "2 torch threads" in text and "6 of 6 sample answers correct" in text


def test_summary_ratios_side_by_side_and_overhead_per_concurrency():
    text = report.markdown(make_doc())
    ratios = table_rows(text, "Summary", 0)
    assert ratios == [["1", "100", "150", "250", "1.50", "2.50"],
                      ["8", "200", "300", "700", "1.50", "3.50"]]
    overheads = table_rows(text, "Summary", 1)
    assert len(overheads) == 6
    assert overheads[0] == ["TorchServe", "1", "10.00", "0.200", "9.80", "50.0"]
    assert overheads[1][:2] == ["TorchServe", "8"]
    assert "**9.80 ms of serving overhead**" in text
    assert "`python build.py compare --concurrency 1,8`" in text


def test_summary_numbers():
    s = make_doc()["summary"]
    assert s["throughput_ratio_over_torchserve"] == {"triton-mar": {"1": 1.5, "8": 1.5},
                                                     "triton": {"1": 2.5, "8": 3.5}}
    o = s["p50_overhead"]["triton"]["8"]
    assert o["overhead_ms"] == pytest.approx(10.8) and o["times_in_process"] == 55.0


def test_baseline_not_measured_is_said_never_a_number():
    doc = make_doc(measured=False, servers=("triton",))
    text = report.markdown(doc)
    assert doc["summary"] == {"throughput_ratio_over_torchserve": {}, "p50_overhead": {}}
    assert "Not measured: no archive. The overheads below are therefore not measured" in text
    assert "Overhead over the in-process call: not measured" in text
    assert "in process, p50" not in text


def test_gpu_columns_only_with_gpu():
    assert "GPU mem" not in report.markdown(make_doc())
    rows = table_rows(report.markdown(make_doc(gpu=True)), "Load")
    assert len(rows[0]) == 16 and rows[0][10:12] == ["1,234", "40"]


def test_errors_and_saturation_are_called_out():
    text = report.markdown(make_doc(errors=3, client=0.95, machine=1.9))
    rows = table_rows(text, "Load")
    assert rows[0][3] == "3" and rows[0][2] == "103"
    assert rows[0][-1] == "client, machine CPU"
    assert "- TorchServe errors at 1 clients: status 500: 3" in text
    assert "Other work" not in text  # 1.9 - 0.7 - 0.95 - 0.1: 0.15 cores, no warning
    busy = report.markdown(make_doc(machine=1.9))  # other work: 0.9 cores
    assert "- Other work on the machine used 0.90 to 0.90 cores during the steps" in busy
    assert report.saturation({"client_cores": 0.3, "machine_cpu_cores": 1.0}, 2) == "no"


def test_json_keeps_raw_latencies_on_one_line():
    doc = make_doc()
    text = report.to_json(doc)
    assert json.loads(text) == doc
    assert '"latency_us": [10000,10000,10000,10000,10000]' in text


@pytest.mark.parametrize("measured", [True, False])
def test_write_all_three_files(tmp_path, measured):
    pytest.importorskip("matplotlib")
    written = report.write(make_doc(measured=measured), tmp_path / "out")
    assert [p.name for p in written] == ["compare.md", "compare.json", "compare.png"]
    assert (tmp_path / "out" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_archives_that_differ_are_named():
    doc = make_doc()
    doc["baseline"].update(same_archive_in_images=False,
                           archive_differences=["MAR-INF/MANIFEST.json", "metrics.json"])
    assert "the images' archives differ in MAR-INF/MANIFEST.json, metrics.json, this one " \
           "is timed" in report.markdown(doc)
