"""The request bodies every server gets: the model's samples, in one fixed order.

`--body mix` sends every sample round robin; `--body EXT` only those whose file name ends
in .EXT. A sample that expects a status other than 200 (a deliberate bad request, for
verify) is left out: a load step measures answers, not refusals. A correct answer is one
`samples.mismatch` finds nothing wrong with (a sample without an expectation: its status)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import PurePath

from ..errors import UsageError
from ..loadgen import Payload
from ..model import samples as samples_mod

MIX = "mix"


def extension(sample: samples_mod.Sample) -> str:
    return PurePath(sample.name).suffix.lstrip(".").lower()


def choose(found: list[samples_mod.Sample], body: str, origin: str) -> tuple[
        list[samples_mod.Sample], list[str]]:
    """The samples to send, and the names of those left out (with why)."""
    left_out = [f"{s.name} (expects status {s.status})" for s in found if s.status != 200]
    usable = [s for s in found if s.status == 200]
    if body != MIX:
        wanted = body.lower().lstrip(".")
        chosen = [s for s in usable if extension(s) == wanted]
        if not chosen:
            kinds = sorted({extension(s) for s in usable}) or ["none"]
            raise UsageError(f"--body {body}: no sample of {origin} ends in .{wanted} "
                             f"(they end in: {', '.join(kinds)})",
                             "use --body mix (all samples) or one of those extensions")
        return chosen, left_out
    if not usable:
        raise UsageError(f"no sample of {origin} expects a 200 answer: nothing to measure",
                         "add request bodies the model answers (docs/models.md, samples)")
    return usable, left_out


def payloads(chosen: list[samples_mod.Sample]) -> list[Payload]:
    """One payload per sample; the sample itself is what check() compares against."""
    out = []
    for sample in chosen:
        headers = tuple((k, v) for k, v in sample.request_headers().items()
                        if k.lower() != "content-type")
        out.append(Payload(sample.content_type, sample.body, expected=sample, headers=headers))
    return out


def check(payload: Payload, status: int, body: bytes) -> str | None:
    """None for a correct answer, else a short error kind for the report."""
    sample = payload.expected
    problem = samples_mod.mismatch(sample, status, body)
    if problem is None:
        return None
    if problem.startswith("status "):
        return f"status {status}"
    return f"wrong answer ({sample.name})"


def describe_mix(chosen: list[samples_mod.Sample]) -> list[dict]:
    """Per content type: how many samples and how many bytes, for the report."""
    sizes: dict[str, list[int]] = defaultdict(list)
    for sample in chosen:
        sizes[samples_mod.media_type(sample.content_type)].append(len(sample.body))
    counts = Counter({k: len(v) for k, v in sizes.items()})
    return [{"content_type": kind, "samples": counts[kind], "min_bytes": min(sizes[kind]),
             "max_bytes": max(sizes[kind]), "total_bytes": sum(sizes[kind])}
            for kind in sorted(sizes)]
