"""The in-process baseline, run in its own Python process: a TorchServe archive's handler
loaded and called directly, no HTTP, no server, no IPC.

    python -m byoc.compare.inprocess REQUEST.json RESULT.json

The handler is loaded exactly as the Triton host of archives loads it
(triton_backends/torchserve_host/1/model.py: a TorchServe 0.12 worker's working
directory, sys.path and environment, then TorchServe's own ts.model_loader.TsModelLoader),
and each request goes through the host's own framing: the frontend's PREDICT frame,
TorchServe's decoder (ts.protocol.otf_message_handler.retrieve_msg), Service.predict (the
handler's handle: decode + model + encode) and the answer frame. That is what a worker
does per request. Its own process keeps the handler's imports, sys.path and working
directory out of byoc, and gives torch the default threads a fresh worker gets (neither
TorchServe, Triton's Python backend nor byoc's runtime sets them).

Timed single-threaded on the same bodies the servers get, round robin: the whole request
at batch 1 and at each larger batch size the servers can form, and, for a handler class
with preprocess/inference/postprocess (TorchServe's BaseHandler shape), each stage alone."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from .. import REPO_ROOT
from ..model import samples as samples_mod

HOST_WORKER = REPO_ROOT / "triton_backends" / "torchserve_host" / "1" / "ts_host.py"
WARMUP_S, WARMUP_MAX = 0.5, 20
MIN_ITERATIONS, MAX_ITERATIONS = 30, 5000
BUDGET_S, HARD_CAP_S = 1.5, 10.0  # per measurement: enough samples, bounded for big models


def load_host():
    """The Triton host's worker module (ts_host.py): TorchServe's loader and framing, with
    nothing of Triton in it."""
    spec = importlib.util.spec_from_file_location("byoc_torchserve_host", HOST_WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Loaded:
    """A handler loaded as the Triton host loads it, answering framed requests."""

    def __init__(self, host, archive: Path, name: str, batch_size: int, gpu: bool,
                 scratch: Path):
        self.host = host
        instance = f"compare-baseline-{uuid.uuid4().hex[:8]}"
        self.work = host.WORK_ROOT / f"{name}-{instance}"  # where the host copies it
        host.configure_logging()
        self.service, _, _ = host.load(archive, self.work, name, 0 if gpu else None,
                                       max(1, batch_size))

    def decode(self, payloads: list[dict]) -> list:
        """The frontend's frame of these requests, read back by TorchServe's decoder."""
        from ts.protocol.otf_message_handler import retrieve_msg

        framed = [{"id": uuid.uuid4().hex,
                   "headers": {**p["headers"], "explain": "False", "url_path": ""},
                   "parameters": self.host.parameters(p["body"], p["content_type"])}
                  for p in payloads]
        return retrieve_msg(self.host._Frames(self.host.predict_frame(framed)))[1]

    def answer(self, payloads: list[dict]) -> list[tuple[int, str, dict, bytes]]:
        return self.host.answer(self.service, [(p["body"], p["content_type"], p["headers"])
                                               for p in payloads])

    def handler(self):
        """The handler object of a class handler with the BaseHandler stages, else None."""
        owner = getattr(self.service._entry_point, "__self__", None)
        stages = ("preprocess", "inference", "postprocess")
        return owner if owner is not None and all(callable(getattr(owner, s, None))
                                                  for s in stages) else None


def time_calls(fn, budget_s: float = BUDGET_S) -> list[float]:
    """Seconds per call: warm up briefly, then at least MIN_ITERATIONS calls or budget_s,
    at most MAX_ITERATIONS calls or HARD_CAP_S."""
    warm_until = time.perf_counter() + WARMUP_S
    for i in range(WARMUP_MAX):
        fn()
        if i >= 1 and time.perf_counter() > warm_until:
            break
    out: list[float] = []
    start = time.perf_counter()
    while len(out) < MAX_ITERATIONS:
        elapsed = time.perf_counter() - start
        if (len(out) >= MIN_ITERATIONS and elapsed > budget_s) or \
                (len(out) >= 3 and elapsed > HARD_CAP_S):
            break
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def stats_us(samples_s: list[float]) -> dict:
    import numpy as np

    values = np.asarray(samples_s) * 1e6
    return {"n": len(values), "p50_us": round(float(np.percentile(values, 50)), 2),
            "p90_us": round(float(np.percentile(values, 90)), 2),
            "p99_us": round(float(np.percentile(values, 99)), 2)}


class RoundRobin:
    def __init__(self, items: list):
        self.items, self.i = items, -1

    def next(self, n: int = 1) -> list:
        out = []
        for _ in range(n):
            self.i = (self.i + 1) % len(self.items)
            out.append(self.items[self.i])
        return out


def measure(request: dict, scratch: Path) -> dict:
    import torch

    chosen = set(request["samples"])
    found = [s for s in samples_mod.load(Path(request["samples_dir"])) if s.name in chosen]
    batch_sizes = sorted(set(request["batch_sizes"]) | {1})
    gpu = bool(request.get("gpu")) and torch.cuda.is_available()
    loaded = Loaded(load_host(), Path(request["archive"]), request["model_name"],
                    max(batch_sizes), gpu, scratch)
    try:
        timing = Timing(loaded, found, float(request.get("budget_s", BUDGET_S)))
        return {"device": "cuda" if gpu else "cpu", "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "handler": ((loaded.service.context.manifest or {}).get("model") or {}).get(
                    "handler"), **timing.run(batch_sizes)}
    finally:
        os.chdir(scratch)  # the host works in its copy of the archive, as a worker does
        shutil.rmtree(loaded.work, ignore_errors=True)


class Timing:
    def __init__(self, loaded: Loaded, found: list[samples_mod.Sample], budget_s: float):
        self.loaded, self.budget_s = loaded, budget_s
        self.by_name = {s.name: s for s in found}
        self.payloads = [{"name": s.name, "content_type": s.content_type, "body": s.body,
                          "headers": {k: v for k, v in s.request_headers().items()
                                      if k.lower() != "content-type"}} for s in found]

    def timed(self, fn) -> dict:
        return stats_us(time_calls(fn, self.budget_s))

    def run(self, batch_sizes: list[int]) -> dict:
        # Every answer checked once, as the servers' are: a baseline of wrong answers is
        # no baseline.
        wrong = {}
        for p in self.payloads:
            status, _, _, body = self.loaded.answer([p])[0]
            problem = samples_mod.mismatch(self.by_name[p["name"]], status, body)
            if problem:
                wrong[p["name"]] = problem
        cycle = RoundRobin(self.payloads)
        request = self.timed(lambda: self.loaded.answer(cycle.next()))
        rows = [{**request, "batch": 1, "per_row_us": request["p50_us"]}]
        for batch in [b for b in batch_sizes if b > 1]:
            stats = self.timed(lambda batch=batch: self.loaded.answer(cycle.next(batch)))
            rows.append({**stats, "batch": batch,
                         "per_row_us": round(stats["p50_us"] / batch, 2)})
        return {"answers_checked": len(self.payloads), "wrong_answers": wrong,
                "request": request, "batches": rows, "stages": self.stages()}

    def stages(self) -> dict:
        """preprocess, inference and postprocess timed alone on one request each, with the
        context Service.predict would give them."""
        handler, service = self.loaded.handler(), self.loaded.service
        if handler is None:
            return {"note": "not measured: the handler is a function or has no "
                            "preprocess/inference/postprocess"}
        batches = [service.retrieve_data_for_inference(self.loaded.decode([p]))
                   for p in self.payloads]

        def preprocess(batch):
            service.context.request_processor, service.context.request_ids = batch[0], \
                batch[2]
            return handler.preprocess(batch[1])

        try:
            cycle = RoundRobin(batches)
            out = {"preprocess": self.timed(lambda: preprocess(cycle.next()[0]))}
            inputs = [preprocess(b) for b in batches]
            cycle = RoundRobin(inputs)
            out["inference"] = self.timed(lambda: handler.inference(cycle.next()[0]))
            outputs = [handler.inference(x) for x in inputs]
            cycle = RoundRobin(outputs)
            out["postprocess"] = self.timed(lambda: handler.postprocess(cycle.next()[0]))
        except Exception as exc:  # noqa: BLE001 - a handler whose stages do not compose
            return {"note": f"not measured: calling the stages alone failed "
                            f"({type(exc).__name__}: {exc})"}
        return out


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text())
    out = Path(argv[1]).resolve()
    with tempfile.TemporaryDirectory(prefix="byoc-baseline-") as scratch:
        result = measure(request, Path(scratch))
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
