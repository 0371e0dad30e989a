"""The Triton flavor, build side: a model repository, or a TorchServe archive hosted by
Triton's Python backend (triton_backends/torchserve_host).

Its run-time twin is images/runtime/byoc_runtime/adapters/triton.py."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from .. import IMAGES_DIR, REPO_ROOT
from ..errors import ConfigError
from ..model import mar, repository
from .torchserve import archive_stage

if TYPE_CHECKING:
    from ..config import ImageSpec
    from ..model.assemble import Layout
    from ..model.spec import ModelSpec

PYTRITON_REQUIREMENT = "nvidia-pytriton==0.7.0"  # bundles Triton 2.51.0
# The host of TorchServe archives needs TorchServe's Python package (not its frontend).
TORCHSERVE_PYTHON = ("torchserve==0.12.0", "torch-model-archiver==0.12.0", "pyyaml==6.0.2")
HOST_DIR = REPO_ROOT / "triton_backends" / "torchserve_host"
REPOSITORY_DIR = "/model-artifact"
_SUPPORT = "docs/torchserve-on-triton.md"


class TritonFlavor:
    name = "triton"
    server_name = "Triton"
    runtimes = ("pytriton", "ngc")
    multi_model = True  # SAGEMAKER_MULTI_MODEL=true serves Triton's multi-model API

    def apt_packages(self, spec: ImageSpec) -> tuple[str, ...]:
        # The pytriton wheel's backend stub links against the distribution's libpython.
        return (f"libpython{spec.python}",) if spec.runtime == "pytriton" else ()

    def requirements_file(self) -> Path:
        return IMAGES_DIR / "triton" / "requirements.txt"

    def template_vars(self, spec: ImageSpec) -> dict:
        return {"pytriton_requirement": PYTRITON_REQUIREMENT}

    def assemble(self, spec: ImageSpec, model: ModelSpec, layout: Layout) -> dict:
        if model.triton is not None:
            return self._repository(spec, model, layout)
        if model.torchserve is not None:
            return self._hosted_archive(spec, model, layout)
        raise ConfigError(f"{model.origin}: model {model.name!r} describes nothing Triton "
                          "can serve", "add triton: (a repository) or torchserve: (a .mar)")

    def _repository(self, spec: ImageSpec, model: ModelSpec, layout: Layout) -> dict:
        repo = model.triton
        target = layout.root / "stage" / REPOSITORY_DIR.lstrip("/")
        shutil.copytree(repo.path, target, ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", ".git", "README*"))
        render_templates(target, spec, repo.path)
        will_exist = set()
        for dest, source in repo.files:
            layout.copy_in(source, f"{REPOSITORY_DIR}/{dest}")
            will_exist.add(dest)
        try:
            models = repository.read(target, will_exist)
            default = repository.check(models, spec.runtime, default_model=repo.default_model,
                                       load=repo.load)
        except ConfigError as exc:  # checked in the context's copy; named as the user's
            raise ConfigError(_user_paths(exc.message, target, repo.path), exc.tip) from None
        for path in repository.requirement_files(target, models, repo.load):
            from ..model.assemble import requirement_lines

            layout.requirement_lines += requirement_lines(
                path.read_text(), f"{repo.path}/{path.parent.name}/requirements.txt")
        loaded = [n for n in models if not repo.load or n in repo.load]
        # The multi-models capability (C18) only where Triton's multi-model load can serve
        # the repository: not a BLS pipeline of several models, say.
        servable, why = repository.multi_model_servable(models, default, loaded)
        return {"kind": "repository", "default_model": default, "load": loaded,
                "raw_body": models[default].takes_raw_body(), "hosted": None,
                "multi_model": servable, "multi_model_reason": why}

    def _hosted_archive(self, spec: ImageSpec, model: ModelSpec, layout: Layout) -> dict:
        stage = archive_stage(model, layout, "/opt/byoc/mar")
        info = stage["info"]
        if info is not None:
            features = mar.unsupported_features(info)
            if features:
                raise ConfigError(f"{info.path}: Triton's host of TorchServe archives does not "
                                  f"support {features[0]}" + (f" (and {len(features) - 1} more)"
                                                               if len(features) > 1 else ""),
                                  f"see {_SUPPORT}; serve this archive with "
                                  "`python build.py torchserve`")
        else:
            _check_inputs(model)
        batching = {"batch_size": spec.server.batch_size,
                    "max_batch_delay_ms": spec.server.max_batch_delay_ms,
                    "workers": spec.server.workers}
        if info is not None:  # the archive's own model-config.yaml wins, as in TorchServe
            batching.update(mar.batch_settings(info.config))
        name = stage["model_name"]
        host = {"name": name, "archive": stage["mar"], "instances": batching["workers"],
                "batch_size": batching["batch_size"],
                "max_batch_delay_ms": batching["max_batch_delay_ms"],
                "kind": "KIND_GPU" if spec.variant == "gpu" else "KIND_CPU"}
        folder = layout.root / "stage" / REPOSITORY_DIR.lstrip("/") / name
        (folder / "1").mkdir(parents=True)
        for part in ("model.py", "ts_host.py"):  # the Triton model, and the worker it runs
            shutil.copy2(HOST_DIR / "1" / part, folder / "1" / part)
        template = _jinja().from_string((HOST_DIR / "config.pbtxt.j2").read_text())
        (folder / "config.pbtxt").write_text(template.render(host=host))
        # The host's own packages: installed in the image, but not part of the archive's
        # requirements (the archive stays the user's, byte for byte where it can).
        return {"kind": "torchserve-host", "default_model": name, "load": [name],
                "raw_body": True, "hosted": {**stage, "host": host, "info": None},
                "multi_model": True, "multi_model_reason": "one model",
                "runtime_requirements": list(TORCHSERVE_PYTHON)}

    def runtime_env(self, spec: ImageSpec, model_vars: dict) -> list[tuple[str, str]]:
        env = [("BYOC_TRITON_DEFAULT_MODEL", model_vars["default_model"]),
               ("BYOC_TRITON_LOAD", ",".join(model_vars["load"]))]
        if spec.runtime == "pytriton":
            env.append(("LD_LIBRARY_PATH", "/opt/tritonserver-libs"))
        return env


def _user_paths(message: str, copy: Path, user: Path) -> str:
    """A refusal about the context's copy of a repository, naming the user's files (a
    config.pbtxt rendered from config.pbtxt.j2 is named as the template)."""
    def user_path(match: re.Match) -> str:
        path = user / match.group(1) if match.group(1) else user
        template = path.with_name(f"{repository.CONFIG}.j2")
        if path.name == repository.CONFIG and not path.exists() and template.exists():
            return str(template)
        return str(path)

    return re.sub(re.escape(str(copy)) + r"(?:/([^\s:()]+))?", user_path, message)


def _check_inputs(model: ModelSpec) -> None:
    """Archiver inputs built for Triton: the same feature scan as for a finished .mar."""
    sources = [model.torchserve.handler_file, *model.torchserve.extra_files]
    files = {}
    for source in sources:
        if source is not None and source.path is not None and source.path.suffix == ".py":
            files[source.path.name] = source.path.read_bytes()
    info = mar.MarInfo(path=Path(model.origin), model_name=model.torchserve.model_name,
                       version=model.torchserve.version, handler="", runtime="python",
                       requirements="", config={}, files=files)
    config = model.torchserve.config_file
    if config is not None and config.path is not None:
        info = dataclasses.replace(info, config=mar.read_config(config.path))
    features = mar.unsupported_features(info)
    if features:
        raise ConfigError(f"{model.origin}: Triton's host of TorchServe archives does not "
                          f"support {features[0]}", f"see {_SUPPORT}; serve this model with "
                          "`python build.py torchserve`")


def _jinja() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def render_templates(folder: Path, spec: ImageSpec, shown: Path | None = None) -> None:
    """config.pbtxt.j2 files in a repository take the image's settings (instances,
    batching), so one repository serves cpu and gpu variants. Other .j2 files are the
    model's own and stay as they are. A broken template is named as shown/RELATIVE."""
    env = _jinja()
    for template in sorted(folder.rglob(f"{repository.CONFIG}.j2")):
        try:
            text = env.from_string(template.read_text()).render(spec=spec)
        except jinja2.TemplateError as exc:
            line = getattr(exc, "lineno", None)
            raise ConfigError(f"{(shown or folder) / template.relative_to(folder)}: "
                              + (f"line {line}: " if line else "") + str(exc.message),
                              "a config.pbtxt.j2 sees spec, the image entry (spec.server."
                              "workers, spec.server.max_batch_delay_ms, spec.variant ...)"
                              ) from None
        template.with_suffix("").write_text(text)
        template.unlink()


FLAVOR = TritonFlavor()
