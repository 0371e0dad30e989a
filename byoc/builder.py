"""The build pipeline: render -> BuildKit build -> report (-> verify with --test)."""

from __future__ import annotations

import dataclasses
import tarfile
import tempfile
import time
from pathlib import Path

from . import REPO_ROOT, __version__, build_inputs, docker_cli, gitinfo, launcher
from .config import ImageSpec
from .console import Console
from .errors import ByocError
from .render import render_context

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
    reference: str
    tags: tuple[str, ...]
    size_bytes: int
    layers: int
    seconds: float


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


def _prepare(spec: ImageSpec, options: BuildOptions, console: Console, scratch: Path):
    cli = docker_cli.detect()
    inputs = build_inputs.collect(options.ca_cert, options.wheelhouse)
    context_dir = options.work_dir / spec.name
    console.step(f"render {spec.name} -> {context_dir}")
    rendered = render_context(spec, context_dir, inputs.wheelhouse)
    mode = "buildx" if cli.buildx else "classic, DOCKER_BUILDKIT=1"
    console.info(f"docker: {cli.binary} ({mode}); CA bundle: {inputs.ca_cert or 'none'}; "
                 f"wheelhouse: {inputs.wheelhouse or 'none'}"
                 + ("; torch from the wheelhouse" if rendered.torch_from_wheelhouse else ""))
    return cli, rendered, inputs.secrets(scratch)


def build(spec: ImageSpec, options: BuildOptions, console: Console) -> Built:
    references = image_references(spec, options.tag)
    with tempfile.TemporaryDirectory(prefix="byoc-secrets-") as scratch:
        cli, rendered, secrets = _prepare(spec, options, console, Path(scratch))
        console.step(f"build {references[0]} (BuildKit)")
        t0 = time.monotonic()
        cli.build(rendered.context_dir, tags=references, target="image",
                  labels=dynamic_labels(gitinfo.current()), secrets=secrets,
                  progress=_progress_mode(console), on_line=console.progress,
                  no_cache=options.no_cache)
        seconds = time.monotonic() - t0
    image = launcher.client().images.get(references[0])
    layers = len(image.attrs.get("RootFS", {}).get("Layers", []))
    built = Built(references[0], tuple(references), image.attrs["Size"], layers, seconds)
    console.ok(f"built {built.reference} in {seconds:.1f}s: "
               f"{built.size_bytes / 1e9:.2f} GB, {layers} layers")
    return built


def package_model(spec: ImageSpec, out: Path, options: BuildOptions, console: Console) -> Path:
    """Build only the model stages and tar them as SageMaker's ModelDataUrl expects."""
    out = Path(out)
    if not out.name.endswith(".tar.gz"):
        raise ByocError(f"{out} must end in .tar.gz", "SageMaker's ModelDataUrl is a .tar.gz")
    with tempfile.TemporaryDirectory(prefix="byoc-model-") as scratch:
        scratch_path = Path(scratch)
        cli, rendered, secrets = _prepare(spec.replace(bake_model=True), options, console,
                                          scratch_path)
        artifact = scratch_path / "artifact"
        console.step(f"build the {spec.flavor} model artifact")
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
