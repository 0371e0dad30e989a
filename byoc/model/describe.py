"""Model descriptions -> ModelSpec: from a YAML file (docs/models.md) or the command line.

Validated here, once: unknown fields, wrong types, missing files and contradictions
are one ConfigError naming the file and the field. What only a server's own rules can
check (a config.pbtxt, a .mar's manifest) lives in repository.py and mar.py."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .spec import ARTIFACT_PREFIX, Archive, BuildStep, ModelSpec, Repository, Source

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}$")
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9*][a-z0-9.+*-]*$")
_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MODELS_FOLDER = "models"  # beside images.yaml: models/NAME.yaml

TORCHSERVE_FIELDS = {"mar", "handler", "serialized_file", "model_file", "extra_files",
                     "config_file", "model_name", "version"}
TRITON_FIELDS = {"repository", "default_model", "load", "files"}
TOP_FIELDS = {"name", "description", "torchserve", "triton", "requirements", "content_types",
              "samples", "build"}


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """The command line's model options (cli/parser.py), before validation."""

    model: str | None = None  # a described model: NAME or a path to NAME.yaml
    mar: str | None = None
    handler: str | None = None
    serialized_file: str | None = None
    model_file: str | None = None
    extra_files: str | None = None  # comma-separated, as torch-model-archiver takes them
    config_file: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    model_repository: str | None = None
    default_model: str | None = None
    requirements: str | None = None
    samples: str | None = None
    content_types: str | None = None  # comma-separated media types the front accepts

    def inline(self) -> bool:
        """Does the command line describe a model itself (not name one)? Archiver inputs
        without --handler count, so _inline refuses them instead of ignoring them."""
        return any((self.mar, self.handler, self.serialized_file, self.model_file,
                    self.extra_files, self.config_file, self.model_repository))

    def overrides(self) -> bool:
        return any((self.requirements, self.samples, self.default_model, self.content_types))


class _Where:
    """Error messages that name the file and the field."""

    def __init__(self, origin: str, tip: str):
        self.origin, self.tip = origin, tip

    def fail(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {field}: {problem}", self.tip)


def _str(where: _Where, field: str, value: Any, pattern: re.Pattern | None = None,
         what: str = "a string") -> str:
    if not isinstance(value, str) or not value.strip() or \
            (pattern is not None and not pattern.fullmatch(value)):
        raise where.fail(field, f"{value!r} is not {what}")
    return value


def _list(where: _Where, field: str, value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise where.fail(field, "must be a list")
    return value


def _only(where: _Where, field: str, data: Any, allowed: set[str]) -> dict:
    if not isinstance(data, dict):
        raise where.fail(field, "must be a mapping")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise where.fail(field, f"unknown field {unknown[0]!r}; allowed: "
                         f"{', '.join(sorted(allowed))}")
    return data


class _Reader:
    """Resolves paths against the description's folder, and artifact: references."""

    def __init__(self, where: _Where, base: Path, has_build_step: bool):
        self.where, self.base, self.has_build = where, base, has_build_step

    def path(self, field: str, value: Any, *, folder: bool = False) -> Path:
        text = _str(self.where, field, value, what="a path")
        path = (self.base / Path(text).expanduser()).resolve()
        if folder and not path.is_dir():
            raise self.where.fail(field, f"{path} is not a folder")
        if not folder and not path.exists():
            raise self.where.fail(field, f"{path} does not exist")
        return path

    def source(self, field: str, value: Any) -> Source:
        text = _str(self.where, field, value, what="a path or artifact:NAME")
        if text.startswith(ARTIFACT_PREFIX):
            name = text[len(ARTIFACT_PREFIX):]
            if not self.has_build:
                raise self.where.fail(field, f"{text!r} names a build artifact, but the model "
                                      "has no build: step")
            if not name or name.startswith("/") or ".." in Path(name).parts:
                raise self.where.fail(field, f"{text!r}: give a relative path after artifact:")
            return Source(artifact=name)
        return Source(path=self.path(field, text))


def _archive(r: _Reader, data: Any, default_name: str) -> Archive:
    data = _only(r.where, "torchserve", data, TORCHSERVE_FIELDS)
    name = _str(r.where, "torchserve.model_name", data.get("model_name", default_name), _NAME,
                "a model name ([A-Za-z0-9_.-], at most 64)")
    raw_version = data.get("version", "1.0")
    if isinstance(raw_version, float):  # YAML reads 1.10 as 1.1: ask for a string
        raise r.where.fail("torchserve.version", f"{raw_version!r} was read as a number; "
                           "quote it, like version: \"1.10\"")
    version = _str(r.where, "torchserve.version", str(raw_version), _VERSION,
                   "a version like 1.0")
    if "mar" in data:
        extra = sorted(set(data) & (TORCHSERVE_FIELDS - {"mar", "model_name", "version"}))
        if extra:
            raise r.where.fail(f"torchserve.{extra[0]}", "give either mar: (an archive served "
                               "as it is) or the archiver inputs (handler:, serialized_file:, "
                               "...), not both")
        if "model_name" in data or "version" in data:
            field = "model_name" if "model_name" in data else "version"
            raise r.where.fail(f"torchserve.{field}", "with mar:, the archive's manifest "
                               "names the model and its version (TorchServe serves those); "
                               f"leave {field} out, or re-archive it")
        mar = r.path("torchserve.mar", data["mar"])
        return Archive(model_name=mar.stem, version=version, mar=mar)
    if "handler" not in data:
        raise r.where.fail("torchserve", "needs mar: or handler: (with serialized_file: and "
                           "the other torch-model-archiver inputs)")
    handler = _str(r.where, "torchserve.handler", data["handler"], what="a handler")
    archive = dict(model_name=name, version=version)
    # artifact:path/h.py[:function]: the prefix's colon is not the function's
    prefix = ARTIFACT_PREFIX if handler.startswith(ARTIFACT_PREFIX) else ""
    module, _, function = handler[len(prefix):].partition(":")
    module = prefix + module
    if function and not _FUNCTION.fullmatch(function):
        raise r.where.fail("torchserve.handler", f"{handler!r}: the part after ':' must be a "
                           "function name")
    if module.endswith(".py") or "/" in module or module.startswith(ARTIFACT_PREFIX):
        archive["handler_file"] = r.source("torchserve.handler", module)
        archive["handler_function"] = function or None
    else:
        if not _FUNCTION.fullmatch(module):
            raise r.where.fail("torchserve.handler", f"{handler!r} is neither a .py file nor "
                               "a stock handler name like image_classifier")
        archive["handler"] = handler
    for key in ("serialized_file", "model_file", "config_file"):
        if data.get(key) is not None:
            archive[key] = r.source(f"torchserve.{key}", data[key])
    extras = data.get("extra_files")
    if isinstance(extras, str):
        extras = [e.strip() for e in extras.split(",") if e.strip()]
    archive["extra_files"] = tuple(r.source(f"torchserve.extra_files[{i}]", e)
                                   for i, e in enumerate(_list(r.where, "torchserve.extra_files",
                                                               extras)))
    return Archive(**archive)


def _repository(r: _Reader, data: Any) -> Repository:
    data = _only(r.where, "triton", data, TRITON_FIELDS)
    if "repository" not in data:
        raise r.where.fail("triton", "needs repository: (a Triton model repository folder)")
    path = r.path("triton.repository", data["repository"], folder=True)
    default = data.get("default_model")
    if default is not None:
        default = _str(r.where, "triton.default_model", default, _NAME, "a model name")
    load = tuple(_str(r.where, f"triton.load[{i}]", m, _NAME, "a model name")
                 for i, m in enumerate(_list(r.where, "triton.load", data.get("load"))))
    files = data.get("files") or {}
    if not isinstance(files, dict):
        raise r.where.fail("triton.files", "must map a path in the repository to a source")
    overlay = []
    for dest, src in files.items():
        parts = Path(str(dest)).parts
        if not parts or Path(str(dest)).is_absolute() or ".." in parts:
            raise r.where.fail("triton.files", f"{dest!r} must be a relative path inside the "
                               "repository, like my_model/1/weights.pt")
        overlay.append((str(dest), r.source(f"triton.files[{dest!r}]", src)))
    return Repository(path=path, default_model=default, load=load, files=tuple(overlay))


def _build_step(r: _Reader, data: Any) -> BuildStep:
    data = _only(r.where, "build", data, {"run", "files", "requirements"})
    run = _str(r.where, "build.run", data.get("run"), what="a shell command")
    files = tuple(r.path(f"build.files[{i}]", f)
                  for i, f in enumerate(_list(r.where, "build.files", data.get("files"))))
    requirements = tuple(_str(r.where, f"build.requirements[{i}]", q, what="a pip requirement")
                         for i, q in enumerate(_list(r.where, "build.requirements",
                                                     data.get("requirements"))))
    return BuildStep(run=run, files=files, requirements=requirements)


def content_types(where: _Where, field: str, value: Any) -> tuple[str, ...]:
    types = tuple(_str(where, f"{field}[{i}]", t.strip().lower() if isinstance(t, str) else t,
                       _MEDIA_TYPE, "a media type like text/plain")
                  for i, t in enumerate(_list(where, field, value)))
    return tuple(dict.fromkeys(types))


def parse(data: Any, origin: str, base: Path, default_name: str) -> ModelSpec:
    where = _Where(origin, f"fix the field in {origin} (docs/models.md lists them)")
    data = _only(where, "top level", data, TOP_FIELDS)
    name = _str(where, "name", data.get("name", default_name), _NAME,
                "a model name ([A-Za-z0-9_.-], at most 64)")
    build = None
    reader = _Reader(where, base, has_build_step="build" in data)
    if "build" in data:
        build = _build_step(reader, data["build"])
    torchserve = _archive(reader, data["torchserve"], name) if "torchserve" in data else None
    triton = _repository(reader, data["triton"]) if "triton" in data else None
    if torchserve is None and triton is None:
        raise where.fail("top level", "describe the model for at least one server: "
                         "torchserve: (a .mar or archiver inputs) or triton: (a repository)")
    requirements = tuple(reader.path(f"requirements[{i}]", q)
                         for i, q in enumerate(_list(where, "requirements",
                                                     data.get("requirements"))))
    samples = reader.path("samples", data["samples"], folder=True) if data.get("samples") \
        else None
    return ModelSpec(name=name, origin=origin, torchserve=torchserve, triton=triton,
                     requirements=requirements,
                     content_types=content_types(where, "content_types",
                                                 data.get("content_types")),
                     samples=samples, build=build)


def load(path: Path) -> ModelSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"model description not found: {path}",
                          "name a model described in images/models/, or a NAME.yaml file"
                          ) from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        raise ConfigError(f"model description {path} is not a readable text file "
                          f"({type(exc).__name__})", "give a NAME.yaml model description"
                          ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"model description {path} is not valid YAML: {exc}",
                          "fix the YAML syntax at the line named") from None
    return parse(data, str(path), path.parent, path.stem)


def find(name_or_path: str, config_dir: Path) -> Path:
    """A described model: a path to its YAML, or NAME under models/ beside images.yaml."""
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return given
    path = config_dir / MODELS_FOLDER / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (config_dir / MODELS_FOLDER).glob("*.yaml"))
        raise ConfigError(f"no model {name_or_path!r}: {path} does not exist "
                          f"(described: {', '.join(known) or 'none'})",
                          "describe it in images/models/NAME.yaml, or pass its files with "
                          "--mar, --handler or --model-repository")
    return path


def from_options(options: ModelOptions, config_dir: Path, default: str | None) -> ModelSpec:
    """The model for a command: the inline options, else --model, else the image's own."""
    if options.inline():
        spec = _inline(options)
    else:
        named = options.model or default
        if named is None:
            raise ConfigError("no model: the image entry names none and no model options "
                              "were given", "pass --mar FILE, --handler ..., "
                              "--model-repository DIR or --model NAME")
        spec = load(find(named, config_dir))
    return _apply_overrides(spec, options)


def _inline(o: ModelOptions) -> ModelSpec:
    where = _Where("command line", "see `python build.py torchserve --help` (model options)")
    reader = _Reader(where, Path.cwd(), has_build_step=False)
    if o.mar and o.handler:
        raise where.fail("--mar", "give either --mar FILE or --handler with its inputs, not both")
    given = [flag for flag, value in (("--serialized-file", o.serialized_file),
                                      ("--model-file", o.model_file),
                                      ("--extra-files", o.extra_files),
                                      ("--config-file", o.config_file)) if value]
    if o.handler is None and given:
        raise where.fail(given[0], "needs --handler (a file or a stock handler)")
    torchserve = triton = None
    if o.mar or o.handler:
        data: dict[str, Any] = {"mar": o.mar} if o.mar else {
            k: v for k, v in (("handler", o.handler), ("serialized_file", o.serialized_file),
                              ("model_file", o.model_file), ("extra_files", o.extra_files),
                              ("config_file", o.config_file)) if v}
        if o.model_name:
            data["model_name"] = o.model_name
        if o.model_version:
            data["version"] = o.model_version
        torchserve = _archive(reader, data, o.model_name or _stem(o))
    if o.model_repository:
        triton = _repository(reader, {"repository": o.model_repository})
    name = torchserve.model_name if torchserve else (o.model_name or triton.path.name)
    return ModelSpec(name=_str(where, "--model-name", name, _NAME, "a model name"),
                     origin="command line", torchserve=torchserve, triton=triton)


def _stem(o: ModelOptions) -> str:
    if o.mar:
        return Path(o.mar).stem
    return Path(o.serialized_file or o.handler or "model").stem.split(":")[0] or "model"


def _apply_overrides(spec: ModelSpec, o: ModelOptions) -> ModelSpec:
    where = _Where("command line", "see `python build.py torchserve --help` (model options)")
    reader = _Reader(where, Path.cwd(), has_build_step=False)
    if o.requirements:
        spec = spec.replace(requirements=spec.requirements
                            + (reader.path("--requirements", o.requirements),))
    if o.samples:
        spec = spec.replace(samples=reader.path("--samples", o.samples, folder=True))
    if o.content_types:
        spec = spec.replace(content_types=content_types(
            where, "--content-types", [t for t in o.content_types.split(",") if t.strip()]))
    if o.default_model:
        if spec.triton is None:
            raise where.fail("--default-model", "only with a Triton repository "
                             "(--model-repository, or a model with triton:)")
        default = _str(where, "--default-model", o.default_model, _NAME, "a model name")
        spec = spec.replace(triton=dataclasses.replace(spec.triton, default_model=default))
    return spec
