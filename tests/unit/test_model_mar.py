"""byoc.model.mar: .mar archives read on the host before any build (made by the real
torch-model-archiver, or broken by hand with zipfile), and the features the Triton host of
TorchServe archives cannot serve, found with the file and line that use them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from archiving import make_mar

from byoc.errors import ConfigError
from byoc.model import mar

HANDLER = '''\
from ts.torch_handler.base_handler import BaseHandler


class Echo(BaseHandler):
    def initialize(self, context):
        self.initialized = True

    def handle(self, data, context):
        return [row.get("body") for row in data]
'''


def archive_with(tmp_path: Path, handler: str = HANDLER, **files) -> Path:
    """A .mar of one handler.py plus files (name -> text), by the real archiver."""
    return make_mar(tmp_path, "echo", "handler.py", {"handler.py": handler, **files},
                    extra=[n for n in files if n.endswith(".py")])


def zip_mar(path: Path, entries: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def manifest(**model) -> str:
    return json.dumps({"runtime": model.pop("runtime", "python"),
                       "model": {"modelName": "m", "handler": "handler.py", **model}})


def refusal(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        mar.read(path)
    assert caught.value.tip
    return caught.value


# -- reading archives ---------------------------------------------------------------------

def test_an_archive_made_by_torch_model_archiver_reads_back_whole(tmp_path):
    path = make_mar(tmp_path, "reviews", "handler.py",
                    {"handler.py": HANDLER, "weights.bin": b"\x00\x01", "vocab.txt": "a\nb\n",
                     "requirements.txt": "numpy==2.1.0\n# a comment\n",
                     "model-config.yaml": "batchSize: 4\nmaxBatchDelay: 20\n"},
                    serialized="weights.bin", extra=["vocab.txt"], config="model-config.yaml",
                    requirements="requirements.txt", version="2.5")
    info = mar.read(path)
    assert (info.path, info.model_name, info.version, info.handler, info.runtime) == (
        path, "reviews", "2.5", "handler.py", "python")
    assert info.requirements == "numpy==2.1.0\n# a comment\n"
    assert info.config == {"batchSize": 4, "maxBatchDelay": 20}
    assert set(info.names) == {"handler.py", "weights.bin", "vocab.txt", "requirements.txt",
                               "model-config.yaml"}  # everything but the manifest
    # Read: the Python files, requirements and config; never the weights (GBs, often).
    assert set(info.files) == {"handler.py", "requirements.txt", "model-config.yaml"}
    assert set(info.python_sources()) == {"handler.py"}


def test_a_module_function_handler_is_read_as_the_archiver_wrote_it(tmp_path):
    path = make_mar(tmp_path, "fn", "entry.py",
                    {"entry.py": "def run(data, ctx):\n    return []\n"}, function="run")
    info = mar.read(path)
    assert info.handler == "entry:run" and info.requirements == "" and info.config == {}


def test_names_and_versions_default_like_torchserve(tmp_path):
    info = mar.read(zip_mar(tmp_path / "stem.mar",
                            {mar.MANIFEST: json.dumps({"model": {"handler": "h.py"}})}))
    assert (info.model_name, info.version, info.runtime) == ("stem", "1.0", "python")


def test_not_a_zip(tmp_path):
    path = tmp_path / "broken.mar"
    path.write_bytes(b"PK\x03\x04 but no zip")
    assert "not a TorchServe model archive: not a zip file" in refusal(path).message


def test_no_manifest(tmp_path):
    error = refusal(zip_mar(tmp_path / "m.mar", {"handler.py": ""}))
    assert f"no {mar.MANIFEST}" in error.message and "torch-model-archiver" in error.tip


@pytest.mark.parametrize("text", ["{nope", b"\xff\xfe{}"])
def test_bad_json_manifest(tmp_path, text):
    error = refusal(zip_mar(tmp_path / "m.mar", {mar.MANIFEST: text}))
    assert f"{mar.MANIFEST} is not valid JSON" in error.message


@pytest.mark.parametrize("text", ['{"model": {}}', '{"runtime": "python"}', "[1, 2]",
                                  '{"model": {"handler": ""}}'])
def test_a_manifest_without_a_handler(tmp_path, text):
    assert "names no model.handler" in refusal(zip_mar(tmp_path / "m.mar",
                                                       {mar.MANIFEST: text})).message


def test_a_named_requirements_file_must_be_in_the_archive(tmp_path):
    path = zip_mar(tmp_path / "m.mar", {mar.MANIFEST: manifest(requirementsFile="req.txt")})
    assert "names requirementsFile 'req.txt', which the archive lacks" in refusal(path).message


def test_a_named_config_file_must_be_in_the_archive(tmp_path):
    path = zip_mar(tmp_path / "m.mar", {mar.MANIFEST: manifest(configFile="model-config.yaml")})
    assert "names configFile 'model-config.yaml', which the archive lacks" in \
        refusal(path).message


@pytest.mark.parametrize("config, problem", [("batchSize: [unclosed", "is not valid YAML"),
                                             ("- a\n- b\n", "must be a mapping")])
def test_a_broken_config_file_names_itself(tmp_path, config, problem):
    path = zip_mar(tmp_path / "m.mar", {mar.MANIFEST: manifest(configFile="c.yaml"),
                                        "c.yaml": config})
    assert f"c.yaml {problem}" in refusal(path).message


def test_workflow_archives_are_refused(tmp_path):
    path = zip_mar(tmp_path / "pipeline.war", {"workflow.yaml": "models: {}"})
    error = refusal(path)
    assert "workflow archives (.war) are not supported" in error.message
    assert "ensemble" in error.tip


@pytest.mark.parametrize("runtime", ["LSP", "java"])
def test_non_python_runtimes_are_refused(tmp_path, runtime):
    error = refusal(zip_mar(tmp_path / "m.mar", {mar.MANIFEST: manifest(runtime=runtime)}))
    assert f"runtime {runtime!r}: byoc serves Python handlers only" in error.message
    assert "--runtime python" in error.tip


def test_python3_runtime_is_python(tmp_path):
    assert mar.read(zip_mar(tmp_path / "m.mar",
                            {mar.MANIFEST: manifest(runtime="python3")})).runtime == "python3"


def test_read_config_reads_a_config_file_on_disk(tmp_path):
    path = tmp_path / "model-config.yaml"
    path.write_text("minWorkers: 2\nhandler:\n  threshold: 0.5\n")
    assert mar.read_config(path) == {"minWorkers": 2, "handler": {"threshold": 0.5}}
    path.write_text("")
    assert mar.read_config(path) == {}


# -- what the Triton host cannot serve ----------------------------------------------------

STREAMING = '''\
from ts.handler_utils.utils import send_intermediate_predict_response


def handle(data, context):
    for token in ("a", "b"):
        send_intermediate_predict_response([token], context.request_ids, "ok", 200, context)
    return ["done"]
'''


def features(tmp_path, handler: str = HANDLER, config: str | None = None,
             **files) -> list[str]:
    if config is not None:
        files["model-config.yaml"] = config
    path = make_mar(tmp_path, "m", "handler.py", {"handler.py": handler, **files},
                    extra=[n for n in files if n != "model-config.yaml"],
                    config="model-config.yaml" if config is not None else None)
    return mar.unsupported_features(mar.read(path))


def test_a_plain_handler_has_nothing_unsupported(tmp_path):
    assert features(tmp_path) == []


def test_streaming_is_found_with_file_and_line(tmp_path):
    assert features(tmp_path, STREAMING) == [
        "streaming responses (send_intermediate_predict_response) in handler.py line 1",
        "streaming responses (send_intermediate_predict_response) in handler.py line 6"]


@pytest.mark.parametrize("call, label", [
    ('context.metrics.add_counter("Hits", 1)', "custom metrics (context.metrics.add_counter)"),
    ("metrics.add_time('t', 1.0)", "custom metrics (context.metrics.add_time)"),
    ('self.context.metrics.add_metric("m", 1, "ms")',
     "custom metrics (context.metrics.add_metric)"),
    ("m = context.metrics.get_metric('x')", "custom metrics (context.metrics.get_metric)"),
    ("if context.stopping_criteria: pass", "streaming stopping criteria"),
    ("sid = context.get_sequence_id(0)", "stateful sequence batching (context.get_sequence_id)"),
    ('sid = headers["ts_request_sequence_id"]', "stateful sequence batching"),
])
def test_code_features_are_found_in_the_handler(tmp_path, call, label):
    handler = HANDLER + f"\n\ndef extra(context, headers):\n    {call}\n"
    found = features(tmp_path, handler)
    assert len(found) == 1 and found[0].startswith(label)
    assert found[0].endswith("in handler.py line 13")


def test_features_in_extra_python_files_are_found_too(tmp_path):
    helper = "def stream(context):\n    x = 1\n    send_intermediate_predict_response([], 1)\n"
    found = features(tmp_path, **{"helpers.py": helper})
    assert found == ["streaming responses (send_intermediate_predict_response) "
                     "in helpers.py line 3"]


def test_comments_do_not_count(tmp_path):
    handler = HANDLER + "\n# context.metrics.add_counter('x', 1) would need TorchServe\n"
    assert features(tmp_path, handler) == []


@pytest.mark.parametrize("config, label", [
    ("parallelType: pp\n", "multi-process parallelism (parallelType: torchrun)"),
    ("torchrun:\n  nproc-per-node: 2\n", "multi-process parallelism (torchrun:)"),
    ("continuousBatching: true\n", "continuous batching (continuousBatching)"),
    ("sequenceBatching: true\n", "stateful sequence batching (sequenceBatching)"),
    ("stateful: true\n", "stateful sequence batching (stateful)"),
    ("sequenceMaxIdleMSec: 60000\n", "stateful sequence batching (sequenceMaxIdleMSec)"),
    ("useJobTicket: true\n", "job tickets (useJobTicket)"),
    ("asyncCommunication: true\n", "asynchronous worker communication (asyncCommunication)"),
    ("deviceType: neuron\n", "deviceType 'neuron' in model-config.yaml (cpu and gpu only)"),
])
def test_config_features_are_found_in_model_config(tmp_path, config, label):
    found = features(tmp_path, config=config)
    assert len(found) == 1 and found[0].startswith(label)
    assert "model-config.yaml" in found[0]


@pytest.mark.parametrize("config", ["continuousBatching: false\n", "stateful: false\n",
                                    "parallelType: ''\n", "deviceType: gpu\n",
                                    "deviceType: CPU\n", "batchSize: 8\nminWorkers: 2\n",
                                    "useJobTicket: 'false'\n"])
def test_settings_that_are_off_or_supported_are_not_refused(tmp_path, config):
    assert features(tmp_path, config=config) == []


def test_every_feature_is_listed(tmp_path):
    found = features(tmp_path, STREAMING, config="stateful: true\ntorchrun: {}\n"
                     "parallelType: tp\n")
    assert len(found) == 5  # two code lines and three settings


# -- the archive's own batching, for the Triton host --------------------------------------

def test_batch_settings_map_torchserves_names():
    assert mar.batch_settings({"batchSize": 8, "maxBatchDelay": 50, "minWorkers": 2,
                               "responseTimeout": 30, "maxWorkers": 4}) == {
        "batch_size": 8, "max_batch_delay_ms": 50, "workers": 2, "timeout_s": 30}


@pytest.mark.parametrize("value", [0, -1, True, "8", 2.5, None])
def test_batch_settings_ignore_values_that_are_not_positive_whole_numbers(value):
    assert mar.batch_settings({"batchSize": value}) == {}
