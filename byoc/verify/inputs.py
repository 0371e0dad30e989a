"""What verify runs an image against: the packaged model, its samples, its default model.

The model is always mounted read-only at /opt/ml/model, as SageMaker extracts
ModelDataUrl there, so C13 checks something on every path: --model-tar when given, else
the model baked into the image, packaged the way `package-model` packages it. An image
built with --no-model needs one of those. Samples come from the model options, else from
the image itself (the build bakes them into /opt/byoc/samples)."""

from __future__ import annotations

import dataclasses
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

from docker.errors import DockerException, ImageNotFound, NotFound

from .. import launcher
from ..errors import ByocError, UsageError
from ..model import repository, samples
from ..model.spec import ModelSpec
from ..render import BAKED_MODEL_DIR, SAMPLES_DIR


@dataclasses.dataclass(frozen=True)
class VerifyOptions:
    gpu: bool = False
    startup_budget_s: float = launcher.DEFAULT_STARTUP_BUDGET_S
    model_tar: Path | None = None


@dataclasses.dataclass
class Target:
    image: str  # what docker runs: a reference or an image id
    labels: dict
    env: dict  # the image's ENV
    flavor: str
    model_name: str
    model_tar: Path  # mounted read-only at /opt/ml/model
    model_dir: Path  # the same model, extracted on the host
    samples: list[samples.Sample]
    samples_origin: str  # where the samples came from, for the table
    default_model: repository.ModelConfig | None = None  # Triton: what /invocations runs

    @property
    def multi_model(self) -> bool:
        return self.labels.get("dev.byoc.multi-model") == "true"


def image_attrs(image: str) -> dict:
    try:
        return launcher.client().images.get(image).attrs
    except ImageNotFound:
        raise UsageError(f"image {image} not found locally",
                         "build it first (python build.py torchserve --variant cpu), or "
                         "`docker pull` it") from None


def export_folder(image: str, folder: str) -> bytes | None:
    """A folder of the image as an uncompressed tar (its contents at the top), or None."""
    dock = launcher.client()
    container = dock.containers.create(image, ["true"])
    try:
        stream, _ = container.get_archive(f"{folder}/.")
        return b"".join(stream)
    except NotFound:
        return None
    finally:
        try:
            container.remove(force=True)
        except DockerException:
            pass


def _untar(data: bytes, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(into, filter="data")


def _extract_model_tar(model_tar: Path, into: Path) -> None:
    try:
        with tarfile.open(model_tar, "r:gz") as archive:
            archive.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UsageError(f"--model-tar {model_tar} is not a gzip tar: {exc}",
                         "make one with `python build.py package-model FLAVOR`") from None
    if not into.is_dir() or not any(into.iterdir()):
        raise UsageError(f"--model-tar {model_tar} holds no model files",
                         "make one with `python build.py package-model FLAVOR`")


def _package(folder: Path, out: Path) -> Path:
    """model.tar.gz with the folder's contents at its top, as package-model writes it."""
    with tarfile.open(out, "w:gz") as archive:
        for path in sorted(folder.iterdir()):
            archive.add(path, arcname=path.name)
    return out


def prepare(image: str, options: VerifyOptions, scratch: Path, *,
            model: ModelSpec | None = None,
            package: Callable[[str, Path], Path] | None = None) -> Target:
    """Collect the model and samples; package(flavor, out) builds a model.tar.gz from the
    model options for an image that bakes none."""
    attrs = image_attrs(image)
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
    flavor = labels.get("dev.byoc.flavor")
    if not flavor:
        raise UsageError(f"{image} is not a byoc image (no dev.byoc.flavor label)",
                         "verify images built by `python build.py torchserve|triton`")
    model_dir = scratch / "model"
    if options.model_tar:
        model_tar = Path(options.model_tar)
        if not model_tar.is_file():
            what = "is a folder, not a model.tar.gz" if model_tar.is_dir() else "no such file"
            raise UsageError(f"--model-tar {model_tar}: {what}",
                             "make one with `python build.py package-model FLAVOR`")
        _extract_model_tar(model_tar, model_dir)
    elif (baked := export_folder(image, BAKED_MODEL_DIR)) is not None:
        _untar(baked, model_dir)
        model_tar = _package(model_dir, scratch / "model.tar.gz")
    elif package is not None and model is not None:
        model_tar = package(flavor, scratch / "model.tar.gz")
        _extract_model_tar(model_tar, model_dir)
    else:
        raise UsageError(f"{image} bakes no model (built with --no-model) and verify was "
                         "given none", "pass --model-tar model.tar.gz (python build.py "
                         "package-model), or the model options it was built for")
    for path in [model_dir, *model_dir.rglob("*")]:  # readable by the container's user
        path.chmod(0o755 if path.is_dir() else 0o644)
    found, origin = _samples(image, model, scratch)
    target = Target(image=image, labels=labels, env=env, flavor=flavor,
                    model_name=labels.get("dev.byoc.model-name") or (model.name if model
                                                                     else "model"),
                    model_tar=model_tar, model_dir=model_dir, samples=found,
                    samples_origin=origin)
    if flavor == "triton":
        target.default_model = _triton_default(model_dir, env)
    return target


def _samples(image: str, model: ModelSpec | None, scratch: Path):
    if model is not None and model.samples is not None:
        return samples.load(model.samples), str(model.samples)
    baked = export_folder(image, SAMPLES_DIR)
    if baked:
        _untar(baked, scratch / "samples")
        try:
            return samples.load(scratch / "samples"), f"{SAMPLES_DIR} in the image"
        except ByocError:
            pass
    return [], "none"


def _triton_default(model_dir: Path, env: dict) -> repository.ModelConfig | None:
    folders = sorted(p.name for p in model_dir.iterdir()
                     if p.is_dir() and (p / repository.CONFIG).is_file())
    described = env.get("BYOC_TRITON_DEFAULT_MODEL")
    name = described if described in folders else (folders[0] if len(folders) == 1 else None)
    if name is None:
        return None
    path = model_dir / name / repository.CONFIG
    return repository.ModelConfig(name, path, repository.parse_config(path, name), ())
