"""Contract checks about the model's answers, driven by its samples.

C07 sends every sample and checks each answer (without samples: a Triton model gets a
KServe v2 request built from its config; a TorchServe model is "not checked"). C09 and
C11 use the content types the samples use: a 6 MiB request grown from a sample where
the type allows, malformed variants of each type. C27 asks the server where it placed
the model."""

from __future__ import annotations

import json
import time

from .. import launcher
from ..model import samples as samples_mod
from .report import NOT_APPLICABLE, NOT_CHECKED
from .session import Session, is_json_error

SIX_MIB = 6 * 1024 * 1024
UNSUPPORTED_TYPE = "application/x-byoc-unsupported"
UNACCEPTABLE = "application/x-byoc-unacceptable"


def answers(s: Session, running: launcher.Running) -> float | None:
    """C07 over every known request; returns seconds from docker run to the first
    correct answer."""
    first: list[float] = []
    requests = s.known_requests()
    if not requests:
        s.record("C07", "every sample answered as expected", NOT_CHECKED,
                 "NO SAMPLES: the answers of this TorchServe model were not checked; give "
                 "the model samples (samples: in its description, or --samples DIR)")
        return None

    def check():
        wrong = []
        for request in requests:
            response = s.send(running, request)
            problem = request.wrong(response.status_code, response.content)
            if problem is None and not first:
                first.append(time.monotonic() - running.started_at)
            if problem:
                wrong.append(f"{request.name}: {problem}")
        kinds = sorted({samples_mod.media_type(r.content_type) for r in requests})
        detail = (f"{len(requests) - len(wrong)}/{len(requests)} answered as expected "
                  f"({', '.join(kinds)}; from {s.target.samples_origin})")
        return not wrong, detail + (f"; wrong: {'; '.join(wrong[:3])}" if wrong else "")

    s.check("C07", "every sample answered as expected", check)
    return first[0] if first else None


def unsupported_types(s: Session, running: launcher.Running) -> None:
    good = s.good_request()

    def check():
        parts, ok = [], True
        r415 = s.post(running, b"byoc", UNSUPPORTED_TYPE)
        if r415.status_code == 415:
            # The front names the types in "supported"; a model that answers 415 itself
            # must at least name one it takes in its message.
            body = r415.json() if is_json_error(r415) else {}
            supported = body.get("supported")
            named = [t for t in _taken_types(s) if t in str(body.get("error", ""))]
            ok &= bool(supported or named)
            parts.append(f"{UNSUPPORTED_TYPE} -> 415 ("
                         + (f"supported: {supported}" if supported else
                            f"the model's own 415 naming {named or 'no type it takes'}") + ")")
        else:
            # Only a model that declares its types (or a KServe-only Triton model) gets a
            # 415 from the front; any other reply must still not be a server error.
            declared = s.target.env.get("BYOC_ACCEPT_CONTENT_TYPES", "")
            ok &= not declared and r415.status_code < 500 and is_json_error(r415)
            why = f"types declared: {declared}" if declared else "the model takes any type"
            parts.append(f"{UNSUPPORTED_TYPE} -> {r415.status_code} ({why})")
        if good is None:
            parts.append("Accept: not checked (no sample)")
            return (NOT_CHECKED if ok else False), "; ".join(parts)
        r406 = s.send(running, good, Accept=UNACCEPTABLE)
        ok &= r406.status_code == 406 and is_json_error(r406)
        parts.append(f"Accept {UNACCEPTABLE} -> {r406.status_code}")
        return ok, "; ".join(parts)

    s.check("C07", "415/406 with JSON naming supported types", check)


def _taken_types(s: Session) -> list[str]:
    declared = [t for t in s.target.env.get("BYOC_ACCEPT_CONTENT_TYPES", "").split(",") if t]
    return declared or sorted({samples_mod.media_type(r.content_type)
                               for r in s.known_requests()})


def payload_limits(s: Session, running: launcher.Running) -> None:
    limit = SIX_MIB
    grown = next(((sample, body) for sample in s.target.samples
                  if sample.status == 200
                  and (body := samples_mod.grow(sample, limit - 4096)) is not None), None)

    def too_big():
        kind = (s.target.samples[0].content_type if s.target.samples else "application/json")
        body = b"0" * (7 * 1024 * 1024)
        response = s.post(running, body, kind)
        ok = response.status_code == 413 and is_json_error(response)
        return ok, f"{len(body)} bytes of {kind} -> {response.status_code}"

    s.check("C09", "a request over the limit gets 413 JSON", too_big)
    if grown is None:
        s.record("C09", "a 6 MiB request is served", NOT_CHECKED,
                 "no sample type can be grown to 6 MiB (JSON lists, .npy arrays and text "
                 "can; images and opaque bytes cannot)")
        return
    sample, body = grown

    def six_mib():
        response = s.post(running, body, sample.content_type, **dict(sample.headers))
        return response.status_code == 200, (f"{len(body)} bytes of {sample.content_type} "
                                             f"(grown from {sample.name}) -> "
                                             f"{response.status_code}")

    s.check("C09", "a 6 MiB request is served", six_mib)


def bad_inputs(s: Session, running: launcher.Running) -> None:
    good = s.good_request()
    if good is None:
        s.record("C11", "malformed requests get 4xx JSON, server keeps serving", NOT_CHECKED,
                 "no request with a known good answer to send after each (give samples)")
        return
    by_type: dict[str, bytes] = {}
    for request in s.known_requests():
        by_type.setdefault(samples_mod.media_type(request.content_type), request.body)

    def check():
        results, ok = [], True
        for kind, body in by_type.items():
            for name, broken in samples_mod.malformed(kind, body):
                response = s.post(running, broken, kind)
                after = s.send(running, good)
                fine = (400 <= response.status_code < 500 and is_json_error(response)
                        and after.status_code == 200)
                ok &= fine
                results.append(f"{kind} {name} {response.status_code}"
                               + ("" if after.status_code == 200 else
                                  f" (then {after.status_code})"))
        return ok, "; ".join(results) + "; the next good request 200 after each"

    s.check("C11", "malformed requests get 4xx JSON, server keeps serving", check)


def placement(s: Session, running: launcher.Running) -> None:
    """C27: with GPUs attached, torch sees them and the server placed the model on one,
    as the server reports it (Triton's model config, TorchServe's worker description)."""
    def torch_sees_gpu():
        result = running.container.exec_run(
            ["python", "-c", "import torch; print(torch.cuda.is_available(), "
             "torch.cuda.device_count(), torch.version.cuda)"])
        text = result.output.decode().strip()
        return text.startswith("True"), f"torch.cuda: {text}"

    s.check("C27", "torch sees the GPU inside the container", torch_sees_gpu)

    def placed():
        result = running.container.exec_run(["python", "-m", "byoc_runtime.placement"])
        if result.exit_code != 0:
            return False, result.output.decode()[-200:]
        found = json.loads(result.output.decode().strip().splitlines()[-1])
        on_gpu = [m for m, where in found.items() if where == "gpu"]
        return bool(found) and len(on_gpu) == len(found), (
            f"{len(on_gpu)}/{len(found)} placed on a GPU, as the server reports: {found}")

    s.check("C27", "model instances placed on the GPU", placed)


def not_provoked(s: Session) -> None:
    s.record("C12", "out-of-memory surfaces as 507", NOT_CHECKED,
             "an out-of-memory fault is not provoked here")
    if not s.options.gpu:
        s.record("C27", "uses the GPU when present", NOT_APPLICABLE,
                 "verified without GPUs (verify --gpu on a GPU host checks it)")
