"""byoc.model.describe: model descriptions (images/models/NAME.yaml) and the command line's
model options become one frozen ModelSpec; every mistake is one ConfigError naming the
file (or "command line") and the field at fault, before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from byoc import IMAGES_DIR
from byoc.errors import ConfigError, ExitStatus
from byoc.model import describe
from byoc.model.describe import ModelOptions
from byoc.model.spec import Source


@pytest.fixture
def files(tmp_path) -> Path:
    """A model folder with the files a description names."""
    folder = tmp_path / "mymodel"
    (folder / "samples").mkdir(parents=True)
    (folder / "samples" / "a.json").write_text("[1]")
    (folder / "repo" / "m" / "1").mkdir(parents=True)
    for name in ("handler.py", "weights.pt", "net.py", "vocab.txt", "labels.json",
                 "model-config.yaml", "requirements.txt", "train.py", "archive.mar"):
        (folder / name).write_text("x")
    return folder


def write(folder: Path, data, name: str = "mine.yaml") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def load(folder: Path, data) -> describe.ModelSpec:
    return describe.load(write(folder, data))


def error(folder: Path, data) -> str:
    with pytest.raises(ConfigError) as caught:
        load(folder, data)
    assert caught.value.exit_status == ExitStatus.USAGE
    assert caught.value.tip  # every refusal says what to do
    return caught.value.message


# -- the shipped example ------------------------------------------------------------------

def test_the_example_model_describes_both_servers():
    spec = describe.load(IMAGES_DIR / "models" / "digits.yaml")
    assert spec.name == "digits" and spec.origin.endswith("models/digits.yaml")
    ts = spec.torchserve
    assert ts.from_inputs and ts.handler_file.path.name == "digits_handler.py"
    assert ts.serialized_file == Source(artifact="digits.pt")
    assert [str(s) for s in ts.extra_files][1] == "artifact:metrics.json"
    assert spec.triton.default_model == "digits"
    assert dict(spec.triton.files)["digits_classifier/1/digits.pt"] == Source(artifact="digits.pt")
    assert spec.build.requirements == ("scikit-learn==1.6.1",)
    assert spec.content_types == ("image/png", "image/jpeg", "application/json",
                                  "application/x-npy")
    assert spec.samples == (IMAGES_DIR / "samples" / "digits").resolve()


# -- a description's fields ---------------------------------------------------------------

def test_a_full_description_resolves_paths_against_its_own_folder(files):
    spec = load(files, {
        "name": "reviews",
        "build": {"run": "python train.py", "files": ["train.py"], "requirements": "numpy"},
        "torchserve": {"handler": "handler.py:handle", "serialized_file": "artifact:out/w.pt",
                       "model_file": "net.py", "extra_files": "vocab.txt, labels.json",
                       "config_file": "model-config.yaml", "version": 2},
        "triton": {"repository": "repo", "load": "m",
                   "files": {"m/1/w.pt": "artifact:out/w.pt", "m/1/vocab.txt": "vocab.txt"}},
        "requirements": ["requirements.txt"],
        "content_types": ["Text/Plain", "application/json", "text/plain"],
        "samples": "samples",
    })
    ts = spec.torchserve
    assert (spec.name, ts.model_name, ts.version) == ("reviews", "reviews", "2")
    assert ts.handler_file == Source(path=files / "handler.py")
    assert ts.handler_function == "handle" and ts.handler_argument() == "handler:handle"
    assert ts.serialized_file == Source(artifact="out/w.pt") and ts.serialized_file.name == "w.pt"
    assert [s.path for s in ts.extra_files] == [files / "vocab.txt", files / "labels.json"]
    assert ts.config_file.path == files / "model-config.yaml"
    assert spec.triton.path == files / "repo" and spec.triton.load == ("m",)
    assert dict(spec.triton.files) == {"m/1/w.pt": Source(artifact="out/w.pt"),
                                       "m/1/vocab.txt": Source(path=files / "vocab.txt")}
    assert spec.requirements == (files / "requirements.txt",)
    assert spec.content_types == ("text/plain", "application/json")  # lowercased, once each
    assert spec.samples == files / "samples"
    assert spec.build.files == (files / "train.py",) and spec.build.requirements == ("numpy",)
    # every file the model takes, for verify's packaging: archiver inputs, then the overlay
    assert [s.name for s in spec.sources()] == ["handler.py", "w.pt", "net.py",
                                                "model-config.yaml", "vocab.txt",
                                                "labels.json", "vocab.txt", "w.pt"]


def test_name_defaults_to_the_file_stem(files):
    assert load(files, {"torchserve": {"mar": "archive.mar"}}).name == "mine"


def test_a_mar_keeps_its_own_name_and_refuses_another(files):
    """TorchServe serves the name and version in the archive's manifest: a model_name or
    version beside mar: would be ignored, so it is refused."""
    spec = load(files, {"torchserve": {"mar": "archive.mar"}})
    assert spec.torchserve.model_name == "archive" and not spec.torchserve.from_inputs
    for field, value in (("model_name", "other"), ("version", "2.0")):
        with pytest.raises(ConfigError) as refused:
            load(files, {"torchserve": {"mar": "archive.mar", field: value}})
        assert f"torchserve.{field}: with mar:, the archive's manifest" in refused.value.message


def test_a_stock_handler_is_a_name_not_a_file(files):
    ts = load(files, {"torchserve": {"handler": "image_classifier",
                                     "serialized_file": "weights.pt"}}).torchserve
    assert ts.handler == "image_classifier" and ts.handler_file is None
    assert ts.handler_argument() == "image_classifier"


def test_a_handler_may_be_a_build_artifact(files):
    ts = load(files, {"build": {"run": "true"},
                      "torchserve": {"handler": "artifact:gen/handler.py"}}).torchserve
    assert ts.handler_file == Source(artifact="gen/handler.py")


@pytest.mark.parametrize("data, field, problem", [
    ({"nmae": "x", "torchserve": {"mar": "archive.mar"}}, "top level", "unknown field 'nmae'"),
    ({"torchserve": {"mar": "archive.mar", "workers": 2}}, "torchserve",
     "unknown field 'workers'"),
    ({"triton": {"repository": "repo", "backend": "python"}}, "triton",
     "unknown field 'backend'"),
    ({"build": {"run": "x", "image": "y"}, "torchserve": {"mar": "archive.mar"}}, "build",
     "unknown field 'image'"),
    ({}, "top level", "at least one server"),
    ({"description": "nothing to serve"}, "top level", "at least one server"),
    ({"torchserve": {}}, "torchserve", "needs mar: or handler:"),
    ({"triton": {}}, "triton", "needs repository:"),
    ({"torchserve": "archive.mar"}, "torchserve", "must be a mapping"),
])
def test_fields_and_structure(files, data, field, problem):
    message = error(files, data)
    assert message.startswith(f"{files / 'mine.yaml'}: {field}: ") and problem in message


def test_unknown_fields_list_the_allowed_ones(files):
    message = error(files, {"torchserve": {"mar": "archive.mar", "workers": 2}})
    assert "allowed: config_file, extra_files, handler, mar, model_file" in message


@pytest.mark.parametrize("data, field", [
    ({"torchserve": {"mar": "missing.mar"}}, "torchserve.mar"),
    ({"torchserve": {"handler": "missing.py"}}, "torchserve.handler"),
    ({"torchserve": {"handler": "handler.py", "serialized_file": "gone.pt"}},
     "torchserve.serialized_file"),
    ({"torchserve": {"handler": "handler.py", "extra_files": ["vocab.txt", "gone.txt"]}},
     "torchserve.extra_files[1]"),
    ({"torchserve": {"mar": "archive.mar"}, "requirements": ["gone.txt"]}, "requirements[0]"),
    ({"torchserve": {"mar": "archive.mar"}, "build": {"run": "x", "files": ["gone.py"]}},
     "build.files[0]"),
    ({"triton": {"repository": "repo", "files": {"m/1/x": "gone.bin"}}},
     "triton.files['m/1/x']"),
])
def test_missing_files_name_the_field_and_the_path(files, data, field):
    message = error(files, data)
    assert f": {field}: " in message and "does not exist" in message
    assert str(files) in message  # the resolved path, so the user sees where it looked


@pytest.mark.parametrize("data, field", [
    ({"triton": {"repository": "handler.py"}}, "triton.repository"),
    ({"triton": {"repository": "nowhere"}}, "triton.repository"),
    ({"torchserve": {"mar": "archive.mar"}, "samples": "handler.py"}, "samples"),
])
def test_folders_must_be_folders(files, data, field):
    assert f": {field}: " in (message := error(files, data)) and "is not a folder" in message


@pytest.mark.parametrize("other", ["handler", "serialized_file", "extra_files", "config_file",
                                   "model_file"])
def test_mar_and_archiver_inputs_are_either_or(files, other):
    value = {"handler": "handler.py", "serialized_file": "weights.pt",
             "extra_files": ["vocab.txt"], "config_file": "model-config.yaml",
             "model_file": "net.py"}[other]
    message = error(files, {"torchserve": {"mar": "archive.mar", other: value}})
    assert f"torchserve.{other}: give either mar:" in message and "not both" in message


@pytest.mark.parametrize("field, data", [
    ("torchserve.serialized_file", {"handler": "handler.py", "serialized_file": "artifact:w.pt"}),
    ("torchserve.handler", {"handler": "artifact:h.py"}),
    ("torchserve.extra_files[0]", {"handler": "handler.py", "extra_files": ["artifact:m.json"]}),
])
def test_an_artifact_needs_a_build_step(files, field, data):
    message = error(files, {"torchserve": data})
    assert f"{field}: 'artifact:" in message and "has no build: step" in message


def test_an_overlay_artifact_needs_a_build_step_too(files):
    message = error(files, {"triton": {"repository": "repo", "files": {"m/1/w": "artifact:w"}}})
    assert "triton.files['m/1/w']" in message and "no build: step" in message


@pytest.mark.parametrize("artifact", ["artifact:", "artifact:/abs/w.pt", "artifact:../w.pt",
                                      "artifact:a/../../w.pt"])
def test_an_artifact_is_a_relative_path_inside_the_build_output(files, artifact):
    message = error(files, {"build": {"run": "true"},
                            "torchserve": {"handler": "handler.py", "serialized_file": artifact}})
    assert "give a relative path after artifact:" in message


@pytest.mark.parametrize("dest", ["../outside.pt", "/etc/passwd", "m/../../x", "m/1/../../../y"])
def test_overlay_paths_stay_inside_the_repository(files, dest):
    message = error(files, {"triton": {"repository": "repo", "files": {dest: "weights.pt"}}})
    assert f"triton.files: {dest!r} must be a relative path inside the repository" in message


def test_overlay_must_be_a_mapping(files):
    message = error(files, {"triton": {"repository": "repo", "files": ["weights.pt"]}})
    assert "triton.files: must map a path in the repository to a source" in message


@pytest.mark.parametrize("data, field", [
    ({"name": "has space", "torchserve": {"mar": "archive.mar"}}, "name"),
    ({"name": "-dash-first", "torchserve": {"mar": "archive.mar"}}, "name"),
    ({"name": "x" * 65, "torchserve": {"mar": "archive.mar"}}, "name"),
    ({"name": "a/b", "torchserve": {"mar": "archive.mar"}}, "name"),
    ({"torchserve": {"mar": "archive.mar", "model_name": "bad name"}}, "torchserve.model_name"),
    ({"torchserve": {"mar": "archive.mar", "version": "1 0"}}, "torchserve.version"),
    ({"torchserve": {"handler": "handler.py:1bad"}}, "torchserve.handler"),
    ({"torchserve": {"handler": "handler.py:a-b"}}, "torchserve.handler"),
    ({"torchserve": {"handler": "not-a-name"}}, "torchserve.handler"),
    ({"torchserve": {"handler": ""}}, "torchserve.handler"),
    ({"triton": {"repository": "repo", "default_model": "a b"}}, "triton.default_model"),
    ({"triton": {"repository": "repo", "load": ["m", "../x"]}}, "triton.load[1]"),
    ({"torchserve": {"mar": "archive.mar"}, "content_types": ["png"]}, "content_types[0]"),
    ({"torchserve": {"mar": "archive.mar"}, "content_types": ["text/plain", 3]},
     "content_types[1]"),
    ({"torchserve": {"mar": "archive.mar"}, "build": {"files": []}}, "build.run"),
    ({"torchserve": {"mar": "archive.mar"}, "requirements": {"a": 1}}, "requirements"),
])
def test_bad_names_and_values_name_their_field(files, data, field):
    assert f": {field}: " in error(files, data)


def test_a_missing_description_says_where_descriptions_live(tmp_path):
    with pytest.raises(ConfigError, match="model description not found") as caught:
        describe.load(tmp_path / "nope.yaml")
    assert "images/models/" in caught.value.tip


def test_invalid_yaml_is_one_error_naming_the_file(files):
    with pytest.raises(ConfigError, match=r"mine\.yaml is not valid YAML"):
        describe.load(write(files, "torchserve: [unclosed\n"))


# -- finding a described model ------------------------------------------------------------

def test_find_takes_a_name_under_models_or_a_path(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.yaml").write_text("")
    assert describe.find("a", tmp_path) == tmp_path / "models" / "a.yaml"
    assert describe.find("elsewhere/b.yaml", tmp_path) == Path("elsewhere/b.yaml")
    assert describe.find("c.yml", tmp_path) == Path("c.yml")


def test_find_an_unknown_name_lists_the_described_ones(tmp_path):
    (tmp_path / "models").mkdir()
    for name in ("b", "a"):
        (tmp_path / "models" / f"{name}.yaml").write_text("")
    with pytest.raises(ConfigError, match=r"no model 'c'.*\(described: a, b\)") as caught:
        describe.find("c", tmp_path)
    assert "--mar" in caught.value.tip


# -- the command line's model options -----------------------------------------------------

@pytest.fixture
def cwd(files, monkeypatch) -> Path:
    monkeypatch.chdir(files)  # relative option paths resolve against the working directory
    return files


def from_options(**options) -> describe.ModelSpec:
    return describe.from_options(ModelOptions(**options), IMAGES_DIR, None)


def option_error(default: str | None = None, **options) -> str:
    with pytest.raises(ConfigError) as caught:
        describe.from_options(ModelOptions(**options), IMAGES_DIR, default)
    assert caught.value.exit_status == ExitStatus.USAGE
    return caught.value.message


def test_mar_option_serves_the_archive_as_it_is(cwd):
    spec = from_options(mar="archive.mar")
    assert (spec.name, spec.origin) == ("archive", "command line")
    assert spec.torchserve.mar == cwd / "archive.mar" and spec.triton is None
    with pytest.raises(ConfigError, match="the archive's manifest names the model"):
        from_options(mar="archive.mar", model_name="renamed")


def test_handler_option_with_the_archiver_inputs(cwd):
    spec = from_options(handler="handler.py", serialized_file="weights.pt", model_file="net.py",
                        extra_files="vocab.txt,labels.json", config_file="model-config.yaml",
                        model_version="3.1")
    ts = spec.torchserve
    assert spec.name == ts.model_name == "weights"  # named after the weights, as the archiver
    assert ts.handler_file.path == cwd / "handler.py" and ts.version == "3.1"
    assert ts.serialized_file.path == cwd / "weights.pt" and ts.model_file.path == cwd / "net.py"
    assert [s.path.name for s in ts.extra_files] == ["vocab.txt", "labels.json"]
    assert ts.config_file.path == cwd / "model-config.yaml"


def test_handler_option_names_the_model_after_the_handler_without_weights(cwd):
    assert from_options(handler="handler.py:run").name == "handler"
    assert from_options(handler="handler.py", model_name="mine").name == "mine"


def test_a_stock_handler_on_the_command_line(cwd):
    ts = from_options(handler="text_classifier", serialized_file="weights.pt").torchserve
    assert ts.handler == "text_classifier" and ts.handler_file is None


def test_mar_and_handler_options_are_either_or(cwd):
    message = option_error(mar="archive.mar", handler="handler.py")
    assert message.startswith("command line: --mar: give either --mar FILE or --handler")


@pytest.mark.parametrize("field, value", [("serialized_file", "weights.pt"),
                                          ("extra_files", "vocab.txt"),
                                          ("config_file", "model-config.yaml"),
                                          ("model_file", "net.py")])
def test_archiver_inputs_need_a_handler_never_ignored(cwd, field, value):
    """Even with the image entry's model to fall back on, an archiver input alone is an
    error, not silently dropped."""
    flag = "--" + field.replace("_", "-")
    assert option_error(**{field: value}).startswith(f"command line: {flag}: needs --handler")
    assert f"{flag}: needs --handler" in option_error("digits", **{field: value})


def test_missing_option_files_are_named(cwd):
    assert "torchserve.mar: " in option_error(mar="gone.mar")
    assert f"{cwd / 'gone.mar'} does not exist" in option_error(mar="gone.mar")
    assert "torchserve.serialized_file" in option_error(handler="handler.py",
                                                        serialized_file="gone.pt")


def test_model_repository_option(cwd):
    spec = from_options(model_repository="repo")
    assert (spec.name, spec.torchserve) == ("repo", None)
    assert spec.triton.path == cwd / "repo" and spec.triton.default_model is None
    spec = from_options(model_repository="repo", default_model="m")
    assert spec.triton.default_model == "m"


def test_model_repository_and_mar_together_describe_both_servers(cwd):
    spec = from_options(mar="archive.mar", model_repository="repo")
    assert spec.torchserve.mar and spec.triton.path == cwd / "repo"
    assert spec.name == "archive"


def test_model_repository_must_be_a_folder(cwd):
    assert "triton.repository: " in option_error(model_repository="handler.py")


def test_default_model_needs_a_repository(cwd):
    message = option_error(mar="archive.mar", default_model="m")
    assert message.startswith("command line: --default-model: only with a Triton repository")


def test_default_model_is_checked_as_a_name(cwd):
    assert "--default-model: " in option_error(model_repository="repo", default_model="a b")


def test_requirements_option_adds_to_the_models_own(cwd):
    spec = from_options(handler="handler.py", requirements="requirements.txt")
    assert spec.requirements == (cwd / "requirements.txt",)
    digits = describe.from_options(ModelOptions(requirements="requirements.txt"), IMAGES_DIR,
                                   "digits")
    assert digits.name == "digits" and digits.requirements == (cwd / "requirements.txt",)
    assert "--requirements: " in option_error(mar="archive.mar", requirements="gone.txt")


def test_samples_option_replaces_the_models_samples(cwd):
    spec = describe.from_options(ModelOptions(samples="samples"), IMAGES_DIR, "digits")
    assert spec.samples == cwd / "samples"
    assert "--samples: " in option_error(mar="archive.mar", samples="handler.py")


def test_content_types_option_is_checked_like_the_field(cwd):
    spec = from_options(mar="archive.mar", content_types="Text/CSV, application/json")
    assert spec.content_types == ("text/csv", "application/json")
    assert "--content-types[0]: " in option_error(mar="archive.mar", content_types="csv")


def test_model_option_names_a_described_model(cwd):
    spec = from_options(model="digits")
    assert spec.name == "digits" and spec.origin.endswith("digits.yaml")
    write(cwd, {"torchserve": {"mar": "archive.mar"}}, "own.yaml")
    assert from_options(model="own.yaml").torchserve.mar == cwd / "archive.mar"


def test_without_options_the_image_entrys_model_is_used(cwd):
    spec = describe.from_options(ModelOptions(), IMAGES_DIR, "digits")
    assert spec.name == "digits"


def test_inline_options_win_over_the_image_entrys_model(cwd):
    spec = describe.from_options(ModelOptions(mar="archive.mar"), IMAGES_DIR, "digits")
    assert spec.name == "archive"


def test_no_model_at_all_is_an_error_with_the_options_to_use(cwd):
    with pytest.raises(ConfigError, match="no model") as caught:
        describe.from_options(ModelOptions(), IMAGES_DIR, None)
    assert "--mar" in caught.value.tip and "--model-repository" in caught.value.tip


def test_options_tell_inline_descriptions_from_overrides():
    assert ModelOptions(mar="x").inline() and ModelOptions(model_repository="r").inline()
    assert not ModelOptions(model="digits").inline()
    assert ModelOptions(samples="s").overrides() and not ModelOptions(mar="x").overrides()
