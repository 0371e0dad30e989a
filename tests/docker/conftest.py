"""Fixtures for tests against real containers on a real Docker engine.

Without an engine these tests skip on a laptop, but FAIL in CI (CI=true): a green
CI run must mean the contract was checked, not skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from byoc import IMAGES_DIR, builder, config, launcher
from byoc.console import Console
from byoc.errors import ByocError
from byoc.model import describe
from byoc.model.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]
TEST_TAG = "byoc-test/{flavor}:{variant}{suffix}"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/docker" in str(item.fspath):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session", autouse=True)
def docker_engine():
    try:
        return launcher.client()
    except ByocError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker engine for the contract tests: {exc.message}. "
                        "Run `make setup` first.", pytrace=False)
        pytest.skip(f"no Docker engine: {exc.message}")


def example_model() -> ModelSpec:
    """The example model, described in images/models/digits.yaml like any other."""
    return describe.load(IMAGES_DIR / "models" / "digits.yaml")


def build_image(flavor: str, variant: str = "cpu", *, runtime: str | None = None,
                bake_model: bool = True, model: ModelSpec | None = None,
                tag: str | None = None) -> str:
    """Build (from BuildKit's cache when nothing changed) and tag an image of a model
    (default: the example) the way `build.py FLAVOR` does."""
    spec = config.select(config.load(), flavor, variant, runtime).replace(bake_model=bake_model)
    suffix = (f"-{runtime}" if runtime else "") + ("" if bake_model else "-nomodel")
    tag = tag or TEST_TAG.format(flavor=flavor, variant=variant, suffix=suffix)
    console = Console(sys.stderr)
    built = builder.build(spec, model or example_model(), builder.BuildOptions(tag=tag),
                          console)
    return builder.tag(built, console)


def package_model(flavor: str, folder: Path, model: ModelSpec | None = None) -> Path:
    """The SageMaker model.tar.gz of a model, as `build.py package-model` writes it."""
    out = folder / "model.tar.gz"
    spec = config.select(config.load(), flavor, "cpu")
    builder.package_model(spec, model or example_model(), out, builder.BuildOptions(),
                          Console(sys.stderr))
    return out


@pytest.fixture(scope="session")
def torchserve_image() -> str:
    return build_image("torchserve")


@pytest.fixture(scope="session")
def torchserve_model_tar(tmp_path_factory) -> Path:
    return package_model("torchserve", tmp_path_factory.mktemp("artifact"))


@pytest.fixture(scope="session")
def torchserve_nomodel_image() -> str:
    return build_image("torchserve", bake_model=False)


@pytest.fixture
def run_cli():
    """The CLI exactly as a user runs it."""
    def run(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "build.py"), *args], cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
    return run


NGC_FIXTURE_LABEL = "dev.byoc.test-fixture"


@pytest.fixture(scope="session")
def ngc_base(docker_engine) -> str:
    """The NGC Triton base the `ngc` runtime names: the real one when present (pulled
    by the user), else a locally built stand-in, clearly labelled as a test fixture."""
    from docker.errors import ImageNotFound

    from byoc import build_inputs, docker_cli

    name = config.select(config.load(), "triton", "cpu", "ngc").base_image
    try:
        docker_engine.images.get(name)
        return name
    except ImageNotFound:
        pass
    context = REPO / "tests" / "fixtures" / "ngc-standin"
    inputs = build_inputs.collect()
    secrets = {"cacert": inputs.ca_cert} if inputs.ca_cert else {}
    docker_cli.detect().build(context, tags=[name], target=None, labels={}, secrets=secrets,
                              progress="plain", on_line=lambda line: None)
    return name


@pytest.fixture(scope="session")
def triton_image() -> str:
    return build_image("triton")


@pytest.fixture(scope="session")
def triton_ngc_image(ngc_base) -> str:
    return build_image("triton", runtime="ngc")


@pytest.fixture(scope="session")
def triton_nomodel_image() -> str:
    return build_image("triton", bake_model=False)


@pytest.fixture(scope="session")
def triton_model_tar(tmp_path_factory) -> Path:
    return package_model("triton", tmp_path_factory.mktemp("artifact"))
