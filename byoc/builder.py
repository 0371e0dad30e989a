"""The build: render -> BuildKit build, by image id -> tag (after the checks that must pass).

build() leaves the image untagged (BuildKit's --iidfile gives its id), so an image that
fails the compatibility gate or verify is never tagged, let alone pushed; tag() names it
once the CLI's stages have passed. package_model() builds only the model stages."""

from __future__ import annotations

import contextlib
import dataclasses
import tarfile
import tempfile
import time
from pathlib import Path

from . import REPO_ROOT, __version__, build_inputs, docker_cli, gitinfo, launcher
from .config import ImageSpec
from .console import Console
from .errors import ByocError
from .model.spec import ModelSpec
from .render import Rendered, render_context

DEFAULT_WORK_DIR = REPO_ROOT / "build"


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    tag: str | None = None
    ca_cert: str | None = None
    wheelhouse: str | None = None
    work_dir: Path = DEFAULT_WORK_DIR
    no_cache: bool = False


@dataclasses.dataclass(frozen=True)
class Built:
    image_id: str  # sha256:..., what verify and the gate run before it is tagged
    tags: tuple[str, ...]  # the references tag() gives it
    size_bytes: int
    layers: int
    seconds: float
    model: dict  # the rendered model's facts (name, kind, default model ...)

    @property
    def reference(self) -> str:
        return self.tags[0]


def image_references(spec: ImageSpec, tag: str | None) -> list[str]:
    if tag:
        return [tag]
    return [f"{spec.repository}:{t}" for t in spec.expanded_tags(__version__)]


def dynamic_labels(revision: gitinfo.Revision) -> dict[str, str]:
    return {
        "org.opencontainers.image.revision": revision.sha,
        "org.opencontainers.image.created": revision.created,
        "org.opencontainers.image.version": __version__,
    }


def _progress_mode(console: Console) -> str:
    return "auto" if console.color else "plain"


@contextlib.contextmanager
def _workspace(spec: ImageSpec, model: ModelSpec, options: BuildOptions):
    """(scratch for secrets, a build context folder of this build's own): two builds of
    one entry at once never share a context; both are removed afterwards (`render`
    writes a context to keep)."""
    options.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="byoc-secrets-") as scratch, \
            tempfile.TemporaryDirectory(prefix=f".context-{spec.name}-{model.name}-",
                                        dir=options.work_dir) as context:
        yield Path(scratch), Path(context) / "context"


def _prepare(spec: ImageSpec, model: ModelSpec, options: BuildOptions, console: Console,
             scratch: Path, context_dir: Path) -> tuple[docker_cli.DockerCLI, Rendered, dict]:
    inputs = build_inputs.collect(options.ca_cert, options.wheelhouse)
    console.step(f"render {spec.name}, model {model.name} ({model.origin}) -> {context_dir}")
    rendered = render_context(spec, model, context_dir, inputs.wheelhouse)  # refusals first
    cli = docker_cli.detect()
    mode = "buildx" if cli.buildx else "classic, DOCKER_BUILDKIT=1"
    console.info(f"docker: {cli.binary} ({mode}); CA bundle: {inputs.ca_cert or 'none'}; "
                 f"wheelhouse: {inputs.wheelhouse or 'none'}"
                 + ("; torch from the wheelhouse" if rendered.torch_from_wheelhouse else ""))
    return cli, rendered, inputs.secrets(scratch)


def build(spec: ImageSpec, model: ModelSpec, options: BuildOptions,
          console: Console) -> Built:
    """Build the image, untagged; tag(built) names it."""
    references = image_references(spec, options.tag)
    with _workspace(spec, model, options) as (scratch, context_dir):
        cli, rendered, secrets = _prepare(spec, model, options, console, scratch, context_dir)
        console.step(f"build {references[0]} (BuildKit)")
        iidfile = scratch / "image-id"
        t0 = time.monotonic()
        cli.build(rendered.context_dir, tags=[], target="image",
                  labels=dynamic_labels(gitinfo.current()), secrets=secrets,
                  progress=_progress_mode(console), on_line=console.progress,
                  no_cache=options.no_cache, iidfile=iidfile)
        seconds = time.monotonic() - t0
        image_id = iidfile.read_text().strip()
    image = launcher.client().images.get(image_id)
    layers = len(image.attrs.get("RootFS", {}).get("Layers", []))
    built = Built(image.id, tuple(references), image.attrs["Size"], layers, seconds,
                  rendered.model)
    console.ok(f"built {image.id[:19]} ({model.name}) in {seconds:.1f}s: "
               f"{built.size_bytes / 1e9:.2f} GB, {layers} layers")
    return built


def tag(built: Built, console: Console) -> str:
    image = launcher.client().images.get(built.image_id)
    for reference in built.tags:
        repository, _, name = reference.rpartition(":")
        image.tag(repository, name)
    console.ok(f"tagged {', '.join(built.tags)}")
    return built.reference


def package_model(spec: ImageSpec, model: ModelSpec, out: Path, options: BuildOptions,
                  console: Console) -> Path:
    """Build only the model stages and tar them as SageMaker's ModelDataUrl expects."""
    out = Path(out)
    if not out.name.endswith(".tar.gz"):
        raise ByocError(f"{out} must end in .tar.gz", "SageMaker's ModelDataUrl is a .tar.gz")
    with _workspace(spec, model, options) as (scratch_path, context_dir):
        cli, rendered, secrets = _prepare(spec.replace(bake_model=True), model, options,
                                          console, scratch_path, context_dir)
        artifact = scratch_path / "artifact"
        console.step(f"build the {spec.flavor} model artifact of {model.name}")
        cli.build(rendered.context_dir, tags=[], target="model-artifact", labels={},
                  secrets=secrets, progress=_progress_mode(console), on_line=console.progress,
                  output=f"type=local,dest={artifact}")
        files = sorted(p for p in artifact.rglob("*") if p.is_file())
        if not files:
            raise ByocError("the model stage produced no files")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            for path in sorted(artifact.iterdir()):
                archive.add(path, arcname=path.name)
        partial.replace(out)  # never leave a half-written artifact under the real name
    console.ok(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): "
               + ", ".join(str(p.relative_to(artifact)) for p in files))
    return out
