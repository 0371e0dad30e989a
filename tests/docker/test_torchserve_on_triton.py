"""The exit path off TorchServe: one .mar served by TorchServe and by Triton's host of
archives (triton_backends/torchserve_host) answers every request the same way.

Same status, same Content-Type and the same bytes for every sample, and the same JSON
error for every malformed variant of each sample's type (the handler's own refusals,
through TorchServe's frontend on one side and the host on the other)."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pytest
import requests
from conftest import build_image, example_model, package_model

from byoc import launcher
from byoc.model import describe, samples


def served(image: str, bodies: list[tuple[str, bytes, dict]]) -> list[tuple]:
    """(status, content type, body) of each request, from a container of the image."""
    answers = []
    with launcher.launched(image, name_hint="byoc-test") as running, requests.Session() as http:
        running.wait_ready(240)
        for _, body, headers in bodies:
            response = http.post(f"{running.url}/invocations", data=body, headers=headers,
                                 timeout=60)
            answers.append((response.status_code, response.headers.get("Content-Type"),
                            response.content))
    return answers


def requests_of(sample_list: list[samples.Sample]) -> list[tuple[str, bytes, dict]]:
    """Every sample, and the malformed variants of each content type they use."""
    found = [(s.name, s.body, s.request_headers()) for s in sample_list]
    seen = set()
    for s in sample_list:
        kind = samples.media_type(s.content_type)
        if kind in seen:
            continue
        seen.add(kind)
        found += [(f"{kind} {name}", body, {"Content-Type": s.content_type})
                  for name, body in samples.malformed(kind, s.body) if body]
    return found


MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def same_answers(mar: Path, sample_folder: Path, tag: str, torchserve_image: str) -> list:
    """Build the .mar for Triton (and, unless given, for TorchServe), send both every
    request, and return the answers where they differ (empty: identical)."""
    hosted = describe.from_options(
        describe.ModelOptions(mar=str(mar), samples=str(sample_folder)), Path("."), None)
    triton_image = build_image("triton", model=hosted, tag=f"byoc-test/triton-mar:{tag}")
    torchserve_image = torchserve_image or build_image(
        "torchserve", model=hosted, tag=f"byoc-test/torchserve-mar:{tag}")
    bodies = requests_of(samples.load(sample_folder))
    on_torchserve = served(torchserve_image, bodies)
    on_triton = served(triton_image, bodies)
    statuses = sorted({answer[0] for answer in on_triton})
    assert 200 in statuses and any(400 <= s < 500 for s in statuses), statuses
    return [f"{name}: {a[:2]} {a[2][:80]!r} vs {b[:2]} {b[2][:80]!r}"
            for (name, _, _), a, b in zip(bodies, on_torchserve, on_triton, strict=True)
            if a != b]


@pytest.fixture(scope="module")
def digits_mar(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digits-mar")
    with tarfile.open(package_model("torchserve", folder)) as archive:
        archive.extractall(folder, filter="data")
    return folder / "digits.mar"


def test_c07_digits_mar_answers_alike_on_torchserve_and_triton(digits_mar, torchserve_image):
    differences = same_answers(digits_mar, example_model().samples, "digits", torchserve_image)
    assert not differences, "\n".join(differences)


def test_c07_transformers_mar_answers_alike_on_torchserve_and_triton(tmp_path_factory):
    """A .mar whose handler needs transformers (declared in the archive's requirements),
    built from seeded random weights (tests/fixtures/models/bert_reviews)."""
    sys.path.insert(0, str(MODELS))
    try:
        from bert_reviews import build_model
    finally:
        sys.path.remove(str(MODELS))
    folder = tmp_path_factory.mktemp("text-classifier")
    weights = build_model.write_model(folder / "weights")
    mar = build_model.archive(weights, folder)
    sample_folder = build_model.write_samples(weights, folder / "samples")
    differences = same_answers(mar, sample_folder, "textclf", None)
    assert not differences, "\n".join(differences)
