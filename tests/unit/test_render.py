"""byoc.render: golden Dockerfiles, inert user values, the build context, no secrets in
layers, and the SageMaker labels. Every render here is the example model
(images/models/digits.yaml) through render_context, as `build.py render` does.

Regenerate the golden files after an intended template change:
    BYOC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_render.py
"""

from __future__ import annotations

import difflib
import itertools
import os
from pathlib import Path

import pytest
import yaml
from dockerfiles import instructions, labels_of, pip_args, stages, unquote

from byoc import IMAGES_DIR, config, render
from byoc.config import TorchSpec
from byoc.errors import ConfigError
from byoc.flavors import torchserve as torchserve_flavor
from byoc.model import describe

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
SHIPPED = ("torchserve-cpu", "torchserve-gpu", "triton-cpu", "triton-cpu-ngc", "triton-gpu")
ACCEPT_BIND_TO_PORT = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"
MULTI_MODELS = "com.amazonaws.sagemaker.capabilities.multi-models"
TORCH_WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
DIGITS = describe.load(IMAGES_DIR / "models" / "digits.yaml")

# Shell and Dockerfile metacharacters a label or URL may legitimately carry.
HOSTILE = [
    "$(touch /pwned)",
    "`touch /pwned`",
    'say "hi" "',
    "back\\slash\\",
    "${HOME}",
    'all: $(a) `b` "c" \\d ${HOME} \\$e $',
]


@pytest.fixture(scope="module")
def shipped() -> dict[str, config.ImageSpec]:
    return config.load()


@pytest.fixture
def cpu(shipped) -> config.ImageSpec:
    return shipped["torchserve-cpu"]


@pytest.fixture
def rendered(tmp_path):
    """render(spec, model=DIGITS, wheelhouse=None) -> render_context's result, each in a
    fresh folder under tmp_path."""
    count = itertools.count()

    def render_one(spec, model=DIGITS, wheelhouse=None) -> render.Rendered:
        return render.render_context(spec, model, tmp_path / f"ctx{next(count)}", wheelhouse)

    return render_one


@pytest.fixture
def dockerfile(rendered):
    """dockerfile(spec, model=DIGITS) -> the rendered Dockerfile's text."""
    return lambda spec, model=DIGITS: rendered(spec, model).dockerfile.read_text()


@pytest.fixture(scope="module")
def shipped_dockerfiles(shipped, tmp_path_factory) -> dict[str, str]:
    """The Dockerfile of every shipped image with its example model, rendered once."""
    out = tmp_path_factory.mktemp("shipped")
    return {name: render.render_context(shipped[name], DIGITS, out / name)
            .dockerfile.read_text() for name in SHIPPED}


def test_every_shipped_image_is_covered(shipped):
    assert set(SHIPPED) == set(shipped), "add the new image to SHIPPED (and its golden file)"


# -- golden files ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_render_matches_golden_file(shipped_dockerfiles, name):
    actual = shipped_dockerfiles[name]
    golden = GOLDEN_DIR / f"{name}.Dockerfile"
    if os.environ.get("BYOC_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
        return
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True),
            fromfile=str(golden), tofile=f"render_context({name}, digits)"))
        pytest.fail(f"rendered {name} differs from its golden file "
                    f"(BYOC_UPDATE_GOLDEN=1 regenerates it if intended):\n{diff}")


def test_baked_image_copies_the_model_into_the_image_stage(shipped_dockerfiles):
    image = stages(shipped_dockerfiles["torchserve-cpu"])["image"]
    assert ("COPY", f"--from=model /model-artifact/ {render.BAKED_MODEL_DIR}/") in image


def test_no_model_render_copies_no_model_into_the_image_stage(dockerfile, cpu):
    text = dockerfile(cpu.replace(bake_model=False))
    image = stages(text)["image"]
    assert not [args for kw, args in image if kw in ("COPY", "ADD") and "--from=model " in args]
    assert render.BAKED_MODEL_DIR not in text
    # The model is still known (its requirements are installed, its name labelled).
    assert labels_of(text)["dev.byoc.model"] == "digits (from /opt/ml/model)"


def test_no_model_render_still_has_the_model_artifact_stage(dockerfile, cpu):
    assert "model-artifact" in stages(dockerfile(cpu.replace(bake_model=False)))


def test_c15_model_check_stage_runs_before_the_image_takes_its_verdict(shipped_dockerfiles):
    """The handler is imported at build time (a model-check stage) and the image stage
    depends on it, so BuildKit cannot skip the check."""
    for name, text in shipped_dockerfiles.items():
        flavor = name.split("-")[0]
        check = stages(text)["model-check"]
        assert any(kw == "RUN" and f"byoc_runtime.check_model {flavor} " in args
                   for kw, args in check), name
        assert ("COPY", "--from=model-check /opt/byoc/checked/ /opt/byoc/checked/") in \
            stages(text)["image"], name


# -- user values stay inert -----------------------------------------------------------------

@pytest.mark.parametrize("value", HOSTILE)
def test_dockerfile_str_round_trips_without_expansion(value):
    assert unquote(render.dockerfile_str(value)) == (value, "")


@pytest.mark.parametrize("value", ["a\nRUN id", "a\rb", "trailing\n"])
def test_dockerfile_str_refuses_line_breaks(value):
    with pytest.raises(ValueError, match="line break"):
        render.dockerfile_str(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_label_value_renders_as_one_literal_label(dockerfile, cpu, value):
    text = dockerfile(cpu.replace(labels=(("dev.byoc.note", value),)))
    assert labels_of(text)["dev.byoc.note"] == value


@pytest.mark.parametrize("field, label, expected", [
    ("server_version", "dev.byoc.server", "TorchServe {}"),
    ("python", "dev.byoc.python", "{}"),
    ("source", "org.opencontainers.image.source", "{}"),
])
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_version_and_source_fields_stay_literal_in_labels(dockerfile, cpu, field, label,
                                                                  expected, value):
    assert labels_of(dockerfile(cpu.replace(**{field: value})))[label] == expected.format(value)


def test_hostile_values_add_no_instructions(dockerfile, cpu):
    """Every hostile value at once: the instruction sequence is unchanged."""
    value = HOSTILE[-1]
    hostile = cpu.replace(labels=(("dev.byoc.note", value),), server_version=value,
                          python=value, source=value, instance_types=(value,),
                          torch=TorchSpec(version=value, index_url=f"https://x.example/{value}"))
    keywords = [kw for kw, _ in instructions(dockerfile(hostile))]
    assert keywords == [kw for kw, _ in instructions(dockerfile(cpu))]


@pytest.mark.parametrize("url", [
    "https://x.example/$(id)",
    "https://x.example/`id`",
    "https://x.example/a;rm${IFS}-rf${IFS}/",
    "https://x.example/a&b|c>d<e",
])
def test_config_admitted_index_url_is_one_shell_token(tmp_path, dockerfile, cpu, url):
    """The URL passes the config check, so the RUN line's quoting is what keeps it inert."""
    data = {"images": [{"flavor": "torchserve", "variant": "cpu", "repository": "byoc-x",
                        "base_image": cpu.base_image, "python": cpu.python,
                        "source": cpu.source, "tags": ["t"], "server_version": "0.12.0",
                        "torch": {"version": "2.13.0", "index_url": url}}]}
    path = tmp_path / "images.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = config.load(path)["torchserve-cpu"]
    args = pip_args(dockerfile(spec), "torch==")
    assert args == ["torch==2.13.0", "--extra-index-url", url]


@pytest.mark.parametrize("version", ["2.13.0$(id)", "2.13.0`id`", "2.13.0 ; id", "2'13"])
def test_torch_version_is_one_shell_token_even_unvalidated(dockerfile, cpu, version):
    spec = cpu.replace(torch=TorchSpec(version=version, index_url=None))
    assert pip_args(dockerfile(spec), "torch==") == [f"torch=={version}"]


@pytest.mark.parametrize("ref", ["debian@sha256:" + "a" * 64,
                                 "registry.example:5000/team/base:1.0"])
def test_valid_base_image_renders_as_the_arg_default(dockerfile, cpu, ref):
    spec = cpu.replace(base_image=config.validate_base_image("base_image", ref))
    assert ("ARG", f"BASE_IMAGE={ref}") in instructions(dockerfile(spec))


def _yaml_entry(**changes) -> dict:
    entry = {"flavor": "torchserve", "variant": "cpu", "repository": "byoc-torchserve",
             "base_image": "debian:bookworm-slim", "python": "3.11",
             "source": "https://github.com/byoc-dev/byoc", "tags": ["{version}-{variant}"],
             "server_version": "0.12.0", "instance_types": ["ml.c6i.xlarge"],
             "torch": {"version": "2.13.0", "index_url": "https://download.pytorch.org/whl/cpu"}}
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = entry
        for parent in parents:
            target = target[parent]
        target[last] = value
    return entry


@pytest.mark.parametrize("field, value", [
    ("base_image", "debian; rm -rf /"),
    ("base_image", "debian:bookworm $(id)"),
    ("base_image", "debian\nRUN id"),
    ("base_image", "debian:${TAG}"),
    ("base_image", "Debian:bookworm"),
    ("repository", "Byoc-TorchServe"),
    ("repository", "byoc;id"),
    ("tags", ["latest; id"]),
    ("tags", ["$(id)"]),
    ("tags", ["a\nb"]),
    ("torch__index_url", "https://x.example/a b"),
    ("torch__index_url", "https://x.example/a'b"),
    ("torch__index_url", 'https://x.example/a"b'),
    ("torch__index_url", "https://x.example/a\\b"),
    ("torch__index_url", "https://x.example/a\nRUN id"),
    ("torch__index_url", "file:///etc/passwd"),
    ("source", "https://x.example/a b"),
    ("torch__version", "2.13.0 $(id)"),
    ("server_version", "0.12.0\nRUN id"),
    ("labels", {"dev.note": "one\ntwo"}),
    ("labels", {"dev.note\nRUN id": "x"}),
    ("labels", {"dev.note": "one\rtwo"}),
    ("base_image", "debian:bookworm-slim\n"),
    ("repository", "byoc-torchserve\n"),
    ("tags", ["latest\n"]),
    ("torch__version", "2.13.0\n"),
    ("torch__index_url", "https://x.example/whl\n"),
    ("labels", {"dev.note\n": "x"}),
])
def test_config_refuses_values_that_would_break_the_dockerfile(tmp_path, field, value):
    path = tmp_path / "images.yaml"
    path.write_text(yaml.safe_dump({"images": [_yaml_entry(**{field: value})]}))
    with pytest.raises(ConfigError):
        config.load(path)


# -- the build context ----------------------------------------------------------------------

def test_render_context_writes_the_whole_context(rendered, cpu):
    out = rendered(cpu)
    ctx = out.context_dir
    assert out.dockerfile == ctx / "Dockerfile"
    for name in ("build/pip-install.sh", "build/pip-install-model.sh", "runtime/entrypoint",
                 "runtime/byoc_runtime/front.py", "runtime/byoc_runtime/check_model.py",
                 "requirements.txt", ".dockerignore", "model/requirements.txt",
                 "model/build-requirements.txt", "model/build/train_digits.py",
                 "model/build/digits_data.py", "model/samples/digit-0.png",
                 "model/stage/opt/byoc/model-inputs/digits_handler.py",
                 "model/stage/opt/byoc/model-inputs/digits_codec.py"):
        assert (ctx / name).is_file(), name
    assert (ctx / "model" / "build-requirements.txt").read_text() == "scikit-learn==1.6.1\n"
    assert (ctx / "wheelhouse").is_dir() and not any((ctx / "wheelhouse").iterdir())
    assert not list(ctx.rglob("__pycache__"))
    assert not out.torch_from_wheelhouse
    assert (out.model["name"], out.model["kind"]) == ("digits", "mar")


def test_render_context_replaces_what_was_there(tmp_path, cpu):
    stale = tmp_path / "ctx" / "stale.txt"
    stale.parent.mkdir()
    stale.write_text("old")
    render.render_context(cpu, DIGITS, tmp_path / "ctx")
    assert not stale.exists()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_copy_source_and_bind_mount_exists_in_the_context(rendered, shipped, name):
    ctx = rendered(shipped[name]).context_dir
    for kw, args in instructions((ctx / "Dockerfile").read_text()):
        words = args.split()
        if kw == "COPY" and not any(w.startswith("--from=") for w in words):
            for source in [w for w in words if not w.startswith("--")][:-1]:
                assert (ctx / source).exists(), source
        for word in words:
            if word.startswith("--mount=type=bind,"):
                source = dict(p.split("=", 1) for p in word[8:].split(","))["source"]
                assert (ctx / source).is_dir(), source


def test_wheelhouse_torch_wheel_drops_the_extra_index(tmp_path, rendered, cpu):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    (wheelhouse / TORCH_WHEEL).write_bytes(b"not really a wheel")
    out = rendered(cpu, wheelhouse=wheelhouse)
    assert out.torch_from_wheelhouse
    assert (out.context_dir / "wheelhouse" / TORCH_WHEEL).read_bytes() == b"not really a wheel"
    assert pip_args(out.dockerfile.read_text(), "torch==") == ["torch==2.13.0"]


def test_wheelhouse_with_another_torch_keeps_the_extra_index(tmp_path, rendered, cpu):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    (wheelhouse / TORCH_WHEEL.replace("2.13.0", "2.12.0")).write_bytes(b"x")
    out = rendered(cpu, wheelhouse=wheelhouse)
    assert not out.torch_from_wheelhouse
    assert pip_args(out.dockerfile.read_text(), "torch==") == [
        "torch==2.13.0", "--extra-index-url", cpu.torch.index_url]


# -- secrets never become layers ------------------------------------------------------------

SECRET_NAMES = ("cacert", "pipconf", "pip.conf", "ca-cert", "secret")


@pytest.mark.parametrize("name", SHIPPED)
def test_no_secret_is_copied_or_added(shipped_dockerfiles, name):
    for kw, args in instructions(shipped_dockerfiles[name]):
        if kw in ("COPY", "ADD"):
            assert not any(s in args.lower() for s in SECRET_NAMES), args


@pytest.mark.parametrize("name", SHIPPED)
def test_secrets_arrive_only_as_secret_mounts(shipped_dockerfiles, name):
    text = shipped_dockerfiles[name]
    mentions = [word for _, args in instructions(text) for word in args.split()
                if "cacert" in word or "pipconf" in word]
    assert mentions, "the pip steps should mount the CA bundle and pip.conf"
    assert set(mentions) == {"--mount=type=secret,id=cacert", "--mount=type=secret,id=pipconf"}
    assert not [args for kw, args in instructions(text)
                if kw in ("ARG", "ENV") and ("PIP_" in args or "CERT" in args)]


# -- SageMaker labels -----------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_c17_every_image_accepts_bind_to_port(shipped_dockerfiles, name):
    assert labels_of(shipped_dockerfiles[name])[ACCEPT_BIND_TO_PORT] == "true"


@pytest.mark.parametrize("name", ["torchserve-cpu", "triton-cpu"])
def test_c17_no_model_images_accept_bind_to_port_too(dockerfile, shipped, name):
    text = dockerfile(shipped[name].replace(bake_model=False))
    assert labels_of(text)[ACCEPT_BIND_TO_PORT] == "true"


@pytest.mark.parametrize("name", [n for n in SHIPPED if n.startswith("torchserve")])
def test_c18_torchserve_does_not_claim_multi_models(shipped_dockerfiles, name):
    assert MULTI_MODELS not in labels_of(shipped_dockerfiles[name])


@pytest.mark.parametrize("name", [n for n in SHIPPED if n.startswith("triton")])
def test_c18_triton_declares_the_multi_model_api_it_serves(shipped_dockerfiles, name):
    labels = labels_of(shipped_dockerfiles[name])
    assert labels[MULTI_MODELS] == "true" and labels["dev.byoc.multi-model"] == "true"


def test_c18_multi_models_label_follows_the_flavor(monkeypatch, dockerfile, cpu):
    monkeypatch.setattr(torchserve_flavor.FLAVOR, "multi_model", True)
    assert labels_of(dockerfile(cpu))[MULTI_MODELS] == "true"


def test_config_labels_are_rendered(dockerfile, cpu):
    labels = labels_of(dockerfile(cpu.replace(labels=(("dev.owner", "ml"),))))
    assert labels["dev.owner"] == "ml"
    assert labels["dev.byoc.torch"] == cpu.torch.version


@pytest.mark.parametrize("name, kind", [("torchserve-cpu", "mar"), ("triton-cpu", "repository")])
def test_model_labels_name_the_model_its_kind_and_its_samples(shipped_dockerfiles, name, kind):
    labels = labels_of(shipped_dockerfiles[name])
    assert (labels["dev.byoc.model-name"], labels["dev.byoc.model-kind"]) == ("digits", kind)
    assert labels["dev.byoc.model"] == "digits (baked)"
    assert labels["dev.byoc.samples"] == render.SAMPLES_DIR
    assert labels["org.opencontainers.image.title"].endswith(": digits")
