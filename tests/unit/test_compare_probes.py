"""compare's probes and size estimate, without Docker: docker stats arithmetic, machine
CPU, the Docker-side processes, a stand-in nvidia-smi, gzip -6 sampled."""

from __future__ import annotations

import gzip
import io
from collections import namedtuple

import numpy as np
import pytest

from byoc.compare import probes, sizes


def test_container_memory_and_busy_seconds():
    v1 = {"memory_stats": {"usage": 500, "stats": {"total_inactive_file": 100}}}
    v2 = {"memory_stats": {"usage": 500, "stats": {"inactive_file": 200}}}
    assert probes.container_memory(v1) == 400 and probes.container_memory(v2) == 300
    assert probes.container_memory({"memory_stats": {}}) == 0
    Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")
    before = Times(10, 0, 5, 100, 1, 0, 0, 0, 3, 0)
    after = Times(12, 0, 6, 101, 2, 0, 0, 0, 5, 0)
    assert probes.busy_seconds(before, after) == 3  # guest is inside user; iowait is idle


def test_gpu_probe_reads_nvidia_smi_or_says_it_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    probe = probes.GpuProbe()
    probe.start()
    assert probe.stop() == {"mem_mib": None, "util_pct": None,
                            "note": "nvidia-smi unavailable"}
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '1200, 30'\necho '800, 50'\n")
    fake.chmod(0o755)
    probe = probes.GpuProbe()
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
    probe = probes.DockerSideProbe(32800, "abc123")
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


def test_gzip_estimate_exact_when_small_and_close_when_sampled(monkeypatch):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 4, 300_000, dtype=np.uint8).tobytes()
    assert sizes.gzip_estimate(io.BytesIO(small), len(small)) == \
        pytest.approx(len(gzip.compress(small, 6)), rel=0.002)
    # A layer of 256 blocks whose compressibility drifts block by block (blocks made small
    # so the test stays fast): 1 in 4 sampled, within 5 % of the real gzip -6 size
    monkeypatch.setattr(sizes, "BLOCK", 32 << 10)
    monkeypatch.setattr(sizes, "SAMPLE_EXACT_BELOW", 1 << 20)
    big = b"".join(rng.integers(0, 2 + i, 32 << 10, endpoint=False).astype(np.uint8).tobytes()
                   for i in range(256))
    estimate = sizes.gzip_estimate(io.BytesIO(big), len(big))
    assert estimate == pytest.approx(len(gzip.compress(big, 6)), rel=0.05)
    assert sizes.gzip_estimate(io.BytesIO(big), len(big)) == estimate  # repeatable
