"""`build.py compare`: measure which server serves this model better, side by side.

Pipeline: build (or reuse) both images -> image facts (sizes, the serving settings baked
in) -> the in-process baseline (the model called directly) -> for each server in turn:
start it as SageMaker does, time the first correct answer, then one closed-loop load step
per concurrency (byoc.loadgen), with the container's CPU and memory (docker stats), this
process's CPU and the whole machine's CPU measured over each step -> the report
(byoc.report: compare.md, compare.json, compare.png). docs/compare.md tells how to read it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import platform
import random
import re
import shutil
import subprocess
import tarfile
import threading
import time
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path

import requests
from docker.errors import ImageNotFound, NotFound

from . import REPO_ROOT, builder, config, launcher, loadgen, report, samples
from .console import Console
from .errors import ByocError, ExitStatus, UsageError
from .render import BAKED_MODEL_DIR

DEFAULT_OUT = builder.DEFAULT_WORK_DIR / "compare"
SIZE_CACHE = builder.DEFAULT_WORK_DIR / "compare-layer-sizes.json"
BODY_KINDS = ("json", "npy", "png", "jpeg", "mix")
# Compressed size: gzip level 6 (what `docker push` writes) of each layer tarball, estimated
# from 1 in SAMPLE_EVERY of the 1 MiB blocks of layers over SAMPLE_EXACT_BELOW (exact below).
GZIP_LEVEL = 6
BLOCK = 1 << 20
SAMPLE_EVERY = 4
SAMPLE_EXACT_BELOW = 8 * BLOCK
SIZE_METHOD = (f"sum over layers of gzip -{GZIP_LEVEL} of the layer tarball (as a registry "
               f"stores it); layers over {SAMPLE_EXACT_BELOW >> 20} MiB estimated from a "
               f"random 1 in {SAMPLE_EVERY} of their 1 MiB blocks, smaller ones exact; cached "
               "per layer digest")


# -- the command line -----------------------------------------------------------------------

def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list like 1,8,32") from None
    if not values or any(v < 1 or v > 1024 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each concurrency must be 1..1024")
    return sorted(set(values))


def register(subparsers) -> None:
    """Add the `compare` subcommand."""
    p = subparsers.add_parser(
        "compare", help="build both images for the same model and measure them side by side",
        description="Build (or reuse) the TorchServe and Triton images, run each as SageMaker "
                    "does, and measure size, cold start, latency, throughput and resources "
                    "under the same closed-loop load. See docs/compare.md.")
    p.add_argument("--concurrency", type=_int_list, default=[1, 8, 32], metavar="N,N,...",
                   help="concurrent closed-loop clients, one load step each (default 1,8,32)")
    p.add_argument("--duration", type=float, default=10.0, metavar="S",
                   help="seconds per load step, at most (default 10)")
    p.add_argument("--max-requests", type=int, default=20000, metavar="N",
                   help="requests per load step, at most (default 20000)")
    p.add_argument("--warmup", type=int, default=100, metavar="N",
                   help="requests sent before each step and not counted (default 100)")
    p.add_argument("--timeout", type=float, default=loadgen.DEFAULT_TIMEOUT_S, metavar="S",
                   help="per-request timeout; a timeout counts as an error (default 30)")
    p.add_argument("--body", choices=BODY_KINDS, default="json",
                   help="request bodies: one digit per request as json (default), npy, png, "
                        "jpeg, or a mix of all four; the same bytes go to both servers")
    p.add_argument("--gpu", action="store_true",
                   help="gpu variants, run with all GPUs; adds GPU memory and utilisation")
    p.add_argument("--variant", choices=config.VARIANTS,
                   help="image variant (default cpu, gpu with --gpu)")
    p.add_argument("--triton-runtime", choices=config.RUNTIMES["triton"],
                   help="where Triton comes from (default pytriton)")
    p.add_argument("--no-build", action="store_true",
                   help="use existing images instead of building (BuildKit's cache makes a "
                        "rebuild of an unchanged image take seconds anyway)")
    p.add_argument("--torchserve-image", metavar="REF",
                   help="TorchServe image to build (or with --no-build, use); default from "
                        "the config")
    p.add_argument("--triton-image", metavar="REF", help="likewise for Triton")
    p.add_argument("--config", default=str(config.DEFAULT_CONFIG),
                   help="images config: its server: blocks set workers, batching and "
                        "instance counts, so tuned configurations can be compared")
    p.add_argument("--ca-cert", help="CA bundle for pip in the build (a BuildKit secret)")
    p.add_argument("--wheelhouse", help="folder of wheels bind-mounted into the build")
    p.add_argument("--startup-timeout", type=float, default=launcher.DEFAULT_STARTUP_BUDGET_S,
                   metavar="S", help="budget for the first correct answer after docker run")
    p.add_argument("--out", default=str(DEFAULT_OUT), metavar="DIR",
                   help=f"where compare.md, compare.json and compare.png go (default "
                        f"{DEFAULT_OUT.relative_to(REPO_ROOT)})")


def command_line(args) -> str:
    """The run, as a command that repeats it (written into the report)."""
    parts = ["python build.py compare", f"--concurrency {','.join(map(str, args.concurrency))}",
             f"--duration {args.duration:g}", f"--max-requests {args.max_requests}",
             f"--warmup {args.warmup}", f"--body {args.body}"]
    if args.gpu:
        parts.append("--gpu")
    if args.variant and args.variant != ("gpu" if args.gpu else "cpu"):
        parts.append(f"--variant {args.variant}")
    if args.no_build:
        parts.append("--no-build")
    for flag in ("torchserve_image", "triton_image", "triton_runtime"):
        if getattr(args, flag):
            parts.append(f"--{flag.replace('_', '-')} {getattr(args, flag)}")
    return " ".join(parts)


def _check_args(args) -> None:
    if args.duration <= 0 or args.duration > 3600:
        raise UsageError(f"--duration {args.duration:g}: give 0 < S <= 3600")
    if not 1 <= args.max_requests <= 10_000_000:
        raise UsageError(f"--max-requests {args.max_requests}: give 1..10000000")
    if args.warmup < 0:
        raise UsageError(f"--warmup {args.warmup}: give 0 or more")
    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: give a positive number of seconds")


# -- request bodies ---------------------------------------------------------------------------

def payloads(kind: str) -> list[loadgen.Payload]:
    """The bodies both servers get, in the order they are sent (round robin)."""
    kinds = ("json", "npy", "png", "jpeg") if kind == "mix" else (kind,)
    out = []
    for sample in samples.digits():
        bodies = samples.request_bodies(sample)
        out += [loadgen.Payload(bodies[k][0], bodies[k][1], sample.label) for k in kinds]
    return out


def check_prediction(payload: loadgen.Payload, status: int, body: bytes) -> str | None:
    """A correct answer: 200 and the expected label for the one digit sent."""
    if status != 200:
        return f"status {status}"
    try:
        label = json.loads(body)["predictions"][0]["label"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "malformed answer"
    return None if label == payload.expected else "wrong answer"


# -- probes: measured over exactly each load step ----------------------------------------------

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
        try:
            out = subprocess.run(self.QUERY, capture_output=True, text=True, timeout=5).stdout
            rows = [[float(v) for v in line.split(",")] for line in out.strip().splitlines()]
        except (OSError, ValueError, subprocess.TimeoutExpired):
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


# -- image facts: size, settings, the model inside ---------------------------------------------

def _load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(path: Path, entries: dict) -> None:
    merged = {**_load_cache(path), **entries}  # another run may have added layers meanwhile
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(merged, indent=1, sort_keys=True))
    partial.replace(path)


class _Chunks(io.RawIOBase):
    """A file over the chunks `image.save()` yields, for tarfile's streaming mode."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def gzip_estimate(stream, size: int) -> int:
    """gzip -6 size of a layer tarball read from stream: exact for small ones, else from a
    random (seeded, so repeatable) 1 in SAMPLE_EVERY of its 1 MiB blocks, scaled up."""
    pick = random.Random(size)
    exact = size < SAMPLE_EXACT_BELOW
    raw = packed = 0
    while block := stream.read(BLOCK):
        if exact or not raw or pick.random() * SAMPLE_EVERY < 1:
            raw += len(block)
            packed += len(zlib.compress(block, GZIP_LEVEL))
    return round(size * packed / raw) + 18 if raw else 20  # + gzip header and trailer


def image_sizes(image, console: Console, cache_path: Path = SIZE_CACHE,
                name: str | None = None) -> dict:
    """Uncompressed (what `docker images` shows) and compressed (per SIZE_METHOD) sizes."""
    diff_ids = image.attrs.get("RootFS", {}).get("Layers", [])
    cache = _load_cache(cache_path)
    t0 = time.monotonic()
    missing = [d for d in diff_ids if d not in cache]
    if missing:
        console.info(f"compressed size of {name or image.short_id}: "
                     f"streaming docker save through gzip -{GZIP_LEVEL} "
                     f"({len(missing)} new layers)")
        by_path: dict[str, int] = {}
        manifest = None
        with tarfile.open(fileobj=io.BufferedReader(_Chunks(image.save(chunk_size=BLOCK)),
                                                    BLOCK), mode="r|") as archive:
            for member in archive:
                if member.name.endswith("layer.tar") and member.isfile():
                    by_path[member.name] = gzip_estimate(archive.extractfile(member),
                                                         member.size)
                elif member.name == "manifest.json":
                    manifest = json.load(archive.extractfile(member))
        if not manifest:
            raise ByocError("docker save gave no manifest.json; cannot size the layers")
        layer_paths = manifest[0]["Layers"]
        fresh = {diff_id: by_path[p] for diff_id, p in zip(diff_ids, layer_paths, strict=True)
                 if p in by_path}
        _save_cache(cache_path, fresh)
        cache.update(fresh)
    return {"uncompressed_bytes": image.attrs["Size"],
            "compressed_bytes": sum(cache[d] for d in diff_ids),
            "layers": len(diff_ids), "method": SIZE_METHOD,
            "seconds": round(time.monotonic() - t0, 1)}


def model_store(dock, image: str) -> dict[str, bytes]:
    """The files of the model store baked into the image, by relative path."""
    container = dock.containers.create(image, ["true"])
    try:
        stream, _ = container.get_archive(f"{BAKED_MODEL_DIR}/.")
        data = io.BytesIO(b"".join(stream))
    finally:
        container.remove(force=True)
    files = {}
    with tarfile.open(fileobj=data) as archive:
        for member in archive:
            if member.isfile():
                files[member.name.removeprefix("./")] = archive.extractfile(member).read()
    return files


def find_torchscript(files: dict[str, bytes], name: str = "digits.pt") -> bytes | None:
    """The TorchScript model: a plain file (Triton) or inside a .mar (TorchServe)."""
    for path, data in sorted(files.items()):
        if path.endswith(name):
            return data
    for path, data in sorted(files.items()):
        if path.endswith(".mar"):
            with zipfile.ZipFile(io.BytesIO(data)) as mar:
                for entry in mar.namelist():
                    if entry.endswith(name):
                        return mar.read(entry)
    return None


_PBTXT_FIELDS = {
    "max_batch_size": re.compile(r"^max_batch_size:\s*(\d+)", re.M),
    "max_queue_delay_us": re.compile(r"max_queue_delay_microseconds:\s*(\d+)"),
    "instances": re.compile(r"instance_group\s*\[\s*\{[^}]*count:\s*(\d+)"),
}


def triton_settings(files: dict[str, bytes]) -> dict:
    """Per model of the repository: instances, max batch, dynamic batcher delay."""
    settings = {}
    for path, data in sorted(files.items()):
        if not path.endswith("config.pbtxt"):
            continue
        text = data.decode(errors="replace")
        model = path.split("/")[-2]
        found = {k: int(m.group(1)) for k, rx in _PBTXT_FIELDS.items() if (m := rx.search(text))}
        found["dynamic_batching"] = "dynamic_batching" in text
        settings[model] = found
    return settings


def torchserve_settings(env: dict[str, str]) -> dict:
    return {"workers": int(env.get("BYOC_DEFAULT_WORKERS", "1")),
            "batch_size": int(env.get("BYOC_BATCH_SIZE", "1")),
            "max_batch_delay_ms": int(env.get("BYOC_MAX_BATCH_DELAY_MS", "5"))}


def settings_line(flavor: str, settings: dict) -> str:
    """The serving settings in one line for the report."""
    if flavor == "torchserve":
        return (f"workers {settings['workers']}, batch_size {settings['batch_size']}, "
                f"max_batch_delay {settings['max_batch_delay_ms']} ms")
    parts = []
    for model, s in settings.items():
        text = f"{model}: {s.get('instances', 1)} instance(s)"
        if s.get("dynamic_batching"):
            text += (f", dynamic batching (max {s.get('max_batch_size')} rows, delay "
                     f"{s.get('max_queue_delay_us', 0)} us)")
        parts.append(text)
    return "; ".join(parts)


@dataclasses.dataclass
class ImageFacts:
    flavor: str
    reference: str
    image_id: str
    labels: dict
    settings: dict
    model: bytes | None
    size: dict


def image_facts(dock, flavor: str, reference: str, console: Console) -> ImageFacts:
    image = dock.images.get(reference)
    attrs = image.attrs
    env = dict(e.split("=", 1) for e in (attrs.get("Config") or {}).get("Env") or [] if "=" in e)
    files = model_store(dock, reference)
    settings = torchserve_settings(env) if flavor == "torchserve" else triton_settings(files)
    size = image_sizes(image, console, name=reference)
    return ImageFacts(flavor, reference, image.id, (attrs.get("Config") or {}).get("Labels") or {},
                      settings, find_torchscript(files), size)


# -- the in-process baseline ------------------------------------------------------------------

def same_weights(a: bytes | None, b: bytes | None) -> bool:
    """The same model? TorchScript archives of equal weights can differ byte for byte."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    import torch

    sa, sb = (torch.jit.load(io.BytesIO(m), map_location="cpu").state_dict() for m in (a, b))
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _codec():
    path = REPO_ROOT / "handlers" / "digits_codec.py"
    spec = importlib.util.spec_from_file_location("byoc_compare_digits_codec", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _time(fn, *, min_iterations: int = 200, max_iterations: int = 5000,
          budget_s: float = 1.5) -> list[float]:
    for _ in range(20):
        fn()
    out: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(out) < max_iterations and (len(out) < min_iterations
                                         or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _stats_us(samples_s: list[float]) -> dict:
    import numpy as np

    values = np.asarray(samples_s) * 1e6
    return {"n": len(values), "p50_us": round(float(np.percentile(values, 50)), 2),
            "p90_us": round(float(np.percentile(values, 90)), 2),
            "p99_us": round(float(np.percentile(values, 99)), 2)}


def baseline(model_bytes: bytes, bodies: list[loadgen.Payload], batch_sizes: list[int],
             gpu: bool = False) -> dict:
    """The model's own cost per request, single-threaded: decode the same bodies the servers
    get, run the TorchScript model, encode the answer. No HTTP, no server, no IPC."""
    import numpy as np
    import torch

    codec = _codec()
    device = torch.device("cuda" if gpu and torch.cuda.is_available() else "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = torch.jit.load(io.BytesIO(model_bytes), map_location=device).eval()
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        cycle = {"i": 0}

        def next_body() -> loadgen.Payload:
            cycle["i"] = (cycle["i"] + 1) % len(bodies)
            return bodies[cycle["i"]]

        def decode():
            p = next_body()
            codec.decode(p.body, p.content_type)

        row = codec.decode(bodies[0].body, bodies[0].content_type)
        results = {"decode": _stats_us(_time(decode))}
        model_rows = []
        with torch.inference_mode():
            for batch in batch_sizes:
                x = torch.from_numpy(np.repeat(row, batch, axis=0)).to(device)

                def infer(x=x):
                    model(x)
                    sync()
                stats = _stats_us(_time(infer))
                stats.update(batch=batch, per_row_us=round(stats["p50_us"] / batch, 2))
                model_rows.append(stats)
            probabilities = model(torch.from_numpy(row).to(device)).cpu().numpy()
            results["encode"] = _stats_us(_time(lambda: codec.encode(probabilities)))

            def whole():
                p = next_body()
                x = torch.from_numpy(codec.decode(p.body, p.content_type)).to(device)
                out = model(x)
                codec.encode(out.cpu().numpy())

            results["request"] = _stats_us(_time(whole))
    finally:
        torch.set_num_threads(threads)
    return {"device": str(device), "threads": 1, "torch": torch.__version__,
            "model_sha256": hashlib.sha256(model_bytes).hexdigest(), "model": model_rows,
            **results}


# -- one server ---------------------------------------------------------------------------------

def first_correct_answer(running: launcher.Running, payload: loadgen.Payload,
                         budget_s: float, name: str = "the container") -> float:
    """Seconds from `docker run` to the first correct answer to a real request."""
    deadline = running.started_at + budget_s
    headers = {"Content-Type": payload.content_type}
    with requests.Session() as http:
        while time.monotonic() < deadline:
            try:
                response = http.post(f"{running.url}/invocations", data=payload.body,
                                     headers=headers, timeout=2)
                if check_prediction(payload, response.status_code, response.content) is None:
                    return time.monotonic() - running.started_at
            except requests.RequestException:
                pass
            if running.status() in ("exited", "dead"):
                raise ByocError(f"{name} exited with code "
                                f"{running.exit_code()} before answering; last log lines:\n"
                                + "\n".join(running.logs().splitlines()[-20:]))
            time.sleep(0.05)
    raise ByocError(f"no correct answer within {budget_s:.0f} s of docker run",
                    "raise --startup-timeout if the model is large")


def machine_busy(seconds: float = 1.0) -> float | None:
    """Busy cores before a server starts: what else is running on the machine."""
    try:
        probe = MachineCpuProbe()
    except ImportError:
        return None
    probe.start()
    time.sleep(seconds)
    return probe.stop()["cpu_cores"]


def measure_server(facts: ImageFacts, args, bodies: list[loadgen.Payload],
                   console: Console) -> dict:
    try:
        return _measure_server(facts, args, bodies, console)
    except NotFound as exc:  # docker rm -f or a prune elsewhere on a shared engine
        raise ByocError(f"the {facts.flavor} container vanished while it was measured: "
                        f"{exc.explanation}", "something else on this Docker engine removed "
                        "it (docker rm, container prune); run compare again") from None


def _measure_server(facts: ImageFacts, args, bodies: list[loadgen.Payload],
                    console: Console) -> dict:
    console.step(f"{facts.flavor}: start {facts.reference} as SageMaker does")
    busy_before = machine_busy()
    with launcher.launched(facts.reference, gpu=args.gpu, name_hint="byoc-compare") as running:
        cold = first_correct_answer(running, bodies[0], args.startup_timeout,
                                    facts.reference)
        console.info(f"first correct answer {cold:.2f} s after docker run")
        probes: dict = {"server": DockerStatsProbe(running.container)}
        try:
            probes["machine"] = MachineCpuProbe()
            probes["docker"] = DockerSideProbe(running.port, running.container.id)
        except ImportError:
            console.warn("psutil missing: machine and Docker-side CPU not measured")
        if args.gpu:
            probes["gpu"] = GpuProbe()
        steps = []
        for concurrency in args.concurrency:
            console.step(f"{facts.flavor}: concurrency {concurrency}, up to "
                         f"{args.max_requests} requests or {args.duration:g} s")
            result = loadgen.run_step(
                f"{running.url}/invocations", bodies, concurrency=concurrency,
                duration_s=args.duration, max_requests=args.max_requests,
                warmup=args.warmup, timeout_s=args.timeout, check=check_prediction,
                probes=probes)
            summary = result.summary()
            console.info(f"{summary['ok']} ok, {summary['errors']} errors, "
                         f"{summary['throughput_rps']:.0f} req/s, p50 {summary['p50_ms']} ms, "
                         f"p99 {summary['p99_ms']} ms; server {summary['server_cpu_cores']} "
                         f"cores, client {summary['client_cores']} cores")
            steps.append({**summary,
                          "latency_us": [round(v * 1e6) for v in result.latencies_s]})
        exit_code, stop_s = running.stop()
    return {"flavor": facts.flavor, "image": facts.reference, "image_id": facts.image_id,
            "server": facts.labels.get("dev.byoc.server"), "settings": facts.settings,
            "settings_line": settings_line(facts.flavor, facts.settings), "size": facts.size,
            "first_answer_s": round(cold, 3), "machine_busy_before_cores": busy_before,
            "stop": {"exit_code": exit_code, "seconds": round(stop_s, 2)}, "steps": steps}


# -- the run ---------------------------------------------------------------------------------------

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


def images_to_compare(args, console: Console) -> dict[str, str]:
    variant = args.variant or ("gpu" if args.gpu else "cpu")
    specs = config.load(Path(args.config))
    wanted = {"torchserve": config.select(specs, "torchserve", variant),
              "triton": config.select(specs, "triton", variant, args.triton_runtime)}
    chosen = {}
    for flavor, spec in wanted.items():
        given = getattr(args, f"{flavor}_image")
        if args.no_build:
            chosen[flavor] = given or builder.image_references(spec, None)[0]
            try:
                launcher.client().images.get(chosen[flavor])
            except ImageNotFound:
                raise UsageError(f"--no-build: no image {chosen[flavor]} here",
                                 f"build it (drop --no-build) or name one with "
                                 f"--{flavor}-image") from None
        else:
            options = builder.BuildOptions(tag=given, ca_cert=args.ca_cert,
                                           wheelhouse=args.wheelhouse)
            chosen[flavor] = builder.build(spec, options, console).reference
    return chosen


def ratio_and_overheads(doc: dict) -> dict:
    """Triton/TorchServe throughput at each concurrency; each server's p50 at concurrency 1
    over the in-process request p50 (queueing-free, so it is the serving overhead)."""
    by_flavor = {s["flavor"]: {st["concurrency"]: st for st in s["steps"]} for s in doc["servers"]}
    ts, tr = by_flavor.get("torchserve", {}), by_flavor.get("triton", {})
    ratios = {str(c): round(tr[c]["throughput_rps"] / ts[c]["throughput_rps"], 3)
              for c in sorted(set(ts) & set(tr)) if ts[c]["throughput_rps"]}
    in_process_ms = doc["baseline"]["request"]["p50_us"] / 1000
    overheads = {}
    for flavor, steps in by_flavor.items():
        lowest = min(steps)
        p50 = steps[lowest]["p50_ms"]
        if p50 is not None:
            overheads[flavor] = {"concurrency": lowest, "p50_ms": p50,
                                 "in_process_p50_ms": round(in_process_ms, 4),
                                 "overhead_ms": round(p50 - in_process_ms, 3),
                                 "times_in_process": round(p50 / in_process_ms, 1)}
    return {"throughput_ratio_triton_over_torchserve": ratios, "p50_overhead": overheads}


def run_compare_command(args, console) -> int:
    _check_args(args)
    started = time.monotonic()
    dock = launcher.client()
    out = Path(args.out)
    console.step("compare: images")
    references = images_to_compare(args, console)
    facts = {}
    for flavor, reference in references.items():
        facts[flavor] = image_facts(dock, flavor, reference, console)
        size = facts[flavor].size
        console.info(f"{flavor}: {reference}: {size['uncompressed_bytes'] / 1e9:.2f} GB, "
                     f"{size['compressed_bytes'] / 1e9:.2f} GB compressed; "
                     f"{settings_line(flavor, facts[flavor].settings)}")
    model = facts["triton"].model or facts["torchserve"].model
    if model is None:
        raise ByocError("no digits.pt in the images' model stores: the in-process baseline "
                        "needs the baked model", "compare images built with their model baked "
                        "in (not --no-model)")
    same_model = same_weights(facts["triton"].model, facts["torchserve"].model)
    if not same_model:
        console.warn("the two images hold models with different weights; the baseline times "
                     "Triton's")
    bodies = payloads(args.body)
    batch_sizes = sorted({1, *args.concurrency, facts["torchserve"].settings["batch_size"]})
    console.step(f"compare: in-process baseline (batch sizes {batch_sizes})")
    base = baseline(model, bodies, batch_sizes, gpu=args.gpu)
    console.info(f"in-process request (decode + model + encode) p50 "
                 f"{base['request']['p50_us']:.0f} us")
    doc = {
        "schema": 1, "command": command_line(args),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_facts(dock),
        "load": {"model": "closed loop", "concurrency": args.concurrency,
                 "duration_s": args.duration, "max_requests": args.max_requests,
                 "warmup": args.warmup, "timeout_s": args.timeout, "body": args.body,
                 "payloads": [{"content_type": p.content_type, "bytes": len(p.body),
                               "label": p.expected} for p in bodies],
                 "gpu": args.gpu},
        "baseline": {**base, "same_weights_in_both_images": same_model},
        "servers": [measure_server(facts[f], args, bodies, console)
                    for f in ("torchserve", "triton")],
    }
    doc["summary"] = ratio_and_overheads(doc)
    doc["seconds"] = round(time.monotonic() - started, 1)
    written = report.write(doc, out, console)
    print(report.markdown(doc), flush=True)
    console.ok(f"compare written: {', '.join(str(p) for p in written)} "
               f"({doc['seconds']:.0f} s)")
    errors = sum(st["errors"] for s in doc["servers"] for st in s["steps"])
    if errors:
        console.warn(f"{errors} requests failed (see the errors column); the numbers stand, "
                     "but check the servers' logs")
    return ExitStatus.OK
