"""The in-process baseline: the model's own cost, so each server's overhead shows.

For a model with a TorchServe archive, the archive is taken from the images that serve it
(TorchServe's .mar, or the Triton host's unpacked copy; both must hold the same files) or
from --mar, and its handler is timed in a separate Python process (inprocess.py) on the
same bodies the servers get. A model with only a Triton repository has no baseline: the
report says "not measured", never a number that was not measured."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from .. import REPO_ROOT, process
from ..console import Console
from ..errors import ByocError
from ..model.spec import ModelSpec
from . import facts as facts_mod

MAX_BATCH = 64  # the baseline times the handler at batch sizes up to this
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b[^:]*: ")
BUDGET_S = 1.5  # per measurement, beyond its minimum of calls (inprocess.time_calls)


def not_measured(reason: str) -> dict:
    return {"measured": False, "note": f"not measured: {reason}"}


def find_archive(model: ModelSpec, facts: dict, scratch: Path) -> tuple[Path | None, str,
                                                                        list[str] | None]:
    """(unpacked archive, where it came from, the files the images' archives do not share:
    None with fewer than two images holding one)."""
    in_images = {server: f for server, f in facts.items() if f.archive is not None}
    differences = None
    if len(in_images) > 1:
        first, *others = [f.archive_files() for f in in_images.values()]
        differences = sorted({name for other in others
                              for name in facts_mod.archive_differences(first, other)})
    for server in ("torchserve", "triton-mar"):
        if server in in_images:
            found = in_images[server]
            return found.archive, f"the {server} image ({found.reference})", differences
    if model.torchserve is not None and model.torchserve.mar is not None:
        folder = facts_mod.unpack_mar(model.torchserve.mar, scratch / "baseline-mar")
        return folder, str(model.torchserve.mar), differences
    return None, "", differences


def failure(output: str) -> str:
    """The exceptions a failed run printed: the first (often the cause: TorchServe's loader
    falls back to its stock handlers when a handler file fails to import) and the last."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if _EXCEPTION.match(line)]
    if not errors:
        return lines[-1] if lines else "no output"
    return "; then ".join(dict.fromkeys((errors[0], errors[-1])))


def batch_sizes(concurrency: tuple[int, ...], server_batches: list[int]) -> list[int]:
    """Batch 1, each concurrency (the most requests a closed loop can have waiting) and each
    server's own largest batch, capped at MAX_BATCH."""
    return sorted({1, *(min(c, MAX_BATCH) for c in concurrency),
                   *(min(b, MAX_BATCH) for b in server_batches)})


def measure(model: ModelSpec, facts: dict, samples_dir: Path, chosen: list[str],
            concurrency: tuple[int, ...], server_batches: list[int], gpu: bool,
            scratch: Path, console: Console) -> dict:
    archive, origin, differences = find_archive(model, facts, scratch)
    sameness = {"same_archive_in_images": None if differences is None else not differences,
            "archive_differences": differences or []}
    if archive is None:
        return not_measured("the model has no TorchServe archive to call in process (a "
                            "Triton repository's backends run only inside tritonserver)")
    sizes = batch_sizes(concurrency, server_batches)
    console.step(f"compare: in-process baseline, the handler of {origin} (batch sizes "
                 f"{', '.join(map(str, sizes))})")
    request = {"archive": str(archive), "model_name": model.name,
               "samples_dir": str(samples_dir), "samples": chosen, "batch_sizes": sizes,
               "gpu": gpu, "budget_s": BUDGET_S}
    request_path, result_path = scratch / "baseline-request.json", scratch / "baseline.json"
    request_path.write_text(json.dumps(request))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        process.run([sys.executable, "-m", "byoc.compare.inprocess", str(request_path),
                     str(result_path)], env=env, cwd=str(scratch),
                    error="the in-process baseline failed")
    except ByocError as exc:
        # The handler may need packages only the image has: say so, measure the rest.
        reason = failure(exc.message)
        console.warn(f"in-process baseline not measured: {reason}")
        return {**not_measured(f"the in-process run failed ({reason})"),
                "archive_origin": origin, **sameness}
    result = json.loads(result_path.read_text())
    if result["wrong_answers"]:
        name, why = next(iter(result["wrong_answers"].items()))
        console.warn(f"in process, {len(result['wrong_answers'])} of "
                     f"{result['answers_checked']} samples got a wrong answer ({name}: {why})")
    if differences:
        console.warn(f"the images' archives differ in {', '.join(differences)}; the baseline "
                     f"times the one from {origin}")
    return {"measured": True, "archive_origin": origin, **sameness,
            **result}
