"""What is measured over exactly each load step, besides the load itself: the container
(docker stats), the whole machine's CPU, the CPU the container costs Docker outside its
cgroup, and the GPU; and the facts of the machine the report names."""

from __future__ import annotations

import os
import platform
import shutil
import threading
import time
from pathlib import Path

from ..process import probe


class DockerStatsProbe:
    """The container's CPU (cores, from cpu_usage deltas) and memory (as `docker stats` shows
    it: usage less inactive file cache), from one-shot stats before and after the step."""

    def __init__(self, container):
        self.container = container
        self._before: tuple[float, int] | None = None

    def _read(self) -> tuple[float, dict]:
        stats = self.container.stats(stream=False, one_shot=True)
        return time.monotonic(), stats

    def start(self) -> None:
        at, stats = self._read()
        self._before = (at, stats["cpu_stats"]["cpu_usage"]["total_usage"])

    def stop(self) -> dict:
        at, stats = self._read()
        t0, cpu0 = self._before
        cores = (stats["cpu_stats"]["cpu_usage"]["total_usage"] - cpu0) / 1e9 / (at - t0)
        return {"cpu_cores": round(cores, 3), "mem_mib": round(container_memory(stats) / 2**20, 1)}


def container_memory(stats: dict) -> int:
    memory = stats.get("memory_stats") or {}
    inner = memory.get("stats") or {}
    # cgroup v1 names it total_inactive_file, v2 inactive_file (what the docker CLI subtracts)
    cache = inner.get("total_inactive_file", inner.get("inactive_file", 0))
    usage = memory.get("usage", 0)
    return usage - cache if cache < usage else usage


class MachineCpuProbe:
    """Busy cores of the whole machine over the step (client + server + anything else)."""

    def __init__(self):
        import psutil  # noqa: F401  (only to fail early; it is there with the dev tools)

    def start(self) -> None:
        import psutil
        self._t0, self._cpu0 = time.monotonic(), psutil.cpu_times()

    def stop(self) -> dict:
        import psutil
        cpu1, wall = psutil.cpu_times(), time.monotonic() - self._t0
        return {"cpu_cores": round(busy_seconds(self._cpu0, cpu1) / wall, 3)}


def busy_seconds(before, after) -> float:
    """CPU seconds spent busy between two psutil.cpu_times() readings, all cores together."""
    # guest time is already counted in user time on Linux; idle and iowait are not busy
    fields = [f for f in before._fields if f not in ("guest", "guest_nice")]
    delta = {f: getattr(after, f) - getattr(before, f) for f in fields}
    return max(0.0, sum(delta.values()) - delta["idle"] - delta.get("iowait", 0.0))


def machine_busy(seconds: float = 1.0) -> float | None:
    """Busy cores before a server starts: what else is running on the machine."""
    try:
        probe = MachineCpuProbe()
    except ImportError:
        return None
    probe.start()
    time.sleep(seconds)
    return probe.stop()["cpu_cores"]


class DockerSideProbe:
    """CPU that the container costs outside its cgroup: docker-proxy (loopback traffic to the
    published port goes through it), the container's containerd shim (it copies the
    container's stdout and stderr) and dockerd (it stores those logs; it is shared, so
    other Docker work on the machine counts here too)."""

    def __init__(self, host_port: int, container_id: str):
        import psutil

        self.processes: dict[str, list] = {"proxy": [], "shim": [], "dockerd": []}
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            program = os.path.basename(cmdline[0]) if cmdline else proc.info.get("name") or ""
            if program == "docker-proxy" and "-host-port" in cmdline \
                    and str(host_port) in cmdline:
                self.processes["proxy"].append(proc)
            elif program.startswith("containerd-shim") and container_id in cmdline:
                self.processes["shim"].append(proc)
            elif program == "dockerd":
                self.processes["dockerd"].append(proc)

    def _cpu(self) -> dict[str, float]:
        import psutil

        totals = {}
        for part, procs in self.processes.items():
            totals[part] = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                    totals[part] += times.user + times.system
                except psutil.Error:
                    pass
        return totals

    def start(self) -> None:
        self._t0, self._cpu0 = time.monotonic(), self._cpu()

    def stop(self) -> dict:
        wall, cpu = time.monotonic() - self._t0, self._cpu()
        parts = {f"{part}_cpu_cores": round((cpu[part] - self._cpu0[part]) / wall, 3)
                 if self.processes[part] else None for part in cpu}
        found = [v for v in parts.values() if v is not None]
        return {"cpu_cores": round(sum(found), 3) if found else None, **parts}


class GpuProbe:
    """GPU memory (peak) and utilisation (mean) from nvidia-smi, sampled twice a second."""

    QUERY = ["nvidia-smi", "--query-gpu=memory.used,utilization.gpu",
             "--format=csv,noheader,nounits"]

    def __init__(self):
        self.available = shutil.which("nvidia-smi") is not None
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> tuple[float, float] | None:
        # A poll twice a second: a failure means "no sample", never an error to raise.
        done = probe(self.QUERY, timeout_s=5)
        if done is None:
            return None
        try:
            rows = [[float(v) for v in line.split(",")]
                    for line in done.stdout.strip().splitlines()]
        except ValueError:
            return None
        if not rows:
            return None
        return sum(r[0] for r in rows), sum(r[1] for r in rows) / len(rows)

    def _loop(self) -> None:
        while not self._stop.is_set():
            got = self.sample()
            if got:
                self._samples.append(got)
            self._stop.wait(0.5)

    def start(self) -> None:
        self._samples, self._stop = [], threading.Event()
        if self.available:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()

    def stop(self) -> dict:
        if self._thread:
            self._stop.set()
            self._thread.join(timeout=10)
            last = self.sample()  # at least one sample, however short the step
            if last:
                self._samples.append(last)
        if not self._samples:
            return {"mem_mib": None, "util_pct": None,
                    "note": "nvidia-smi unavailable" if not self.available else "no samples"}
        return {"mem_mib": max(s[0] for s in self._samples),
                "util_pct": round(sum(s[1] for s in self._samples) / len(self._samples), 1)}


def machine_facts(dock) -> dict:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil
        memory = psutil.virtual_memory().total
    except ImportError:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    import aiohttp
    return {"nproc": os.cpu_count(), "cpu_model": cpu_model,
            "memory_gib": round(memory / 2**30, 1), "docker": dock.version().get("Version"),
            "kernel": platform.release(), "python": platform.python_version(),
            "client": f"aiohttp {aiohttp.__version__}, one event loop in the byoc process"}
