"""CPU accounting for bench/front_overhead.py, read from the host's /proc: each process of
the container (client, fronts, server), and the whole machine, over one cell."""

from __future__ import annotations

import os
import platform
import subprocess

TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _machine_busy_s() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, wall seconds since boot)."""
    with open("/proc/stat") as handle:
        cpu = [int(v) for v in handle.readline().split()[1:]]
    idle = cpu[3] + cpu[4]
    with open("/proc/uptime") as handle:
        up = float(handle.read().split()[0])
    return (sum(cpu[:8]) - idle) / TICK, up


class ContainerProcs:
    """The container's processes by their command lines (`docker top`), and its cgroup's
    CPU time (cgroup v1 cpuacct, or v2 cpu.stat)."""

    def __init__(self, container):
        self.container = container
        cid = container.id
        self.v1 = f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage"
        self.v2 = f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"

    def cpu_s(self) -> float:
        if os.path.exists(self.v1):
            with open(self.v1) as handle:
                return int(handle.read()) / 1e9
        with open(self.v2) as handle:
            for row in handle:
                if row.startswith("usage_usec"):
                    return int(row.split()[1]) / 1e6
        return 0.0

    def table(self) -> list[tuple[int, str]]:
        top = self.container.top(ps_args="-eo pid,args")
        return [(int(p[0]), p[1]) for p in top["Processes"]]


class Cell:
    """CPU of the front (a command line containing `front`), of the client
    (front_client.py) and of the server (everything else in the container but serve's
    supervisor when serve's own front is measured, which is the same process)."""

    def __init__(self, procs: ContainerProcs, front: str | None):
        self.procs = procs
        self.front = front  # a candidate's marker in its command line; None: serve's own

    def _split(self) -> dict[str, float]:
        found = {"front": 0.0, "server": 0.0, "client": 0.0}
        for pid, args in self.procs.table():
            cpu = _proc_cpu_s(pid)
            if "front_client.py" in args:
                found["client"] += cpu
            elif self.front is None and "byoc_runtime.serve" in args:
                found["front"] += cpu
            elif self.front is not None and (f" {self.front}" in args
                                             or f":{self.front} " in args) and (
                    "run_front.py" in args or "goproxy" in args):
                found["front"] += cpu
            elif "run_front.py" in args or "goproxy" in args or "byoc_runtime.serve" in args:
                continue  # idle fronts of other targets, and serve's supervisor
            else:
                found["server"] += cpu
        return found

    def start(self) -> None:
        self.before = self._split()
        self.container0 = self.procs.cpu_s()
        self.machine0 = _machine_busy_s()

    def stop(self) -> dict:
        after = self._split()
        busy1, up1 = _machine_busy_s()
        busy0, up0 = self.machine0
        used = {k: after[k] - self.before[k] for k in ("front", "server")}
        container = self.procs.cpu_s() - self.container0  # the client's CPU included
        wall = max(up1 - up0, 1e-6)
        return {"front_cpu_s": round(used["front"], 3), "server_cpu_s": round(used["server"], 3),
                "other_cores": round(max(0.0, (busy1 - busy0) - container) / wall, 2),
                "load1": round(os.getloadavg()[0], 2)}


def machine_facts() -> dict:
    def out(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""

    model = ""
    with open("/proc/cpuinfo") as handle:
        for row in handle:
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "uptime": out("uptime"), "docker": out("docker", "version", "-f",
                                                   "{{.Server.Version}}")}
