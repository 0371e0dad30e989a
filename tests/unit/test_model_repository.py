"""byoc.model.repository: Triton model repositories checked before a build with Triton's own
model-config protobuf (tritonclient's model_config_pb2), refusing what tritonserver would
refuse at start, each refusal naming the file and the field; the raw-body convention and
the KServe v2 request a repository's default model takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from byoc.errors import ConfigError
from byoc.model import repository

PYTHON_MODEL = """
name: "{name}"
backend: "python"
max_batch_size: {batch}
input [ {{ name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] }} ]
"""
RAW_MODEL = """
name: "raw"
backend: "python"
input [
  { name: "PAYLOAD" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "CONTENT_TYPE" data_type: TYPE_STRING dims: [ 1 ] optional: true }
]
output [ { name: "RESPONSE" data_type: TYPE_STRING dims: [ 1 ] } ]
"""
ENSEMBLE = """
name: "pipe"
platform: "ensemble"
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ]
ensemble_scheduling { step [
  { model_name: "first" model_version: -1
    input_map { key: "IN" value: "X" } output_map { key: "OUT" value: "mid" } },
  { model_name: "second" model_version: -1
    input_map { key: "IN" value: "mid" } output_map { key: "OUT" value: "Y" } }
] }
"""


def model(repo: Path, folder: str, config: str | None = None, *, versions=("1",),
          batch: int = 0) -> Path:
    path = repo / folder
    path.mkdir(parents=True, exist_ok=True)
    for version in versions:
        (path / version).mkdir()
    if config is not False:
        (path / "config.pbtxt").write_text(
            config if config is not None else PYTHON_MODEL.format(name=folder, batch=batch))
    return path


@pytest.fixture
def pipeline(tmp_path) -> Path:
    """An ensemble of two Python-backend models."""
    repo = tmp_path / "repo"
    model(repo, "first")
    model(repo, "second")
    model(repo, "pipe", ENSEMBLE)
    return repo


def refused(call, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        call(*args, **kwargs)
    assert caught.value.tip
    return caught.value


def check(repo: Path, runtime: str = "pytriton", *, default_model=None, load=()) -> str:
    return repository.check(repository.read(repo), runtime, default_model=default_model,
                            load=tuple(load))


# -- reading ------------------------------------------------------------------------------

def test_a_repository_reads_with_tritons_protobuf(pipeline):
    models = repository.read(pipeline)
    assert list(models) == ["first", "pipe", "second"]
    assert (models["first"].kind, models["pipe"].kind) == ("python", "ensemble")
    assert models["first"].versions == (1,)
    assert models["first"].path == pipeline / "first" / "config.pbtxt"
    assert list(models["pipe"].inputs()) == ["X"] and list(models["pipe"].outputs()) == ["Y"]


def test_versions_are_the_numbered_folders_and_those_the_build_adds(tmp_path):
    repo = tmp_path / "repo"
    model(repo, "m", versions=("3", "1", "latest"))
    assert repository.read(repo)["m"].versions == (1, 3)
    model(repo, "n", versions=())
    assert repository.read(repo, {"n/2/model.onnx", "m/1/weights.pt"})["n"].versions == (2,)


def test_config_at_the_top_of_the_repository(tmp_path):
    (tmp_path / "config.pbtxt").write_text('name: "m"')
    error = refused(repository.read, tmp_path)
    assert "a config.pbtxt at the top of the repository" in error.message
    assert "REPO/NAME/config.pbtxt" in error.message


def test_a_model_folder_without_a_config(tmp_path):
    model(tmp_path, "m", config=False)
    assert f"{tmp_path / 'm'}: model folder without config.pbtxt" in \
        refused(repository.read, tmp_path).message


def test_a_model_folder_without_a_version_folder(tmp_path):
    model(tmp_path, "m", versions=())
    assert f"{tmp_path / 'm'}: no version folder" in refused(repository.read, tmp_path).message


def test_an_ensemble_needs_its_version_folder_too(tmp_path):
    model(tmp_path, "first")
    model(tmp_path, "second")
    model(tmp_path, "pipe", ENSEMBLE, versions=())
    assert "pipe: no version folder" in refused(repository.read, tmp_path).message


def test_a_name_that_differs_from_the_folder(tmp_path):
    model(tmp_path, "folder", 'name: "other"\nbackend: "python"\n')
    error = refused(repository.read, tmp_path)
    assert "config.pbtxt: name: 'other' differs from its folder 'folder'" in error.message
    assert "rename" in error.tip


def test_no_name_takes_the_folders(tmp_path):
    model(tmp_path, "m", 'backend: "python"\n')
    assert list(repository.read(tmp_path)) == ["m"]


@pytest.mark.parametrize("text", ['name: "m"\nbackend: python_not_quoted\n',
                                  'name: "m"\nnot_a_field: 1\n',
                                  'name: "m"\ninput [ { name: "X" data_type: TYPE_NOPE } ]\n'])
def test_a_config_protobuf_refuses(tmp_path, text):
    model(tmp_path, "m", text)
    error = refused(repository.read, tmp_path)
    assert error.message.startswith(f"{tmp_path / 'm' / 'config.pbtxt'}: not a valid Triton "
                                    "model configuration: ")
    assert ":" in error.message.split("configuration: ", 1)[1]  # protobuf's line:column


def test_hidden_and_cache_folders_are_not_models(tmp_path):
    model(tmp_path, "m")
    (tmp_path / ".git").mkdir()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "README.md").write_text("notes")
    assert list(repository.read(tmp_path)) == ["m"]


def test_an_empty_repository(tmp_path):
    assert "no model folder in the repository" in refused(repository.read, tmp_path).message


# -- what Triton would refuse at start ----------------------------------------------------

def test_a_good_ensemble_passes_and_needs_a_default(pipeline):
    assert check(pipeline, default_model="pipe") == "pipe"
    error = refused(check, pipeline)
    assert "3 models in the repository (first, pipe, second) and no default_model" in \
        error.message
    assert "--default-model" in error.tip


def test_one_model_is_the_default(tmp_path):
    model(tmp_path, "only")
    assert check(tmp_path) == "only"


def test_one_loaded_model_is_the_default(pipeline):
    assert check(pipeline, load=["second"]) == "second"


def test_default_model_must_be_a_model_of_the_repository(pipeline):
    error = refused(check, pipeline, default_model="gone")
    assert "default_model 'gone' is not a model of the repository (found: first, pipe, " \
           "second)" in error.message


def test_default_model_must_be_loaded(pipeline):
    assert "default_model 'first' is not in load: second" in \
        refused(check, pipeline, default_model="first", load=["second"]).message


def test_load_names_models_of_the_repository(pipeline):
    assert "load: 'third' is not a model of the repository" in \
        refused(check, pipeline, load=["third"]).message


def test_an_ensemble_step_must_be_loaded(pipeline):
    error = refused(check, pipeline, default_model="pipe", load=["pipe", "first"])
    assert "ensemble_scheduling.step[1]: model_name 'second' is not in load:" in error.message


def ensemble(tmp_path, old: str, new: str) -> Path:
    model(tmp_path, "first")
    model(tmp_path, "second")
    assert old in ENSEMBLE
    model(tmp_path, "pipe", ENSEMBLE.replace(old, new))
    return tmp_path


@pytest.mark.parametrize("old, new, problem", [
    ('model_name: "second"', 'model_name: "third"',
     "step[1]: model_name 'third' is not a model of the repository"),
    ('input_map { key: "IN" value: "mid" }', 'input_map { key: "INPUT" value: "mid" }',
     "step[1]: input_map key 'INPUT' is not an input of second (it has: IN)"),
    ('input_map { key: "IN" value: "mid" }', 'input_map { key: "IN" value: "nothing" }',
     "step[1]: input_map value 'nothing' is neither an ensemble input nor an output of an "
     "earlier step"),
    ('output_map { key: "OUT" value: "Y" }', 'output_map { key: "PROBS" value: "Y" }',
     "step[1]: output_map key 'PROBS' is not an output of second (it has: OUT)"),
    ('output_map { key: "OUT" value: "Y" }', 'output_map { key: "OUT" value: "Z" }',
     "output 'Y' is produced by no step"),
])
def test_ensemble_steps_are_checked_against_their_models(tmp_path, old, new, problem):
    repo = ensemble(tmp_path, old, new)
    error = refused(check, repo, default_model="pipe")
    assert error.message.startswith(str(repo / "pipe" / "config.pbtxt"))
    assert problem in error.message


def test_a_step_may_not_read_an_output_of_a_later_step(tmp_path):
    swapped = ENSEMBLE.replace('value: "X" } output_map { key: "OUT" value: "mid"',
                               'value: "mid" } output_map { key: "OUT" value: "X2"')
    model(tmp_path, "first")
    model(tmp_path, "second")
    model(tmp_path, "pipe", swapped)
    assert "step[0]: input_map value 'mid' is neither" in \
        refused(check, tmp_path, default_model="pipe").message


ONNX = 'name: "clf"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
LIBTORCH = 'name: "clf"\nbackend: "pytorch"\n'


@pytest.mark.parametrize("config, field, value", [(ONNX, "platform", "onnxruntime_onnx"),
                                                  (LIBTORCH, "backend", "pytorch")])
def test_backends_pytriton_lacks_are_refused_with_a_tip_for_ngc(tmp_path, config, field, value):
    model(tmp_path, "clf", config)
    error = refused(check, tmp_path, "pytriton")
    assert f"config.pbtxt: {field}: {value!r} is not in the pytriton runtime (it has: python)" \
        in error.message
    assert "--runtime ngc" in error.tip
    assert check(tmp_path, "ngc") == "clf"  # NVIDIA's image has every backend


def test_an_unknown_backend_is_refused_on_ngc_too(tmp_path):
    model(tmp_path, "m", 'name: "m"\nbackend: "mybackend"\n')
    error = refused(check, tmp_path, "ngc")
    assert "'mybackend' is not in the ngc runtime" in error.message
    assert "--runtime ngc" not in error.tip


def test_unloaded_models_are_not_checked(tmp_path):
    model(tmp_path, "clf", ONNX)
    model(tmp_path, "m")
    assert check(tmp_path, "pytriton", load=["m"]) == "m"


# -- conventions byoc adds ----------------------------------------------------------------

@pytest.mark.parametrize("config, raw", [
    (RAW_MODEL, True),
    (RAW_MODEL.replace("optional: true", ""), True),
    (RAW_MODEL.replace('{ name: "PAYLOAD" data_type: TYPE_STRING',
                       '{ name: "PAYLOAD" data_type: TYPE_UINT8'), False),
    (RAW_MODEL.replace('"RESPONSE" data_type: TYPE_STRING', '"RESPONSE" data_type: TYPE_FP32'),
     False),
    (RAW_MODEL.replace('"RESPONSE"', '"ANSWER"'), False),
    (RAW_MODEL.replace('"PAYLOAD"', '"BODY"'), False),
    (PYTHON_MODEL.format(name="raw", batch=0), False),
])
def test_takes_raw_body(tmp_path, config, raw):
    model(tmp_path, "raw", config)
    assert repository.read(tmp_path)["raw"].takes_raw_body() is raw


def test_the_example_ensemble_takes_raw_bodies(tmp_path):
    """triton_backends/digits/digits: the ensemble's config, rendered as the build does."""
    text = (Path(__file__).resolve().parents[2] / "triton_backends" / "digits" / "digits"
            / "config.pbtxt.j2").read_text()
    assert "{{" not in text  # no template values in the ensemble itself
    model(tmp_path, "digits", text)
    assert repository.read(tmp_path)["digits"].takes_raw_body()


def test_requirement_files_are_per_model_and_follow_load(pipeline):
    (pipeline / "first" / "requirements.txt").write_text("numpy\n")
    (pipeline / "second" / "requirements.txt").write_text("scipy\n")
    models = repository.read(pipeline)
    assert repository.requirement_files(pipeline, models, ()) == [
        pipeline / "first" / "requirements.txt", pipeline / "second" / "requirements.txt"]
    assert repository.requirement_files(pipeline, models, ("second", "pipe")) == [
        pipeline / "second" / "requirements.txt"]


def kserve(tmp_path, config: str) -> dict:
    model(tmp_path, "m", config)
    return json.loads(repository.kserve_request(repository.read(tmp_path)["m"]))


def test_kserve_request_shapes_follow_dims_and_batching(tmp_path):
    request = kserve(tmp_path, """
name: "m"
backend: "python"
max_batch_size: 16
input [
  { name: "IMAGE" data_type: TYPE_FP32 dims: [ 3, -1, 2 ] },
  { name: "MASK" data_type: TYPE_BOOL dims: [ 2 ] },
  { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "IDS" data_type: TYPE_INT64 dims: [ 2 ] },
  { name: "HINT" data_type: TYPE_FP32 dims: [ 1 ] optional: true }
]
""")
    assert request == {"inputs": [
        {"name": "IMAGE", "shape": [1, 3, 1, 2], "datatype": "FP32", "data": [0] * 6},
        {"name": "MASK", "shape": [1, 2], "datatype": "BOOL", "data": [False, False]},
        {"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": [""]},
        {"name": "IDS", "shape": [1, 2], "datatype": "INT64", "data": [0, 0]},
    ]}  # the optional input is left out


def test_kserve_request_without_batching_has_no_batch_dimension(tmp_path):
    request = kserve(tmp_path, PYTHON_MODEL.format(name="m", batch=0))
    assert request == {"inputs": [{"name": "IN", "shape": [4], "datatype": "FP32",
                                   "data": [0, 0, 0, 0]}]}


@pytest.mark.parametrize("triton_type, kserve_type", [
    ("TYPE_UINT8", "UINT8"), ("TYPE_INT8", "INT8"), ("TYPE_INT16", "INT16"),
    ("TYPE_INT32", "INT32"), ("TYPE_UINT64", "UINT64"), ("TYPE_FP16", "FP16"),
    ("TYPE_FP64", "FP64"), ("TYPE_BF16", "BF16"), ("TYPE_STRING", "BYTES")])
def test_kserve_request_datatypes(tmp_path, triton_type, kserve_type):
    config = f'name: "m"\ninput [ {{ name: "X" data_type: {triton_type} dims: [ 1 ] }} ]\n'
    assert kserve(tmp_path, config)["inputs"][0]["datatype"] == kserve_type
