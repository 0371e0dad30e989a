"""Render: the Dockerfile and the whole build context, written to a folder, nothing built.

Structure lives in the Jinja2 templates under images/; values come from the
validated ImageSpec. StrictUndefined turns a template typo into an error."""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
from pathlib import Path

import jinja2

from . import IMAGES_DIR, REPO_ROOT
from .config import ImageSpec
from .flavors import flavor_for

RUNTIME_DIR = IMAGES_DIR / "runtime"
HANDLERS_DIR = REPO_ROOT / "handlers"
BASE_APT_PACKAGES = ("ca-certificates", "python3", "python3-venv", "tini")
TRAIN_REQUIREMENTS = ("scikit-learn==1.6.1",)
BAKED_MODEL_DIR = "/opt/byoc/model-store"


def dockerfile_str(value: object) -> str:
    """A double-quoted Dockerfile string: no variable expansion, no line breaks."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"line break in a Dockerfile value: {text!r}")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(IMAGES_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["bash_quote"] = shlex.quote
    env.filters["dockerfile_str"] = dockerfile_str
    return env


@dataclasses.dataclass(frozen=True)
class Rendered:
    context_dir: Path
    dockerfile: Path
    torch_from_wheelhouse: bool


def wheelhouse_has_torch(wheelhouse: Path | None, version: str) -> bool:
    if wheelhouse is None or not wheelhouse.is_dir():
        return False
    return any(wheelhouse.glob(f"torch-{version}-*.whl")) or any(
        wheelhouse.glob(f"torch-{version}+*.whl"))


def torch_pip_args(spec: ImageSpec, from_wheelhouse: bool) -> list[str]:
    args = [f"torch=={spec.torch.version}"]
    if spec.torch.index_url and not from_wheelhouse:
        args += ["--extra-index-url", spec.torch.index_url]
    return args


def image_labels(spec: ImageSpec) -> list[tuple[str, str]]:
    """Static labels: what the image holds. revision/created come at build time."""
    flavor = flavor_for(spec.flavor)
    labels = {
        "org.opencontainers.image.title": f"byoc {spec.flavor} ({spec.variant})",
        "org.opencontainers.image.source": spec.source,
        "dev.byoc.flavor": spec.flavor,
        "dev.byoc.variant": spec.variant,
        "dev.byoc.runtime": spec.runtime,
        "dev.byoc.python": spec.python,
        "dev.byoc.torch": spec.torch.version,
        "dev.byoc.cuda": spec.torch.cuda or "none",
        "dev.byoc.server": f"{flavor.server_name} {spec.server_version}",
        "dev.byoc.model": "digits (baked)" if spec.bake_model else "none (from /opt/ml/model)",
        "dev.byoc.instance-types": ",".join(spec.instance_types),
    }
    if flavor.multi_model:
        labels["dev.byoc.multi-model"] = "true"
    if spec.ami_version:
        labels["dev.byoc.ami-version"] = spec.ami_version
    labels.update(dict(spec.labels))
    return sorted(labels.items())


def render_dockerfile(spec: ImageSpec, *, torch_from_wheelhouse: bool = False) -> str:
    flavor = flavor_for(spec.flavor)
    template = _environment().get_template(f"{spec.flavor}/Dockerfile.j2")
    return template.render(
        spec=spec,
        apt_packages=list(BASE_APT_PACKAGES) + list(flavor.apt_packages(spec)),
        torch_pip_args=torch_pip_args(spec, torch_from_wheelhouse),
        train_requirements=list(TRAIN_REQUIREMENTS),
        # BYOC_CUDA lets serve decide on forward-compatibility libraries at start (C26).
        runtime_env=flavor.runtime_env(spec) + [("BYOC_CUDA", spec.torch.cuda or "none")],
        labels=image_labels(spec),
        multi_model=flavor.multi_model,
        baked_model_dir=BAKED_MODEL_DIR,
        **flavor.template_vars(spec),
    )


def _render_data_templates(spec: ImageSpec, out_dir: Path) -> None:
    """Server configs written as templates (config.pbtxt.j2) take the image's settings."""
    env = _environment()
    for template in sorted(out_dir.rglob("*.j2")):
        text = env.from_string(template.read_text()).render(spec=spec)
        template.with_suffix("").write_text(text)
        template.unlink()


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # a 200 MB wheel costs nothing to "copy" on the same disk
    except OSError:
        shutil.copy2(src, dst)


def render_context(spec: ImageSpec, out_dir: Path, wheelhouse: Path | None = None) -> Rendered:
    """Write the build context to out_dir (replacing what was there)."""
    flavor = flavor_for(spec.flavor)
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(IMAGES_DIR / "build", out_dir / "build", ignore=ignore)
    shutil.copytree(RUNTIME_DIR, out_dir / "runtime", ignore=ignore)
    shutil.copytree(HANDLERS_DIR, out_dir / "handlers", ignore=ignore)
    for name, src in flavor.context_files().items():
        dst = out_dir / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=ignore)
        else:
            shutil.copy2(src, dst)
    _render_data_templates(spec, out_dir)
    wheels = out_dir / "wheelhouse"
    wheels.mkdir()
    from_wheelhouse = wheelhouse_has_torch(wheelhouse, spec.torch.version)
    if wheelhouse is not None and wheelhouse.is_dir():
        for wheel in wheelhouse.glob("*.whl"):
            _link_or_copy(wheel, wheels / wheel.name)
    dockerfile = out_dir / "Dockerfile"
    dockerfile.write_text(render_dockerfile(spec, torch_from_wheelhouse=from_wheelhouse))
    (out_dir / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n")
    return Rendered(out_dir, dockerfile, from_wheelhouse)
