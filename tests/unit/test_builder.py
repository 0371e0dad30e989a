"""byoc.builder: images are built by id and stay untagged until tag() (after the
compatibility gate and verify); the references tag() gives; model refusals stop a build
before Docker is touched. Docker itself is faked: no daemon, no BuildKit."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from byoc import __version__, build_inputs, builder, config, docker_cli, gitinfo, launcher
from byoc.console import Console
from byoc.errors import ByocError, ConfigError
from byoc.model import describe
from byoc.model.spec import ModelSpec

IMAGE_ID = "sha256:" + "c" * 64


class FakeImage:
    def __init__(self):
        self.id = IMAGE_ID
        self.attrs = {"Size": 1_500_000_000, "RootFS": {"Layers": ["a", "b", "c"]}}
        self.tagged: list[tuple[str, str]] = []

    def tag(self, repository, tag):
        self.tagged.append((repository, tag))
        return True


class FakeDocker:
    def __init__(self, image: FakeImage):
        self.image, self.got = image, []
        self.images = self

    def get(self, reference):
        self.got.append(reference)
        return self.image


class FakeCLI:
    binary, buildx = "docker", True

    def __init__(self):
        self.builds: list[tuple[Path, dict]] = []

    def build(self, context, **kwargs):
        self.builds.append((Path(context), kwargs))
        if kwargs.get("iidfile") is not None:
            Path(kwargs["iidfile"]).write_text(IMAGE_ID + "\n")


@pytest.fixture(autouse=True)
def no_host_pip(monkeypatch):
    """No CA bundle, pip index or wheelhouse from this machine (and no `pip config` runs)."""
    monkeypatch.setattr(build_inputs, "collect",
                        lambda ca, wheels: build_inputs.BuildInputs(None, "", None))


@pytest.fixture
def docker(monkeypatch):
    image, cli = FakeImage(), FakeCLI()
    fake = FakeDocker(image)
    monkeypatch.setattr(docker_cli, "detect", lambda: cli)
    monkeypatch.setattr(launcher, "client", lambda: fake)
    monkeypatch.setattr(gitinfo, "current", lambda: gitinfo.Revision("0123456789ab",
                                                                      "2026-01-01T00:00:00Z"))
    return cli, fake, image


@pytest.fixture(scope="module")
def spec() -> config.ImageSpec:
    return config.load()["torchserve-cpu"]


@pytest.fixture(scope="module")
def digits(spec) -> ModelSpec:
    return describe.from_options(describe.ModelOptions(), config.DEFAULT_CONFIG.parent,
                                 spec.model)


def console() -> Console:
    return Console(io.StringIO())


def test_image_references_come_from_the_config_or_the_tag(spec):
    assert builder.image_references(spec, None) == [
        f"{spec.repository}:{t.format(version=__version__, variant='cpu', flavor='torchserve')}"
        for t in spec.tags]
    assert builder.image_references(spec, None) == [f"byoc-torchserve:{__version__}-cpu"]
    assert builder.image_references(spec, "mine:dev") == ["mine:dev"]


def test_build_is_by_image_id_and_leaves_the_image_untagged(tmp_path, docker, spec, digits):
    cli, fake, image = docker
    built = builder.build(spec, digits, builder.BuildOptions(work_dir=tmp_path), console())
    ((context, kwargs),) = cli.builds
    # Each build renders into a context of its own under the work folder, removed after.
    assert context.parent.parent == tmp_path
    assert context.parent.name.startswith(".context-torchserve-cpu-digits-")
    assert not context.exists()
    assert kwargs["tags"] == [] and kwargs["target"] == "image"
    assert kwargs["iidfile"].name == "image-id"
    assert kwargs["labels"]["org.opencontainers.image.revision"] == "0123456789ab"
    assert (built.image_id, built.tags, built.reference) == (
        IMAGE_ID, (f"byoc-torchserve:{__version__}-cpu",), f"byoc-torchserve:{__version__}-cpu")
    assert (built.size_bytes, built.layers) == (1_500_000_000, 3)
    assert built.model["name"] == "digits" and built.model["kind"] == "mar"
    assert fake.got == [IMAGE_ID] and image.tagged == []  # nothing named yet


def test_no_cache_and_an_explicit_tag_reach_the_build(tmp_path, docker, spec, digits):
    cli, _, image = docker
    built = builder.build(spec, digits, builder.BuildOptions(tag="mine:dev", work_dir=tmp_path,
                                                             no_cache=True), console())
    assert cli.builds[0][1]["no_cache"] is True and cli.builds[0][1]["tags"] == []
    assert built.tags == ("mine:dev",) and image.tagged == []


def test_tag_names_the_built_image_with_each_reference(docker):
    _, fake, image = docker
    built = builder.Built(IMAGE_ID, ("registry.example:5000/team/byoc:1.0-cpu", "byoc:latest"),
                          1, 1, 1.0, {})
    out = io.StringIO()
    assert builder.tag(built, Console(out)) == "registry.example:5000/team/byoc:1.0-cpu"
    assert fake.got == [IMAGE_ID]
    assert image.tagged == [("registry.example:5000/team/byoc", "1.0-cpu"), ("byoc", "latest")]
    assert "tagged registry.example:5000/team/byoc:1.0-cpu, byoc:latest" in out.getvalue()


def test_a_model_refusal_stops_the_build_before_docker(tmp_path, monkeypatch, spec):
    def no_docker():
        raise AssertionError("docker was asked for")

    monkeypatch.setattr(docker_cli, "detect", no_docker)
    monkeypatch.setattr(launcher, "client", no_docker)
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "config.pbtxt").write_text('backend: "python"\n')
    triton_only = describe.parse({"triton": {"repository": "repo"}}, "m.yaml", tmp_path, "m")
    with pytest.raises(ConfigError, match="has no torchserve: description"):
        builder.build(spec, triton_only, builder.BuildOptions(work_dir=tmp_path / "w"),
                      console())


def test_package_model_needs_a_tar_gz(tmp_path, spec, digits):
    with pytest.raises(ByocError, match="must end in .tar.gz"):
        builder.package_model(spec, digits, tmp_path / "model.zip", builder.BuildOptions(),
                              console())


def test_package_model_builds_the_model_artifact_stage_only(tmp_path, docker, spec, digits):
    cli, _, _ = docker

    def build(context, **kwargs):
        cli.builds.append((Path(context), kwargs))
        dest = Path(kwargs["output"].split("dest=", 1)[1])
        dest.mkdir(parents=True)
        (dest / "digits.mar").write_bytes(b"archive")

    cli.build = build
    out = builder.package_model(spec, digits, tmp_path / "out" / "model.tar.gz",
                                builder.BuildOptions(work_dir=tmp_path / "w"), console())
    ((_, kwargs),) = cli.builds
    assert kwargs["target"] == "model-artifact" and kwargs["tags"] == []
    assert kwargs["output"].startswith("type=local,dest=")
    import tarfile

    with tarfile.open(out) as archive:
        assert archive.getnames() == ["digits.mar"]
    assert not list(out.parent.glob("*.partial"))
