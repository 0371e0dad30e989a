"""Render: the Dockerfile and the whole build context, written to a folder, nothing built.

Structure lives in the Jinja2 templates under images/; values come from the validated
ImageSpec and ModelSpec. The flavor lays the model out (byoc/flavors/); the templates
name no model. StrictUndefined turns a template typo into an error."""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
from pathlib import Path

import jinja2

from . import IMAGES_DIR
from .config import ImageSpec
from .flavors import flavor_for
from .model import assemble
from .model.spec import ModelSpec

RUNTIME_DIR = IMAGES_DIR / "runtime"
BASE_APT_PACKAGES = ("ca-certificates", "python3", "python3-venv", "tini")
BAKED_MODEL_DIR = "/opt/byoc/model-store"
SAMPLES_DIR = "/opt/byoc/samples"
MODEL_REQUIREMENTS_IN_IMAGE = "/opt/byoc/model-requirements.txt"


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
    model: dict  # the model's template variables (what was built, for labels and reports)


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


def image_labels(spec: ImageSpec, model: ModelSpec, model_vars: dict) -> list[tuple[str, str]]:
    """Static labels: what the image holds. revision/created come at build time."""
    flavor = flavor_for(spec.flavor)
    where = "baked" if spec.bake_model else "from /opt/ml/model"
    labels = {
        "org.opencontainers.image.title": f"byoc {spec.flavor} ({spec.variant}): {model.name}",
        "org.opencontainers.image.source": spec.source,
        "dev.byoc.flavor": spec.flavor,
        "dev.byoc.variant": spec.variant,
        "dev.byoc.runtime": spec.runtime,
        "dev.byoc.python": spec.python,
        "dev.byoc.torch": spec.torch.version,
        "dev.byoc.cuda": spec.torch.cuda or "none",
        "dev.byoc.server": f"{flavor.server_name} {spec.server_version}",
        "dev.byoc.model": f"{model.name} ({where})",
        "dev.byoc.model-name": model.name,
        "dev.byoc.model-kind": model_vars["kind"],
        "dev.byoc.instance-types": ",".join(spec.instance_types),
    }
    if spec.torch.cuda and spec.runtime != "ngc":
        # byoc's own runtimes ship no CUDA forward-compat libraries (NGC bases do): the
        # gate counts an older driver as "will not start" for them (C26).
        labels["dev.byoc.cuda-compat"] = "none"
    if model.samples:
        labels["dev.byoc.samples"] = SAMPLES_DIR
    if multi_model(flavor, model_vars):
        labels["dev.byoc.multi-model"] = "true"
    elif flavor.multi_model:  # the server has the API, but this model cannot use it
        labels["dev.byoc.multi-model"] = "false"
        labels["dev.byoc.multi-model-reason"] = model_vars.get("multi_model_reason", "")
    if spec.ami_version:
        labels["dev.byoc.ami-version"] = spec.ami_version
    labels.update(dict(spec.labels))
    return sorted(labels.items())


def multi_model(flavor, model_vars: dict) -> bool:
    """The multi-models capability (C18): the flavor's server has the API and this model
    can be served through it (flavors say so in their model variables)."""
    return bool(flavor.multi_model and model_vars.get("multi_model", True))


def runtime_env(spec: ImageSpec, model: ModelSpec, model_vars: dict) -> list[tuple[str, str]]:
    """What every image's runtime reads, then the flavor's own."""
    env = [("BYOC_FLAVOR", spec.flavor),
           # Empty: the front takes any Content-Type and the server decides.
           ("BYOC_ACCEPT_CONTENT_TYPES", ",".join(model.content_types)),
           ("BYOC_DEFAULT_TIMEOUT_S", str(spec.server.timeout_s)),
           ("BYOC_DEFAULT_MAX_PAYLOAD_MB", str(spec.server.max_payload_mb)),
           # BYOC_CUDA lets serve decide on forward-compatibility libraries at start (C26).
           ("BYOC_CUDA", spec.torch.cuda or "none")]
    return env + flavor_for(spec.flavor).runtime_env(spec, model_vars)


def template_model(model: ModelSpec, layout: assemble.Layout, model_vars: dict) -> dict:
    """The `model` the templates see: stages, copies and the flavor's own variables."""
    build = None
    if model.build:
        artifacts = sorted({src.removeprefix(assemble.ARTIFACTS_IN_IMAGE + "/")
                            for src, _ in layout.artifact_copies})
        build = {"run": model.build.run, "requirements": bool(model.build.requirements),
                 "artifacts": artifacts}
    public = {k: v for k, v in model_vars.items() if k != "info"}
    if public.get("hosted"):
        public["hosted"] = {k: v for k, v in public["hosted"].items() if k != "info"}
    return {"name": model.name, "build": build, "stage_files": layout.has_stage_files,
            "artifact_copies": layout.artifact_copies, "samples": model.samples is not None,
            "requirements": bool(layout.requirement_lines),
            "runtime_requirements": [], **public}


def _with_requirements_file(argv: list[str] | None, has_requirements: bool) -> list[str] | None:
    """An archive made in the build carries the model's requirements, like any .mar."""
    if argv and has_requirements:
        return [*argv, "--requirements-file", MODEL_REQUIREMENTS_IN_IMAGE]
    return argv


def render_dockerfile(spec: ImageSpec, model: ModelSpec, tmodel: dict, *, runtime: list,
                      labels: list, torch_from_wheelhouse: bool = False) -> str:
    flavor = flavor_for(spec.flavor)
    template = _environment().get_template(f"{spec.flavor}/Dockerfile.j2")
    return template.render(
        spec=spec,
        model=tmodel,
        apt_packages=list(BASE_APT_PACKAGES) + list(flavor.apt_packages(spec)),
        torch_pip_args=torch_pip_args(spec, torch_from_wheelhouse),
        runtime_env=runtime,
        labels=labels,
        multi_model=multi_model(flavor, tmodel),
        baked_model_dir=BAKED_MODEL_DIR,
        samples_dir=SAMPLES_DIR,
        **flavor.template_vars(spec),
    )


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # a 200 MB wheel costs nothing to "copy" on the same disk
    except OSError:
        shutil.copy2(src, dst)


def render_context(spec: ImageSpec, model: ModelSpec, out_dir: Path,
                   wheelhouse: Path | None = None) -> Rendered:
    """Write the build context to out_dir (replacing what was there). Model refusals
    (ConfigError) happen here, before anything is built."""
    flavor = flavor_for(spec.flavor)
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(IMAGES_DIR / "build", out_dir / "build", ignore=ignore)
    shutil.copytree(RUNTIME_DIR, out_dir / "runtime", ignore=ignore)
    shutil.copy2(flavor.requirements_file(), out_dir / "requirements.txt")
    layout = assemble.start(model, out_dir)
    model_vars = flavor.assemble(spec, model, layout)
    assemble.finish(layout)
    has_requirements = bool(layout.requirement_lines)
    model_vars["archiver"] = _with_requirements_file(model_vars.get("archiver"),
                                                     has_requirements)
    if model_vars.get("hosted"):
        model_vars["hosted"]["archiver"] = _with_requirements_file(
            model_vars["hosted"].get("archiver"), has_requirements)
    wheels = out_dir / "wheelhouse"
    wheels.mkdir()
    from_wheelhouse = wheelhouse_has_torch(wheelhouse, spec.torch.version)
    if wheelhouse is not None and wheelhouse.is_dir():
        for wheel in wheelhouse.glob("*.whl"):
            _link_or_copy(wheel, wheels / wheel.name)
    tmodel = template_model(model, layout, model_vars)
    dockerfile = out_dir / "Dockerfile"
    dockerfile.write_text(render_dockerfile(
        spec, model, tmodel, runtime=runtime_env(spec, model, model_vars),
        labels=image_labels(spec, model, model_vars), torch_from_wheelhouse=from_wheelhouse))
    (out_dir / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n")
    return Rendered(out_dir, dockerfile, from_wheelhouse, tmodel)
