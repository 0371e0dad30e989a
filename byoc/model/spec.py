"""The user's model as data: what each server needs, frozen once validated.

A model is described once, in a YAML file (images/models/NAME.yaml, see docs/models.md)
or by the command line's model options; describe.py turns either into a ModelSpec.
Paths are absolute by then; an `artifact:NAME` source names a file the model's build
step writes (a model trained or exported during the image build)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

ARTIFACT_PREFIX = "artifact:"


@dataclasses.dataclass(frozen=True)
class Source:
    """A file that goes into the model: on disk, or made by the build step."""

    path: Path | None = None  # a file or folder on the host
    artifact: str | None = None  # relative to the build step's output folder

    @property
    def name(self) -> str:
        return Path(self.artifact).name if self.artifact else self.path.name

    def __str__(self) -> str:
        return f"{ARTIFACT_PREFIX}{self.artifact}" if self.artifact else str(self.path)


@dataclasses.dataclass(frozen=True)
class Archive:
    """TorchServe: an existing .mar served as it is, or torch-model-archiver's inputs."""

    model_name: str
    version: str = "1.0"
    mar: Path | None = None
    handler: str | None = None  # a stock handler name (image_classifier) or a file
    handler_file: Source | None = None  # the handler when it is a file
    handler_function: str | None = None  # module:function entry points
    serialized_file: Source | None = None
    model_file: Source | None = None
    extra_files: tuple[Source, ...] = ()
    config_file: Source | None = None

    @property
    def from_inputs(self) -> bool:
        return self.mar is None

    def handler_argument(self) -> str:
        """--handler as torch-model-archiver takes it (a file inside the archive)."""
        if self.handler_file is None:
            return self.handler or ""
        module = Path(self.handler_file.name).stem
        return f"{module}:{self.handler_function}" if self.handler_function else \
            self.handler_file.name


@dataclasses.dataclass(frozen=True)
class Repository:
    """Triton: a model repository, version folders and all."""

    path: Path
    default_model: str | None = None
    load: tuple[str, ...] = ()  # empty: every model of the repository
    # Files added to the repository at build time: (path in the repository, source).
    files: tuple[tuple[str, Source], ...] = ()


@dataclasses.dataclass(frozen=True)
class BuildStep:
    """Produces artifacts during the image build (training, export, random weights)."""

    run: str  # a shell command, run in the step's folder with $ARTIFACTS set
    files: tuple[Path, ...] = ()
    requirements: tuple[str, ...] = ()  # pip requirement lines for this step only


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    origin: str  # where it was described, for messages
    torchserve: Archive | None = None
    triton: Repository | None = None
    requirements: tuple[Path, ...] = ()  # pip requirements files installed into the image
    content_types: tuple[str, ...] = ()  # empty: whatever the server takes
    samples: Path | None = None
    build: BuildStep | None = None

    def replace(self, **changes) -> ModelSpec:
        return dataclasses.replace(self, **changes)

    def sources(self) -> list[Source]:
        """Every file the model takes from disk or from its build step."""
        found: list[Source] = []
        if self.torchserve:
            a = self.torchserve
            found += [s for s in (a.handler_file, a.serialized_file, a.model_file,
                                  a.config_file) if s] + list(a.extra_files)
        if self.triton:
            found += [source for _, source in self.triton.files]
        return found
