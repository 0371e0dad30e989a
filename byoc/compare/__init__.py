"""`build.py compare`: which server serves this model better, measured side by side.

    model (describe) -> servers.py: which servers, their images (build + tag, or reuse)
      -> facts.py: each image's labels, settings (settings.py), sizes (sizes.py), archive
      -> baseline.py: the handler called in process (inprocess.py), when there is an archive
      -> measure.py, one server at a time: docker run as SageMaker does, first correct
         answer, one closed-loop step per concurrency (byoc.loadgen) with probes.py
      -> summary.py -> byoc.report: compare.md, compare.json, compare.png

The request bodies are the model's samples (bodies.py); docs/compare.md tells how to read
the report."""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .. import config, launcher, report
from ..console import Console
from ..errors import ExitStatus, UsageError
from ..model import describe
from ..model import samples as samples_mod
from ..model.spec import ModelSpec
from . import baseline, bodies, facts, measure, probes, servers, settings, summary
from .options import CompareOptions, check, command_line

__all__ = ["CompareOptions", "run"]


def resolve_model(options: CompareOptions) -> ModelSpec:
    """The model: the model options, else the images config's default model."""
    variant = options.variant or ("gpu" if options.gpu else "cpu")
    specs = config.load(options.config)
    default = next((s.model for s in specs.values() if s.variant == variant and s.model),
                   None)
    return describe.from_options(options.model, options.config.parent, default)


def load_samples(model: ModelSpec, references: dict[str, str],
                 scratch: Path) -> tuple[Path, str]:
    """(the samples folder, where it came from): the model's, else those baked in an image."""
    if model.samples is not None:
        return model.samples, str(model.samples)
    for reference in references.values():
        folder = facts.baked_samples(reference, scratch / "samples")
        if folder is not None and any(folder.iterdir()):
            return folder, f"/opt/byoc/samples in {reference}"
    raise UsageError(f"model {model.name!r} has no samples: compare sends them as requests",
                     "pass --samples DIR (request bodies with NAME.EXT.yaml expectations; "
                     "docs/models.md)")


def _model_section(model: ModelSpec, chosen_servers: list[str], found: dict,
                   samples_origin: str, chosen, left_out: list[str]) -> dict:
    return {"name": model.name, "origin": model.origin,
            "kinds": {s: found[s].model_kind for s in chosen_servers},
            "samples_origin": samples_origin, "samples": [s.name for s in chosen],
            "left_out": left_out, "mix": bodies.describe_mix(chosen)}


def run(options: CompareOptions, console: Console) -> int:
    check(options)
    started = time.monotonic()
    model = resolve_model(options)
    chosen_servers = servers.choose(model, options.servers, console)
    console.step(f"compare: model {model.name} ({model.origin}) on "
                 f"{', '.join(report.name(s) for s in chosen_servers)}")
    planned = servers.plan(model, chosen_servers, options)
    references = servers.images(planned, options, console)
    dock = launcher.client()
    with tempfile.TemporaryDirectory(prefix="byoc-compare-") as tmp:
        scratch = Path(tmp)
        samples_dir, samples_origin = load_samples(model, references, scratch)
        chosen, left_out = bodies.choose(samples_mod.load(samples_dir), options.body,
                                         samples_origin)
        payloads = bodies.payloads(chosen)
        console.step("compare: image facts")
        found = {}
        for server, reference in references.items():
            found[server] = facts.image_facts(dock, server, reference, scratch / server,
                                              console)
            size = found[server].size
            console.info(f"{report.name(server)}: {reference}: "
                         f"{size['uncompressed_bytes'] / 1e9:.2f} GB, "
                         f"{size['compressed_bytes'] / 1e9:.2f} GB compressed; "
                         f"{settings.settings_line(server, found[server].settings)}")
        batches = [settings.largest_batch(s, found[s].settings)
                   for s in ("torchserve", "triton-mar") if s in found]
        base = baseline.measure(model, found, samples_dir, [s.name for s in chosen],
                                options.concurrency, batches, options.gpu, scratch, console)
        if base["measured"]:
            console.info(f"in-process request p50 {base['request']['p50_us']:.0f} us "
                         f"({base['threads']} torch threads, {base['device']})")
        doc = {
            "schema": 2, "command": command_line(options),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": probes.machine_facts(dock),
            "model": _model_section(model, chosen_servers, found, samples_origin, chosen,
                                    left_out),
            "load": {"model": "closed loop", "concurrency": list(options.concurrency),
                     "duration_s": options.duration_s, "max_requests": options.max_requests,
                     "warmup": options.warmup, "timeout_s": options.timeout_s,
                     "body": options.body, "gpu": options.gpu,
                     "payloads": [{"sample": p.expected.name, "content_type": p.content_type,
                                   "bytes": len(p.body)} for p in payloads]},
            "baseline": base,
            "servers": [measure.measure_server(found[s], options, payloads, console)
                        for s in chosen_servers],
        }
    doc["summary"] = summary.summarize(doc)
    doc["seconds"] = round(time.monotonic() - started, 1)
    written = report.write(doc, options.out, console)
    print(report.markdown(doc), flush=True)
    console.ok(f"compare written: {', '.join(str(p) for p in written)} "
               f"({doc['seconds']:.0f} s)")
    errors = sum(st["errors"] for s in doc["servers"] for st in s["steps"])
    if errors:
        console.warn(f"{errors} requests failed (see the errors column); the numbers stand, "
                     "but check the servers' logs")
    return ExitStatus.OK
