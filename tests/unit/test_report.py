"""The compare report (byoc.report) and the pure parts of byoc.compare, on a made-up
measurement: no Docker, no servers."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections import namedtuple

import numpy as np
import pytest

from byoc import cli, compare, report
from byoc.loadgen import Payload


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


def server(flavor: str, steps: list[dict]) -> dict:
    return {"flavor": flavor, "image": f"byoc-{flavor}:0.1.0-cpu", "image_id": "sha256:abc",
            "server": f"{flavor} 1.0", "settings": {}, "settings_line": f"{flavor} settings",
            "size": {"uncompressed_bytes": 1_330_000_000, "compressed_bytes": 430_000_000,
                     "layers": 10, "method": "gzip -6 per layer", "seconds": 1.0},
            "first_answer_s": 4.2, "machine_busy_before_cores": 0.05,
            "stop": {"exit_code": 0, "seconds": 0.3}, "steps": steps}


def make_doc(gpu: bool = False, **step_kwargs) -> dict:
    stats = {"n": 1000, "p50_us": 200.0, "p90_us": 250.0, "p99_us": 400.0}
    doc = {
        "schema": 1, "command": "python build.py compare --concurrency 1,8", "seconds": 60,
        "date": "2026-01-01T00:00:00+00:00",
        "machine": {"nproc": 2, "cpu_model": "AMD EPYC", "memory_gib": 23.5,
                    "docker": "20.10.24", "kernel": "6.1", "python": "3.11.2",
                    "client": "aiohttp 3.14"},
        "load": {"model": "closed loop", "concurrency": [1, 8], "duration_s": 10,
                 "max_requests": 20000, "warmup": 100, "timeout_s": 30, "body": "json",
                 "payloads": [{"content_type": "application/json", "bytes": 400, "label": 0}],
                 "gpu": gpu},
        "baseline": {"device": "cpu", "threads": 1, "torch": "2.13.0", "model_sha256": "x",
                     "decode": stats, "encode": stats, "request": stats,
                     "model": [{**stats, "batch": 1, "per_row_us": 200.0},
                               {**stats, "batch": 8, "per_row_us": 25.0}],
                     "same_weights_in_both_images": True},
        "servers": [server("torchserve", [step(1, 100, 10.0, gpu=gpu, **step_kwargs),
                                          step(8, 200, 40.0, gpu=gpu, **step_kwargs)]),
                    server("triton", [step(1, 250, 4.0, gpu=gpu, **step_kwargs),
                                      step(8, 700, 11.0, gpu=gpu, **step_kwargs)])],
    }
    doc["summary"] = compare.ratio_and_overheads(doc)
    return doc


def table_rows(markdown: str, heading: str) -> list[list[str]]:
    section = markdown.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


# -- the summary numbers ---------------------------------------------------------------------

def test_ratio_and_overheads():
    summary = make_doc()["summary"]
    assert summary["throughput_ratio_triton_over_torchserve"] == {"1": 2.5, "8": 3.5}
    ts = summary["p50_overhead"]["torchserve"]
    assert ts["concurrency"] == 1 and ts["in_process_p50_ms"] == 0.2
    assert ts["overhead_ms"] == pytest.approx(9.8)
    assert ts["times_in_process"] == 50.0
    assert summary["p50_overhead"]["triton"]["overhead_ms"] == pytest.approx(3.8)


# -- the markdown --------------------------------------------------------------------------------

def test_every_load_column_is_filled():
    text = report.markdown(make_doc())
    rows = table_rows(text, "Load")
    assert len(rows) == 4
    for row in rows:
        assert len(row) == 14 and all(cell and cell != "n/a" for cell in row), row
    assert rows[0][:8] == ["TorchServe", "1", "100", "0", "100", "10.00", "20.00", "30.00"]
    # other CPU: machine 1.2 - server 0.7 - client 0.2 - docker 0.1
    assert rows[0][12] == "0.20"


def test_images_baseline_and_summary_sections():
    text = report.markdown(make_doc())
    images = table_rows(text, "Images")
    assert images[0][:6] == ["torchserve 1.0", "`byoc-torchserve:0.1.0-cpu`", "1.33 GB",
                             "0.43 GB", "4.20 s", "0.05 cores"]
    baseline = table_rows(text, "In-process baseline: the model's own cost")
    assert [r[0] for r in baseline] == ["decode (json)", "model, batch 1", "model, batch 8",
                                        "encode",
                                        "**whole request** (decode + model + encode)"]
    summary = table_rows(text, "Summary")
    assert summary == [["1", "100", "250", "2.50"], ["8", "200", "700", "3.50"]]
    assert "**9.80 ms of serving overhead**" in text
    assert "`python build.py compare --concurrency 1,8`" in text
    assert "closed loop" in text


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


# -- the files -------------------------------------------------------------------------------------

def test_json_keeps_raw_latencies_on_one_line(tmp_path):
    doc = make_doc()
    text = report.to_json(doc)
    assert json.loads(text) == doc
    assert '"latency_us": [10000,10000,10000,10000,10000]' in text


def test_write_all_three_files(tmp_path):
    pytest.importorskip("matplotlib")
    written = report.write(make_doc(), tmp_path / "out")
    assert [p.name for p in written] == ["compare.md", "compare.json", "compare.png"]
    assert (tmp_path / "out" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- compare's pure parts ----------------------------------------------------------------------

def test_parser_defaults_and_bounds():
    args = cli.parse(["compare"])
    assert args.concurrency == [1, 8, 32] and args.duration == 10 and args.body == "json"
    assert args.max_requests == 20000 and not args.no_build
    assert cli.parse(["compare", "--concurrency", "32,1,8,8"]).concurrency == [1, 8, 32]
    assert compare.command_line(args) == ("python build.py compare --concurrency 1,8,32 "
                                          "--duration 10 --max-requests 20000 --warmup 100 "
                                          "--body json")
    from byoc.errors import UsageError

    with pytest.raises(UsageError):
        cli.parse(["compare", "--concurrency", "0,8"])
    with pytest.raises(UsageError):
        compare._check_args(cli.parse(["compare", "--duration", "0"]))


def test_payloads_are_the_verify_samples():
    bodies = compare.payloads("json")
    assert len(bodies) == 10 and {p.content_type for p in bodies} == {"application/json"}
    assert sorted(p.expected for p in bodies) == list(range(10))
    mixed = compare.payloads("mix")
    assert len(mixed) == 40 and len({p.content_type for p in mixed}) == 4


def test_check_prediction():
    p = Payload("application/json", b"{}", 7)
    assert compare.check_prediction(p, 200, b'{"predictions":[{"label":7}]}') is None
    assert compare.check_prediction(p, 200, b'{"predictions":[{"label":1}]}') == "wrong answer"
    assert compare.check_prediction(p, 200, b"nope") == "malformed answer"
    assert compare.check_prediction(p, 503, b"") == "status 503"


def test_settings_from_the_image():
    env = {"BYOC_DEFAULT_WORKERS": "2", "BYOC_BATCH_SIZE": "8", "BYOC_MAX_BATCH_DELAY_MS": "3"}
    ts = compare.torchserve_settings(env)
    assert ts == {"workers": 2, "batch_size": 8, "max_batch_delay_ms": 3}
    assert compare.settings_line("torchserve", ts) == \
        "workers 2, batch_size 8, max_batch_delay 3 ms"
    files = {"digits_classifier/config.pbtxt": b"""name: "digits_classifier"
max_batch_size: 32768
dynamic_batching {
  max_queue_delay_microseconds: 1000
}
instance_group [ { count: 2 kind: KIND_CPU } ]""",
             "digits/config.pbtxt": b'platform: "ensemble"\nmax_batch_size: 0\n',
             "digits_classifier/1/digits.pt": b"model"}
    tr = compare.triton_settings(files)
    assert tr["digits_classifier"] == {"max_batch_size": 32768, "max_queue_delay_us": 1000,
                                       "instances": 2, "dynamic_batching": True}
    assert tr["digits"] == {"max_batch_size": 0, "dynamic_batching": False}
    line = compare.settings_line("triton", tr)
    assert "digits_classifier: 2 instance(s), dynamic batching (max 32768 rows, delay 1000 us)" \
        in line


def test_find_torchscript_in_a_file_or_a_mar():
    assert compare.find_torchscript({"m/1/digits.pt": b"pt", "x": b""}) == b"pt"
    mar = io.BytesIO()
    with zipfile.ZipFile(mar, "w") as z:
        z.writestr("digits.pt", b"inside")
        z.writestr("MAR-INF/MANIFEST.json", "{}")
    assert compare.find_torchscript({"digits.mar": mar.getvalue()}) == b"inside"
    assert compare.find_torchscript({"other": b""}) is None


def test_gzip_estimate_exact_when_small_and_close_when_sampled(monkeypatch):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 4, 300_000, dtype=np.uint8).tobytes()
    assert compare.gzip_estimate(io.BytesIO(small), len(small)) == \
        pytest.approx(len(gzip.compress(small, 6)), rel=0.002)
    # A layer of 256 blocks whose compressibility drifts block by block (blocks made small
    # so the test stays fast): 1 in 4 sampled, within 5 % of the real gzip -6 size
    monkeypatch.setattr(compare, "BLOCK", 32 << 10)
    monkeypatch.setattr(compare, "SAMPLE_EXACT_BELOW", 1 << 20)
    big = b"".join(rng.integers(0, 2 + i, 32 << 10, endpoint=False).astype(np.uint8).tobytes()
                   for i in range(256))
    estimate = compare.gzip_estimate(io.BytesIO(big), len(big))
    assert estimate == pytest.approx(len(gzip.compress(big, 6)), rel=0.05)
    assert compare.gzip_estimate(io.BytesIO(big), len(big)) == estimate  # repeatable


def test_container_memory_and_busy_seconds():
    v1 = {"memory_stats": {"usage": 500, "stats": {"total_inactive_file": 100}}}
    v2 = {"memory_stats": {"usage": 500, "stats": {"inactive_file": 200}}}
    assert compare.container_memory(v1) == 400 and compare.container_memory(v2) == 300
    assert compare.container_memory({"memory_stats": {}}) == 0
    Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")
    before = Times(10, 0, 5, 100, 1, 0, 0, 0, 3, 0)
    after = Times(12, 0, 6, 101, 2, 0, 0, 0, 5, 0)
    assert compare.busy_seconds(before, after) == 3  # guest is inside user; iowait is idle


def test_gpu_probe_reads_nvidia_smi_or_says_it_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    probe = compare.GpuProbe()
    probe.start()
    assert probe.stop() == {"mem_mib": None, "util_pct": None,
                            "note": "nvidia-smi unavailable"}
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '1200, 30'\necho '800, 50'\n")
    fake.chmod(0o755)
    probe = compare.GpuProbe()
    probe.start()
    assert probe.stop() == {"mem_mib": 2000.0, "util_pct": 40.0}  # summed memory, mean use


def test_docker_side_probe_finds_proxy_shim_and_daemon(monkeypatch):
    psutil = pytest.importorskip("psutil")
    Cpu = namedtuple("Cpu", "user system")

    class Proc:
        def __init__(self, cmdline, cpu):
            self.info = {"name": cmdline[0].rsplit("/", 1)[-1], "cmdline": cmdline}
            self.cpu = cpu

        def cpu_times(self):
            return Cpu(self.cpu, 0.0)

    procs = [Proc(["/usr/sbin/docker-proxy", "-proto", "tcp", "-host-port", "32800"], 1.0),
             Proc(["/usr/sbin/docker-proxy", "-proto", "tcp", "-host-port", "32999"], 1.0),
             Proc(["/usr/bin/containerd-shim-runc-v2", "-id", "abc123", "-address", "x"], 2.0),
             Proc(["/usr/bin/containerd-shim-runc-v2", "-id", "other", "-address", "x"], 2.0),
             Proc(["/usr/sbin/dockerd", "-H", "unix://"], 3.0),
             Proc(["python", "dockerd-lookalike"], 9.0)]
    monkeypatch.setattr(psutil, "process_iter", lambda attrs=None: iter(procs))
    probe = compare.DockerSideProbe(32800, "abc123")
    assert {k: len(v) for k, v in probe.processes.items()} == {"proxy": 1, "shim": 1,
                                                               "dockerd": 1}
    probe.start()
    for proc in procs:
        proc.cpu += 0.5
    result = probe.stop()
    assert set(result) == {"cpu_cores", "proxy_cpu_cores", "shim_cpu_cores",
                           "dockerd_cpu_cores"}
    assert result["cpu_cores"] > 0 and result["cpu_cores"] == pytest.approx(
        result["proxy_cpu_cores"] + result["shim_cpu_cores"] + result["dockerd_cpu_cores"],
        abs=0.002)
