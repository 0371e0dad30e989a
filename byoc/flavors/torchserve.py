"""The TorchServe flavor, build side: a .mar served by TorchServe behind the front.

Its run-time twin is images/runtime/byoc_runtime/adapters/torchserve.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import IMAGES_DIR
from ..errors import ConfigError
from ..model import assemble, mar

if TYPE_CHECKING:
    from ..config import ImageSpec
    from ..model.assemble import Layout
    from ..model.spec import ModelSpec

ARCHIVE_DIR = "/model-artifact"  # the model stage's output: one .mar


class TorchServeFlavor:
    name = "torchserve"
    server_name = "TorchServe"
    runtimes = ("pypi",)
    multi_model = False

    def apt_packages(self, spec: ImageSpec) -> tuple[str, ...]:
        return ("openjdk-17-jre-headless",)  # TorchServe's frontend needs Java 17

    def requirements_file(self) -> Path:
        return IMAGES_DIR / "torchserve" / "requirements.txt"

    def template_vars(self, spec: ImageSpec) -> dict:
        return {}

    def assemble(self, spec: ImageSpec, model: ModelSpec, layout: Layout) -> dict:
        archive = model.torchserve
        if archive is None:
            raise ConfigError(f"{model.origin}: model {model.name!r} has no torchserve: "
                              "description; TorchServe serves model archives (.mar)",
                              "add torchserve: (mar: or the archiver inputs) to the model, "
                              "or build it with `python build.py triton`")
        return {**archive_stage(model, layout, ARCHIVE_DIR), "kind": "mar"}

    def runtime_env(self, spec: ImageSpec, model_vars: dict) -> list[tuple[str, str]]:
        s = spec.server
        return [
            ("BYOC_DEFAULT_WORKERS", str(s.workers)),
            ("BYOC_BATCH_SIZE", str(s.batch_size)),
            ("BYOC_MAX_BATCH_DELAY_MS", str(s.max_batch_delay_ms)),
        ]


def archive_stage(model: ModelSpec, layout: Layout, export_dir: str) -> dict:
    """The .mar for the model stage: the user's own (read and checked here), or archived
    in the build from the inputs. Shared with the Triton host of archives."""
    archive = model.torchserve
    if archive.mar is not None:
        info = mar.read(archive.mar)
        layout.requirement_lines += assemble.requirement_lines(
            info.requirements, f"{archive.mar} (its requirements file)")
        name = f"{info.model_name}.mar"
        layout.copy_in(assemble.Source(path=archive.mar), f"{export_dir}/{name}")
        return {"mar": name, "model_name": info.model_name, "archiver": None, "info": info}
    argv = assemble.archiver_inputs(layout, archive, export_dir)
    return {"mar": f"{archive.model_name}.mar", "model_name": archive.model_name,
            "archiver": argv, "info": None}


FLAVOR = TorchServeFlavor()
