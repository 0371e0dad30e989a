"""C18: the multi-models label only where Triton's multi-model load can serve the model.

Triton's SageMaker multi-model load (sagemaker_server.cc) loads one model folder of the
archive, or its ensemble with the ensemble's steps; models a BLS pipeline calls are not
loaded there, and its invocations fail. So byoc declares the capability for a single
model or an ensemble covering the repository, and not for a BLS pipeline (issue 11's
wordscore repository, which the multi-model check C25 failed before)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dockerfiles import labels_of

from byoc import IMAGES_DIR, REPO_ROOT, config, render
from byoc.model import describe

MULTI_MODELS = "com.amazonaws.sagemaker.capabilities.multi-models"
WORDSCORE = REPO_ROOT / "tests" / "fixtures" / "models" / "wordscore"


@pytest.fixture(scope="module")
def triton_cpu() -> config.ImageSpec:
    return config.load()["triton-cpu"]


def labels(spec, model, out: Path) -> dict[str, str]:
    return labels_of(render.render_context(spec, model, out).dockerfile.read_text())


def repository_model(path: Path, default: str) -> describe.ModelSpec:
    return describe.from_options(describe.ModelOptions(model_repository=str(path),
                                                       default_model=default),
                                 IMAGES_DIR, None)


def test_c18_bls_pipeline_is_not_declared_multi_model(triton_cpu, tmp_path):
    found = labels(triton_cpu, repository_model(WORDSCORE, "pipeline"), tmp_path / "ctx")
    assert MULTI_MODELS not in found
    assert found["dev.byoc.multi-model"] == "false"
    assert "no ensemble" in found["dev.byoc.multi-model-reason"]


def test_c18_ensemble_of_every_model_is_declared_multi_model(triton_cpu, tmp_path):
    digits = describe.load(IMAGES_DIR / "models" / "digits.yaml")
    found = labels(triton_cpu, digits, tmp_path / "ctx")
    assert found[MULTI_MODELS] == "true" and found["dev.byoc.multi-model"] == "true"


def test_c18_single_model_is_declared_multi_model(triton_cpu, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(WORDSCORE / "tokens", repo / "tokens")
    found = labels(triton_cpu, repository_model(repo, "tokens"), tmp_path / "ctx")
    assert found[MULTI_MODELS] == "true"


def test_c18_ensemble_with_a_model_outside_its_steps_is_not(triton_cpu, tmp_path):
    """An ensemble whose step calls another model with BLS: that model is no step."""
    repo = tmp_path / "repo"
    shutil.copytree(WORDSCORE, repo)
    (repo / "front" / "1").mkdir(parents=True)
    (repo / "front" / "config.pbtxt").write_text('''name: "front"
platform: "ensemble"
max_batch_size: 0
input [ { name: "PAYLOAD" data_type: TYPE_STRING dims: [ 1 ] },
        { name: "CONTENT_TYPE" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "RESPONSE" data_type: TYPE_STRING dims: [ 1 ] } ]
ensemble_scheduling { step [ {
  model_name: "pipeline" model_version: -1
  input_map { key: "PAYLOAD" value: "PAYLOAD" }
  input_map { key: "CONTENT_TYPE" value: "CONTENT_TYPE" }
  output_map { key: "RESPONSE" value: "RESPONSE" } } ] }
''')
    found = labels(triton_cpu, repository_model(repo, "front"), tmp_path / "ctx")
    assert MULTI_MODELS not in found
    assert "scorer, tokens not a step of the ensemble front" in \
        found["dev.byoc.multi-model-reason"]
