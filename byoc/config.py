"""The image config (images/images.yaml): loaded once, validated at the edge, then trusted.

Errors name the exact field at fault and the values it allows."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from . import IMAGES_DIR
from .errors import ConfigError

FLAVORS = ("torchserve", "triton")
VARIANTS = ("cpu", "gpu")
# Where each flavor's server comes from; the first is the default.
RUNTIMES = {"torchserve": ("pypi",), "triton": ("pytriton", "ngc")}
DEFAULT_CONFIG = IMAGES_DIR / "images.yaml"

_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){1,2}([a-z0-9.+-]*)$")
_IMAGE_REF = re.compile(r"^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)*$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LABEL_KEY = re.compile(r"^[a-z0-9]+([.-][a-z0-9]+)*$")
_INSTANCE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_URL = re.compile(r"^https?://[^\s'\"\\]+$")


@dataclasses.dataclass(frozen=True)
class TorchSpec:
    version: str
    index_url: str | None = None
    cuda: str | None = None  # None for CPU builds


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Serving knobs. TorchServe: workers per model, requests per batch. Triton: instances
    per model, and the dynamic batcher's delay; max_batch_rows caps the rows (instances)
    the classifier takes in one batch, so one 6 MiB request (~24k rows) still fits."""

    workers: int = 1
    batch_size: int = 1
    max_batch_delay_ms: int = 5
    timeout_s: int = 50
    max_payload_mb: int = 6
    max_batch_rows: int = 32768


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    flavor: str
    variant: str
    repository: str
    base_image: str
    python: str
    server_version: str
    torch: TorchSpec
    source: str
    tags: tuple[str, ...]
    instance_types: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] = ()
    server: ServerSettings = ServerSettings()
    bake_model: bool = True
    runtime: str = "pypi"

    @property
    def name(self) -> str:
        default = RUNTIMES[self.flavor][0]
        suffix = "" if self.runtime == default else f"-{self.runtime}"
        return f"{self.flavor}-{self.variant}{suffix}"

    def expanded_tags(self, version: str) -> list[str]:
        return [t.format(version=version, variant=self.variant, flavor=self.flavor)
                for t in self.tags]

    def replace(self, **changes: Any) -> ImageSpec:
        return dataclasses.replace(self, **changes)


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(f"images config: {where}: {problem}",
                       "fix the field in images/images.yaml (or the flag that overrides it)")


def _pick(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(where, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _match(where: str, value: Any, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _fail(where, f"{value!r} is not {what}")
    return value


def _int(where: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, f"{value!r} must be a whole number from {low} to {high}")
    return value


def _only_keys(where: str, data: dict, allowed: set[str]) -> None:
    if not isinstance(data, dict):
        raise _fail(where, "must be a mapping")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(where, f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def validate_base_image(where: str, value: Any) -> str:
    return _match(where, value, _IMAGE_REF, "an image reference like debian:bookworm-slim")


def validate_tag(where: str, value: Any) -> str:
    return _match(where, value, _TAG, "a Docker tag ([A-Za-z0-9_.-], at most 128 chars)")


def validate_repository(where: str, value: Any) -> str:
    return _match(where, value, _REPOSITORY, "a lowercase repository name like byoc-triton")


def _torch(where: str, data: Any) -> TorchSpec:
    _only_keys(where, data, {"version", "index_url", "cuda"})
    version = _match(f"{where}.version", data.get("version"), _VERSION, "a version like 2.13.0")
    index_url = data.get("index_url")
    if index_url is not None:
        _match(f"{where}.index_url", index_url, _URL, "an http(s) URL")
    cuda = data.get("cuda")
    if cuda is not None:
        cuda = _match(f"{where}.cuda", str(cuda), re.compile(r"^[0-9]+\.[0-9]+$"), "like 12.4")
    return TorchSpec(version=version, index_url=index_url, cuda=cuda)


def _server(where: str, data: Any) -> ServerSettings:
    data = data or {}
    fields = {f.name for f in dataclasses.fields(ServerSettings)}
    _only_keys(where, data, fields)
    limits = {"workers": (1, 64), "batch_size": (1, 1024), "max_batch_delay_ms": (0, 10_000),
              "timeout_s": (1, 59), "max_payload_mb": (1, 1024),
              "max_batch_rows": (1, 1_000_000)}
    return ServerSettings(**{k: _int(f"{where}.{k}", v, *limits[k]) for k, v in data.items()})


def _image(where: str, data: Any, defaults: dict) -> ImageSpec:
    allowed = {"flavor", "variant", "repository", "base_image", "python", "server_version",
               "torch", "source", "tags", "instance_types", "labels", "server", "runtime"}
    _only_keys(where, data, allowed)
    merged = {**defaults, **data}
    flavor = _pick(f"{where}.flavor", merged.get("flavor"), FLAVORS)
    variant = _pick(f"{where}.variant", merged.get("variant"), VARIANTS)
    runtime = _pick(f"{where}.runtime", merged.get("runtime", RUNTIMES[flavor][0]),
                    RUNTIMES[flavor])
    python = _pick(f"{where}.python", str(merged.get("python")), ("3.10", "3.11", "3.12"))
    torch = _torch(f"{where}.torch", merged.get("torch"))
    if variant == "gpu" and torch.cuda is None:
        raise _fail(f"{where}.torch.cuda", "a gpu variant must name its CUDA version")
    if variant == "cpu" and torch.cuda is not None:
        raise _fail(f"{where}.torch.cuda", "a cpu variant must not name a CUDA version")
    tags = merged.get("tags") or []
    if not isinstance(tags, list) or not tags:
        raise _fail(f"{where}.tags", "must be a non-empty list")
    for i, tag in enumerate(tags):  # placeholders are checked expanded
        try:
            expanded = tag.format(version="0.1.0", variant="cpu", flavor="triton")
        except (AttributeError, KeyError, IndexError, ValueError):
            raise _fail(f"{where}.tags[{i}]", f"{tag!r} is not a tag template; placeholders "
                        "allowed: {version}, {variant}, {flavor}") from None
        validate_tag(f"{where}.tags[{i}]", expanded)
    instances = merged.get("instance_types") or []
    for i, inst in enumerate(instances):
        _match(f"{where}.instance_types[{i}]", inst, _INSTANCE, "like ml.g5.xlarge")
    labels = merged.get("labels") or {}
    if not isinstance(labels, dict):
        raise _fail(f"{where}.labels", "must be a mapping of label key to value")
    for key, value in labels.items():
        _match(f"{where}.labels key", key, _LABEL_KEY, "a lowercase dotted label key")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise _fail(f"{where}.labels.{key}", "must be a one-line string")
    return ImageSpec(
        flavor=flavor,
        variant=variant,
        repository=validate_repository(f"{where}.repository", merged.get("repository")),
        base_image=validate_base_image(f"{where}.base_image", merged.get("base_image")),
        python=python,
        server_version=_match(f"{where}.server_version", str(merged.get("server_version")),
                              _VERSION, "a version like 0.12.0"),
        torch=torch,
        source=_match(f"{where}.source", merged.get("source"), _URL, "an http(s) URL"),
        tags=tuple(tags),
        instance_types=tuple(instances),
        labels=tuple(sorted(labels.items())),
        server=_server(f"{where}.server", merged.get("server")),
        runtime=runtime,
    )


def load(path: Path = DEFAULT_CONFIG) -> dict[str, ImageSpec]:
    """All images in the config, keyed by 'flavor-variant'."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"images config not found: {path}",
                          "pass --config PATH, or run from a byoc checkout") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"images config {path} is not valid YAML: {exc}",
                          "fix the YAML syntax at the line named") from None
    _only_keys("top level", data, {"defaults", "images"})
    defaults = data.get("defaults") or {}
    _only_keys("defaults", defaults, {"base_image", "python", "source", "tags", "labels"})
    specs: dict[str, ImageSpec] = {}
    for i, entry in enumerate(data.get("images") or []):
        spec = _image(f"images[{i}]", entry, defaults)
        if spec.name in specs:
            raise _fail(f"images[{i}]", f"{spec.name} is declared twice")
        specs[spec.name] = spec
    return specs


def select(specs: dict[str, ImageSpec], flavor: str, variant: str,
           runtime: str | None = None) -> ImageSpec:
    _pick("flavor", flavor, FLAVORS)
    _pick("variant", variant, VARIANTS)
    runtime = _pick("runtime", runtime or RUNTIMES[flavor][0], RUNTIMES[flavor])
    suffix = "" if runtime == RUNTIMES[flavor][0] else f"-{runtime}"
    try:
        return specs[f"{flavor}-{variant}{suffix}"]
    except KeyError:
        declared = ", ".join(sorted(specs)) or "none"
        raise ConfigError(f"no image {flavor}-{variant}{suffix} in the images config "
                          f"(declared: {declared})",
                          "add an entry to images/images.yaml or pick a declared one") from None
