"""Write a model into the build context, the parts every flavor shares.

    CONTEXT/model/
      requirements.txt        the model's pip requirements (files, .mar, repository)
      build/                  the build step's files; build-requirements.txt its own
      inputs/                 files the model stage takes from the host
      samples/                the samples, baked into the image for verify and deploy

A Source on the host is copied under model/; an artifact: Source becomes a
`COPY --from=model-build` in the template. Flavors add their own layout on top
(flavors/torchserve.py, flavors/triton.py)."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

from ..errors import ConfigError
from . import samples
from .spec import Archive, ModelSpec, Source

MODEL_DIR = "model"
INPUTS_IN_IMAGE = "/opt/byoc/model-inputs"
ARTIFACTS_IN_IMAGE = "/artifacts"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git")


@dataclasses.dataclass
class Layout:
    """What the templates need to know about the model, filled in by assembly."""

    root: Path  # CONTEXT/model
    artifact_copies: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    requirement_lines: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def copy_in(self, source: Source, dest: str) -> None:
        """Put a source at dest (a path inside the image) in the model stage."""
        if source.artifact:
            self.artifact_copies.append((f"{ARTIFACTS_IN_IMAGE}/{source.artifact}", dest))
            return
        target = self.root / "stage" / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(source.path, target)

    @property
    def has_stage_files(self) -> bool:
        return (self.root / "stage").is_dir()


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, ignore=_IGNORE, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst)


def start(model: ModelSpec, context: Path) -> Layout:
    root = Path(context) / MODEL_DIR
    root.mkdir(parents=True)
    layout = Layout(root)
    for path in model.requirements:
        layout.requirement_lines += requirement_lines(path.read_text(), str(path))
    if model.build:
        build = root / "build"
        build.mkdir()
        for path in model.build.files:
            _copy(path, build / path.name)
        (root / "build-requirements.txt").write_text("".join(
            f"{line}\n" for line in model.build.requirements))
    if model.samples:
        samples.load(model.samples)  # a bad sample is refused now, not after the build
        shutil.copytree(model.samples, root / "samples", ignore=_IGNORE)
    return layout


def finish(layout: Layout) -> None:
    """The combined requirements file, in the order found, duplicates dropped."""
    lines = list(dict.fromkeys(layout.requirement_lines))
    (layout.root / "requirements.txt").write_text("".join(f"{line}\n" for line in lines))


def requirement_lines(text: str, origin: str) -> list[str]:
    """pip requirement lines of a requirements file, refusing what cannot travel into a
    build (local paths, nested -r files, editable installs)."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r", "-c", "--requirement", "--constraint", "-e", "--editable",
                            ".", "/", "file:")) or _local_path(line):
            raise ConfigError(f"{origin} line {number}: {line!r} cannot be installed in the "
                              "image build (local paths and nested files do not travel)",
                              "list the packages themselves, or put the wheel in --wheelhouse")
        lines.append(line)
    return lines


def _local_path(line: str) -> bool:
    """A direct file: reference, a find-links folder, or an archive named by its path."""
    if re.search(r"@\s*file:", line):
        return True
    for flag in ("--find-links", "-f"):
        if line.startswith(flag):
            return "://" not in line[len(flag):].lstrip(" =")
    spec = line.split(";", 1)[0].strip()
    return "://" not in spec and spec.endswith((".whl", ".tar.gz", ".zip"))


def archiver_inputs(layout: Layout, archive: Archive, export_dir: str) -> list[str]:
    """Lay out torch-model-archiver's inputs under INPUTS_IN_IMAGE; returns its argv."""
    names: dict[str, str] = {}

    def place(source: Source, what: str) -> str:
        if source.name in names:
            raise ConfigError(f"torchserve: {what} and {names[source.name]} are both named "
                              f"{source.name!r}: the archive keeps files by name",
                              "rename one of them")
        names[source.name] = what
        dest = f"{INPUTS_IN_IMAGE}/{source.name}"
        layout.copy_in(source, dest)
        return dest

    argv = ["torch-model-archiver", "--model-name", archive.model_name,
            "--version", archive.version, "--export-path", export_dir, "--force"]
    if archive.handler_file:
        place(archive.handler_file, "handler")
        module = Path(archive.handler_file.name).stem
        handler = f"{INPUTS_IN_IMAGE}/{module}" + (f":{archive.handler_function}"
                                                   if archive.handler_function else ".py")
        argv += ["--handler", handler]
    else:
        argv += ["--handler", archive.handler]
    for flag, source, what in (("--serialized-file", archive.serialized_file, "serialized_file"),
                               ("--model-file", archive.model_file, "model_file"),
                               ("--config-file", archive.config_file, "config_file")):
        if source:
            argv += [flag, place(source, what)]
    extras = [place(source, f"extra_files[{i}]")
              for i, source in enumerate(archive.extra_files)]
    if extras:
        argv += ["--extra-files", ",".join(extras)]
    return argv
