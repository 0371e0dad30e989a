"""byoc.model.assemble and the flavors' assemble(), through render_context: a user's model
(a .mar, torch-model-archiver inputs, a Triton repository with overlay files and templates)
is checked and laid into the build context before anything is built; its requirements are
merged from every place a model keeps them, and lines that cannot travel into a build are
refused (C15: installed at build time, never at start)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from archiving import make_mar
from dockerfiles import env_of, labels_of, stages
from tritonclient.grpc import model_config_pb2

from byoc import config, render
from byoc.errors import ConfigError
from byoc.flavors import triton as triton_flavor
from byoc.model import assemble, describe, repository

INPUTS = assemble.INPUTS_IN_IMAGE
HANDLER = '''\
from ts.torch_handler.base_handler import BaseHandler


class Reviews(BaseHandler):
    def handle(self, data, context):
        return [{"label": "positive"} for _ in data]
'''


@pytest.fixture(scope="module")
def specs() -> dict[str, config.ImageSpec]:
    return config.load()


def describe_model(folder: Path, data: dict, name: str = "reviews") -> describe.ModelSpec:
    """A model described as a YAML file in folder would be (same validation)."""
    return describe.parse(data, str(folder / f"{name}.yaml"), folder, name)


def render_in(tmp_path: Path, spec: config.ImageSpec, model) -> render.Rendered:
    return render.render_context(spec, model, tmp_path / f"ctx-{spec.name}")


def refusal(tmp_path, spec, model) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        render_in(tmp_path, spec, model)
    return caught.value


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "handler.py").write_text(HANDLER)
    (folder / "weights.pt").write_bytes(b"\x00weights")
    (folder / "vocab.txt").write_text("good\nbad\n")
    (folder / "model-config.yaml").write_text("batchSize: 4\n")
    (folder / "requirements.txt").write_text("numpy==2.1.0  # pinned\n\n# tools\nregex\n")
    return folder


# -- a finished .mar ----------------------------------------------------------------------

@pytest.fixture
def user_mar(tmp_path) -> Path:
    return make_mar(tmp_path / "mars", "sentiment", "handler.py",
                    {"handler.py": HANDLER, "requirements.txt": "regex==2024.9.11\n",
                     "model-config.yaml": "batchSize: 16\nmaxBatchDelay: 30\nminWorkers: 2\n"},
                    requirements="requirements.txt", config="model-config.yaml")


def test_a_mar_is_served_by_torchserve_as_it_is(tmp_path, specs, user_mar):
    model = describe.from_options(describe.ModelOptions(mar=str(user_mar)), tmp_path, None)
    out = render_in(tmp_path, specs["torchserve-cpu"], model)
    staged = out.context_dir / "model" / "stage" / "model-artifact" / "sentiment.mar"
    assert staged.read_bytes() == user_mar.read_bytes()
    assert (out.model["kind"], out.model["mar"], out.model["archiver"]) == (
        "mar", "sentiment.mar", None)
    text = out.dockerfile.read_text()
    assert "torch-model-archiver" not in text
    assert not stages(text).get("model-build")  # no build step, no stage for it
    # the archive's own requirements are installed in the image at build time (C15)
    assert (out.context_dir / "model" / "requirements.txt").read_text() == "regex==2024.9.11\n"
    assert labels_of(text)["dev.byoc.model-name"] == "sentiment"


def test_a_mar_is_named_after_its_manifest(tmp_path, specs, user_mar):
    renamed = user_mar.with_name("downloaded-v3.mar")
    user_mar.rename(renamed)
    model = describe.from_options(describe.ModelOptions(mar=str(renamed)), tmp_path, None)
    out = render_in(tmp_path, specs["torchserve-cpu"], model)
    assert out.model["mar"] == "sentiment.mar"
    assert (out.context_dir / "model/stage/model-artifact/sentiment.mar").is_file()


def test_a_broken_mar_is_refused_before_the_build(tmp_path, specs):
    bad = tmp_path / "bad.mar"
    bad.write_bytes(b"not a zip")
    model = describe.from_options(describe.ModelOptions(mar=str(bad)), tmp_path, None)
    assert "not a zip file" in refusal(tmp_path, specs["torchserve-cpu"], model).message


@pytest.mark.parametrize("name, kind", [("triton-cpu", "KIND_CPU"), ("triton-gpu", "KIND_GPU")])
def test_a_mar_on_triton_is_hosted_by_the_python_backend(tmp_path, specs, user_mar, name, kind):
    model = describe.from_options(describe.ModelOptions(mar=str(user_mar)), tmp_path, None)
    out = render_in(tmp_path, specs[name], model)
    folder = out.context_dir / "model" / "stage" / "model-artifact" / "sentiment"
    host = Path(triton_flavor.HOST_DIR)
    assert (folder / "1" / "model.py").read_text() == (host / "1" / "model.py").read_text()
    # the generated config is one Triton reads, with the archive's own batching
    (parsed,) = repository.read(folder.parent).values()
    assert parsed.takes_raw_body() and parsed.kind == "python"
    c = parsed.config
    assert (c.name, c.max_batch_size) == ("sentiment", 16)
    assert c.dynamic_batching.max_queue_delay_microseconds == 30_000
    kinds = model_config_pb2.ModelInstanceGroup.Kind
    assert [(g.count, kinds.Name(g.kind)) for g in c.instance_group] == [(2, kind)]
    assert out.model["kind"] == "torchserve-host" and out.model["default_model"] == "sentiment"
    # The archive's requirements are its own; the host's packages are installed beside
    # them in the serving stage, not added to the archive.
    requirements = (out.context_dir / "model" / "requirements.txt").read_text().splitlines()
    assert requirements == ["regex==2024.9.11"]
    text = out.dockerfile.read_text()
    serving = " ".join(a for kw, a in stages(text)["serving"] if kw == "RUN")
    assert all(pin in serving for pin in triton_flavor.TORCHSERVE_PYTHON)
    unzip = [a for kw, a in stages(text)["model"] if kw == "RUN" and "zipfile -e" in a]
    assert unzip == ["python -m zipfile -e /opt/byoc/mar/sentiment.mar "
                     "/model-artifact/sentiment/1/archive/"]
    env = env_of(text)
    assert (env["BYOC_TRITON_DEFAULT_MODEL"], env["BYOC_TRITON_LOAD"]) == ("sentiment",
                                                                          "sentiment")


def test_a_hosted_mar_without_batching_takes_the_images_settings(tmp_path, specs):
    plain = make_mar(tmp_path / "mars", "plain", "handler.py", {"handler.py": HANDLER})
    model = describe.from_options(describe.ModelOptions(mar=str(plain)), tmp_path, None)
    out = render_in(tmp_path, specs["triton-cpu"], model)
    config_path = out.context_dir / "model/stage/model-artifact/plain/config.pbtxt"
    c = repository.parse_config(config_path, "plain")
    server = specs["triton-cpu"].server
    assert c.max_batch_size == (server.batch_size if server.batch_size > 1 else 0)
    assert [g.count for g in c.instance_group] == [server.workers]


STREAMING = HANDLER + '''

    def stream(self, context):
        send_intermediate_predict_response(["a"], context.request_ids, "ok", 200, context)
        context.metrics.add_counter("Tokens", 1)
'''


def test_a_mar_the_triton_host_cannot_serve_is_refused_naming_what_and_where(tmp_path, specs):
    path = make_mar(tmp_path / "mars", "streamer", "handler.py", {"handler.py": STREAMING})
    model = describe.from_options(describe.ModelOptions(mar=str(path)), tmp_path, None)
    error = refusal(tmp_path, specs["triton-cpu"], model)
    assert error.message == (f"{path}: Triton's host of TorchServe archives does not support "
                             "streaming responses (send_intermediate_predict_response) in "
                             "handler.py line 10 (and 1 more)")
    assert "python build.py torchserve" in error.tip
    render_in(tmp_path, specs["torchserve-cpu"], model)  # TorchServe itself serves it


def test_archiver_inputs_the_triton_host_cannot_serve_are_refused_too(tmp_path, specs, inputs):
    (inputs / "handler.py").write_text(STREAMING)
    model = describe_model(inputs, {"torchserve": {"handler": "handler.py"}})
    assert "does not support streaming responses" in \
        refusal(tmp_path, specs["triton-cpu"], model).message


def test_archiver_inputs_with_a_stateful_config_are_refused_on_triton(tmp_path, specs, inputs):
    (inputs / "model-config.yaml").write_text("sequenceBatching: true\n")
    model = describe_model(inputs, {"torchserve": {"handler": "handler.py",
                                                   "config_file": "model-config.yaml"}})
    assert "stateful sequence batching (sequenceBatching)" in \
        refusal(tmp_path, specs["triton-cpu"], model).message


# -- torch-model-archiver inputs ----------------------------------------------------------

def test_archiver_inputs_are_copied_and_the_argv_names_them(tmp_path, specs, inputs):
    model = describe_model(inputs, {"torchserve": {
        "handler": "handler.py", "serialized_file": "weights.pt", "extra_files": ["vocab.txt"],
        "config_file": "model-config.yaml", "version": "2.0"}})
    out = render_in(tmp_path, specs["torchserve-cpu"], model)
    staged = out.context_dir / "model" / "stage" / INPUTS.lstrip("/")
    assert sorted(p.name for p in staged.iterdir()) == ["handler.py", "model-config.yaml",
                                                        "vocab.txt", "weights.pt"]
    assert (staged / "weights.pt").read_bytes() == b"\x00weights"
    assert out.model["archiver"] == [
        "torch-model-archiver", "--model-name", "reviews", "--version", "2.0",
        "--export-path", "/model-artifact", "--force", "--handler", f"{INPUTS}/handler.py",
        "--serialized-file", f"{INPUTS}/weights.pt", "--config-file",
        f"{INPUTS}/model-config.yaml", "--extra-files", f"{INPUTS}/vocab.txt"]
    run = [a for kw, a in stages(out.dockerfile.read_text())["model"] if kw == "RUN"]
    assert shlex.split(run[-1])[-len(out.model["archiver"]):] == out.model["archiver"]


def test_the_model_requirements_travel_in_the_archive(tmp_path, specs, inputs):
    model = describe_model(inputs, {"torchserve": {"handler": "handler.py"},
                                    "requirements": ["requirements.txt"]})
    out = render_in(tmp_path, specs["torchserve-cpu"], model)
    assert out.model["archiver"][-2:] == ["--requirements-file",
                                          render.MODEL_REQUIREMENTS_IN_IMAGE]
    # the same file the serving stage installed, so the archive says what the image has
    assert ("COPY", f"model/requirements.txt {render.MODEL_REQUIREMENTS_IN_IMAGE}") in \
        stages(out.dockerfile.read_text())["serving"]
    assert (out.context_dir / "model/requirements.txt").read_text() == "numpy==2.1.0\nregex\n"


def test_no_requirements_no_requirements_file(tmp_path, specs, inputs):
    model = describe_model(inputs, {"torchserve": {"handler": "handler.py"}})
    out = render_in(tmp_path, specs["torchserve-cpu"], model)
    assert "--requirements-file" not in out.model["archiver"]
    assert (out.context_dir / "model/requirements.txt").read_text() == ""


def test_a_handler_function_and_a_stock_handler(tmp_path, specs, inputs):
    fn = describe_model(inputs, {"torchserve": {"handler": "handler.py:entry"}})
    argv = render_in(tmp_path, specs["torchserve-cpu"], fn).model["archiver"]
    assert argv[argv.index("--handler") + 1] == f"{INPUTS}/handler:entry"
    stock = describe_model(inputs, {"torchserve": {"handler": "image_classifier",
                                                   "serialized_file": "weights.pt"}})
    argv = render_in(tmp_path / "b", specs["torchserve-cpu"], stock).model["archiver"]
    assert argv[argv.index("--handler") + 1] == "image_classifier"


def test_two_inputs_with_one_name_are_refused(tmp_path, specs, inputs):
    (inputs / "other").mkdir()
    (inputs / "other" / "vocab.txt").write_text("x")
    model = describe_model(inputs, {"torchserve": {
        "handler": "handler.py", "extra_files": ["vocab.txt", "other/vocab.txt"]}})
    error = refusal(tmp_path, specs["torchserve-cpu"], model)
    assert "extra_files[1] and extra_files[0] are both named 'vocab.txt'" in error.message
    assert "rename" in error.tip


def test_an_artifact_input_comes_from_the_build_step(tmp_path, specs, inputs):
    (inputs / "train.py").write_text("print('training')\n")
    model = describe_model(inputs, {
        "build": {"run": "python train.py", "files": ["train.py"], "requirements": ["numpy"]},
        "torchserve": {"handler": "handler.py", "serialized_file": "artifact:out/weights.pt"}})
    out = render_in(tmp_path, specs["torchserve-cpu"], model)
    text = out.dockerfile.read_text()
    assert ("COPY", f'--from=model-build ["/artifacts/out/weights.pt", "{INPUTS}/weights.pt"]') \
        in stages(text)["model"]
    build = stages(text)["model-build"]
    assert any(kw == "RUN" and "for artifact in out/weights.pt;" in a for kw, a in build)
    assert (out.context_dir / "model/build/train.py").is_file()
    assert (out.context_dir / "model/build-requirements.txt").read_text() == "numpy\n"


HOSTILE_RUN = 'python train.py --note "$(id)" `uname` && echo ${HOME}; exit 0'


def test_the_build_step_command_is_one_shell_word(tmp_path, specs, inputs):
    model = describe_model(inputs, {"build": {"run": HOSTILE_RUN},
                                    "torchserve": {"handler": "handler.py"}})
    text = render_in(tmp_path, specs["torchserve-cpu"], model).dockerfile.read_text()
    (run,) = [a for kw, a in stages(text)["model-build"] if kw == "RUN"]
    words = shlex.split(run)
    assert words[words.index("-ec") + 1] == HOSTILE_RUN


def test_file_names_with_shell_characters_stay_one_argument(tmp_path, specs, inputs):
    odd = inputs / "w $(id) `x`.pt"
    odd.write_bytes(b"w")
    model = describe_model(inputs, {"torchserve": {"handler": "handler.py",
                                                   "serialized_file": odd.name}})
    out = render_in(tmp_path, specs["torchserve-cpu"], model)
    run = [a for kw, a in stages(out.dockerfile.read_text())["model"] if kw == "RUN"][-1]
    words = shlex.split(run)
    assert words[words.index("--serialized-file") + 1] == f"{INPUTS}/{odd.name}"
    assert len([w for w in words if w.startswith("--")]) == \
        len([w for w in out.model["archiver"] if w.startswith("--")])


def test_the_archiver_argv_runs_with_the_real_torch_model_archiver(tmp_path, specs, inputs):
    """The argv byoc renders, with the image's paths pointed at the staged files, makes a
    .mar that byoc reads back with everything in it."""
    model = describe_model(inputs, {"torchserve": {
        "handler": "handler.py", "serialized_file": "weights.pt", "extra_files": ["vocab.txt"],
        "config_file": "model-config.yaml"}, "requirements": ["requirements.txt"]})
    out = render_in(tmp_path, specs["torchserve-cpu"], model)
    stage = out.context_dir / "model" / "stage"
    export = tmp_path / "export"
    export.mkdir()
    local = {INPUTS: str(stage / INPUTS.lstrip("/")), "/model-artifact": str(export),
             render.MODEL_REQUIREMENTS_IN_IMAGE: str(out.context_dir / "model/requirements.txt")}
    argv = [next((arg.replace(k, v) for k, v in local.items() if arg.startswith(k)), arg)
            for arg in out.model["archiver"]]
    archiver = Path(sys.executable).parent / "torch-model-archiver"
    done = subprocess.run([str(archiver), *argv[1:]], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    from byoc.model import mar

    info = mar.read(export / "reviews.mar")
    assert info.handler == "handler.py" and info.requirements == "numpy==2.1.0\nregex\n"
    assert info.config == {"batchSize": 4}
    with zipfile.ZipFile(export / "reviews.mar") as archive:
        assert archive.read("weights.pt") == b"\x00weights"
        assert json.loads(archive.read("MAR-INF/MANIFEST.json"))["model"]["serializedFile"] \
            == "weights.pt"


def test_torchserve_needs_a_torchserve_description(tmp_path, specs):
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "config.pbtxt").write_text('backend: "python"\n')
    model = describe_model(tmp_path, {"triton": {"repository": "repo"}})
    error = refusal(tmp_path, specs["torchserve-cpu"], model)
    assert "has no torchserve: description" in error.message
    assert "python build.py triton" in error.tip


# -- a Triton repository with overlay files and templates ----------------------------------

TEMPLATE = '''\
name: "clf"
backend: "python"
max_batch_size: {{ spec.server.max_batch_rows }}
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ]
instance_group [ { count: {{ spec.server.workers }}
                   kind: {{ "KIND_GPU" if spec.variant == "gpu" else "KIND_CPU" }} } ]
'''
RAW = '''\
name: "front"
backend: "python"
input [ { name: "PAYLOAD" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "RESPONSE" data_type: TYPE_STRING dims: [ 1 ] } ]
'''


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "user"
    (root / "repo" / "clf").mkdir(parents=True)  # no version folder: the overlay adds it
    (root / "repo" / "clf" / "config.pbtxt.j2").write_text(TEMPLATE)
    (root / "repo" / "clf" / "requirements.txt").write_text("scipy==1.14.1\n")
    (root / "repo" / "front" / "1").mkdir(parents=True)
    (root / "repo" / "front" / "1" / "model.py").write_text("class TritonPythonModel: pass\n")
    (root / "repo" / "front" / "1" / "__pycache__").mkdir()
    (root / "repo" / "front" / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"")
    (root / "repo" / "front" / "config.pbtxt").write_text(RAW)
    (root / "repo" / "README.md").write_text("about this repository")
    (root / "model.py").write_text("class TritonPythonModel: pass\n")
    (root / "requirements.txt").write_text("regex\n")
    (root / "train.py").write_text("")
    return root


def repo_model(repo: Path, **triton) -> describe.ModelSpec:
    return describe_model(repo, {
        "build": {"run": "python train.py", "files": ["train.py"]},
        "triton": {"repository": "repo", "default_model": "front",
                   "files": {"clf/1/model.py": "model.py", "clf/1/weights.pt": "artifact:w.pt"},
                   **triton},
        "requirements": ["requirements.txt"]})


@pytest.mark.parametrize("name, kind, rows", [("triton-cpu", "KIND_CPU", 32768),
                                              ("triton-gpu", "KIND_GPU", 32768)])
def test_a_repository_with_templates_and_overlay_files(tmp_path, specs, repo, name, kind, rows):
    out = render_in(tmp_path, specs[name], repo_model(repo))
    staged = out.context_dir / "model" / "stage" / "model-artifact"
    assert sorted(p.name for p in staged.iterdir()) == ["clf", "front"]  # no README
    assert not (staged / "clf" / "config.pbtxt.j2").exists()
    config_text = (staged / "clf" / "config.pbtxt").read_text()
    assert f"max_batch_size: {rows}" in config_text and f"kind: {kind}" in config_text
    assert (staged / "clf" / "1" / "model.py").read_text() == (repo / "model.py").read_text()
    assert not list(staged.rglob("__pycache__"))
    text = out.dockerfile.read_text()
    assert ("COPY", '--from=model-build ["/artifacts/w.pt", "/model-artifact/clf/1/weights.pt"]') \
        in stages(text)["model"]
    assert (out.model["kind"], out.model["default_model"], out.model["load"],
            out.model["raw_body"]) == ("repository", "front", ["clf", "front"], True)
    # the description's requirements, then each loaded model's own
    assert (out.context_dir / "model/requirements.txt").read_text() == "regex\nscipy==1.14.1\n"
    assert env_of(text)["BYOC_TRITON_LOAD"] == "clf,front"


def test_load_limits_the_models_and_their_requirements(tmp_path, specs, repo):
    out = render_in(tmp_path, specs["triton-cpu"], repo_model(repo, load=["front"]))
    assert out.model["load"] == ["front"]
    assert (out.context_dir / "model/requirements.txt").read_text() == "regex\n"


def test_repository_refusals_surface_at_render(tmp_path, specs, repo):
    error = refusal(tmp_path, specs["triton-cpu"], repo_model(repo, default_model="gone"))
    assert "default_model 'gone' is not a model of the repository" in error.message
    model = describe_model(repo, {"triton": {"repository": "repo"}})  # clf lacks 1/
    assert "clf: no version folder" in refusal(tmp_path, specs["triton-cpu"], model).message


def test_an_onnx_repository_needs_the_ngc_runtime(tmp_path, specs):
    (tmp_path / "repo" / "clf" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "clf" / "config.pbtxt").write_text('platform: "onnxruntime_onnx"\n')
    model = describe_model(tmp_path, {"triton": {"repository": "repo"}})
    error = refusal(tmp_path, specs["triton-cpu"], model)
    assert "is not in the pytriton runtime" in error.message and "--runtime ngc" in error.tip
    assert render_in(tmp_path, specs["triton-cpu-ngc"], model).model["default_model"] == "clf"


def test_a_kserve_only_default_model_is_not_a_raw_body_model(tmp_path, specs, repo):
    out = render_in(tmp_path, specs["triton-cpu"], repo_model(repo, default_model="clf"))
    assert out.model["raw_body"] is False


# -- requirements -------------------------------------------------------------------------

@pytest.mark.parametrize("line", ["-e git+https://example.com/pkg.git#egg=pkg", "--editable .",
                                  "./local_pkg", "../wheels/pkg.whl", "/opt/wheels/pkg.whl",
                                  "file:///tmp/pkg.whl", "-r other.txt", "--requirement x.txt",
                                  "-c constraints.txt", "--constraint c.txt"])
def test_requirement_lines_that_cannot_travel_are_refused(line):
    with pytest.raises(ConfigError) as caught:
        assemble.requirement_lines(f"numpy\n{line}\n", "reqs.txt")
    assert caught.value.message == (f"reqs.txt line 2: {line!r} cannot be installed in the "
                                    "image build (local paths and nested files do not travel)")
    assert "--wheelhouse" in caught.value.tip


@pytest.mark.parametrize("line", ["pkg @ file:///tmp/pkg-1.0-py3-none-any.whl",
                                  "pkg@file:///tmp/pkg.whl",
                                  "dist/pkg-1.0-py3-none-any.whl", "pkg-1.0.tar.gz",
                                  "vendor/pkg.zip", "-f ./wheels", "-f/opt/wheels",
                                  "--find-links /opt/wheels", "--find-links=/opt/wheels"])
def test_other_local_paths_cannot_travel_either(line):
    """Local archives and find-links folders are on the host, not in the build."""
    with pytest.raises(ConfigError, match="cannot be installed in the image build"):
        assemble.requirement_lines(line + "\n", "reqs.txt")


@pytest.mark.parametrize("line", ["https://example.com/pkg-1.0-py3-none-any.whl",
                                  "pkg @ https://example.com/pkg-1.0.tar.gz",
                                  "-f https://download.pytorch.org/whl/torch_stable.html",
                                  "--find-links=https://example.com/wheels/"])
def test_urls_travel(line):
    assert assemble.requirement_lines(line + "\n", "reqs.txt") == [line]


def test_requirement_lines_drop_comments_and_blanks_and_keep_pip_syntax():
    text = ("# pinned for the model\n\nnumpy==2.1.0  # inline comment\n"
            "torch-audio>=2; python_version >= '3.10'\n"
            "pkg @ https://example.com/pkg-1.0-py3-none-any.whl\n"
            "--extra-index-url https://example.com/simple\n")
    assert assemble.requirement_lines(text, "r") == [
        "numpy==2.1.0", "torch-audio>=2; python_version >= '3.10'",
        "pkg @ https://example.com/pkg-1.0-py3-none-any.whl",
        "--extra-index-url https://example.com/simple"]


def test_a_local_path_in_the_models_requirements_is_refused_at_render(tmp_path, specs, inputs):
    (inputs / "requirements.txt").write_text("numpy\n-e ./mylib\n")
    model = describe_model(inputs, {"torchserve": {"handler": "handler.py"},
                                    "requirements": ["requirements.txt"]})
    error = refusal(tmp_path, specs["torchserve-cpu"], model)
    assert error.message.startswith(f"{inputs / 'requirements.txt'} line 2: '-e ./mylib'")


def test_a_local_path_in_a_mars_requirements_is_refused(tmp_path, specs):
    path = make_mar(tmp_path / "mars", "local", "handler.py",
                    {"handler.py": HANDLER, "requirements.txt": "./vendored\n"},
                    requirements="requirements.txt")
    model = describe.from_options(describe.ModelOptions(mar=str(path)), tmp_path, None)
    error = refusal(tmp_path, specs["torchserve-cpu"], model)
    assert error.message.startswith(f"{path} (its requirements file) line 1: './vendored'")


def test_a_local_path_in_a_repository_models_requirements_is_refused(tmp_path, specs, repo):
    (repo / "repo" / "clf" / "requirements.txt").write_text("/wheels/x.whl\n")
    error = refusal(tmp_path, specs["triton-cpu"], repo_model(repo))
    assert error.message.startswith(f"{repo / 'repo'}/clf/requirements.txt line 1:")


def test_requirements_merge_from_files_and_the_mar_in_order_once_each(tmp_path, specs, user_mar):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("numpy==2.1.0\nregex==2024.9.11\n")
    second.write_text("numpy==2.1.0\npyyaml\n")
    model = describe.from_options(describe.ModelOptions(mar=str(user_mar)), tmp_path, None)
    model = model.replace(requirements=(first, second))
    out = render_in(tmp_path, specs["torchserve-cpu"], model)
    # the model's files first, then the archive's; duplicates dropped, order kept
    assert (out.context_dir / "model/requirements.txt").read_text().splitlines() == [
        "numpy==2.1.0", "regex==2024.9.11", "pyyaml"]


def test_only_config_templates_are_rendered_other_j2_files_are_the_models(tmp_path, specs,
                                                                          repo):
    """A model may carry its own Jinja files (a prompt template, say): they travel as they
    are, only config.pbtxt.j2 takes the image's settings (docs/models.md)."""
    prompt = "Classify: {{ text }}\n{% for label in labels %}{{ label }}{% endfor %}\n"
    (repo / "repo" / "front" / "1" / "prompt.j2").write_text(prompt)
    out = render_in(tmp_path, specs["triton-cpu"], repo_model(repo))
    staged = out.context_dir / "model" / "stage" / "model-artifact" / "front" / "1"
    assert (staged / "prompt.j2").read_text() == prompt
    assert not (staged / "prompt").exists()


@pytest.mark.parametrize("text, problem", [
    (TEMPLATE.replace("spec.server.workers", "spec.server.wokers"), "wokers"),
    (TEMPLATE.replace("{{ spec.server.max_batch_rows }}", "{{ spec.server.max_batch_rows"),
     "line 4: expected token"),  # where Jinja finds the unclosed print
])
def test_a_broken_config_template_is_one_error_naming_the_template(tmp_path, specs, repo,
                                                                  text, problem):
    (repo / "repo" / "clf" / "config.pbtxt.j2").write_text(text)
    error = refusal(tmp_path, specs["triton-cpu"], repo_model(repo))
    assert error.message.startswith(f"{repo / 'repo' / 'clf' / 'config.pbtxt.j2'}: ")
    assert problem in error.message and "spec.server" in error.tip


def test_archiver_inputs_on_triton_are_archived_in_the_build_then_hosted(tmp_path, specs,
                                                                        inputs):
    model = describe_model(inputs, {"torchserve": {"handler": "handler.py",
                                                   "serialized_file": "weights.pt"}})
    out = render_in(tmp_path, specs["triton-cpu"], model)
    assert (out.model["kind"], out.model["default_model"]) == ("torchserve-host", "reviews")
    archiver = out.model["hosted"]["archiver"]
    assert archiver[:2] == ["torch-model-archiver", "--model-name"]
    assert archiver[archiver.index("--export-path") + 1] == "/opt/byoc/mar"
    runs = [shlex.split(a) for kw, a in stages(out.dockerfile.read_text())["model"]
            if kw == "RUN"]
    assert runs[0][-len(archiver):] == archiver  # archive first, then unpack it for the host
    assert runs[1] == ["python", "-m", "zipfile", "-e", "/opt/byoc/mar/reviews.mar",
                       "/model-artifact/reviews/1/archive/"]
    host = out.context_dir / "model/stage/model-artifact/reviews"
    assert (host / "1" / "model.py").is_file() and (host / "config.pbtxt").is_file()
