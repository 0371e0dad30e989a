"""The CUDA/driver compatibility table (images/cuda-compat.yaml), validated once when loaded.

GPU families with their default drivers, inference AMI versions with theirs, CPU families
with their architecture, and per CUDA release the drivers it needs. compat.py decides
with it; this module only reads and checks the data."""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any

from . import IMAGES_DIR
from .config import read_yaml
from .errors import ConfigError

TABLE_PATH = IMAGES_DIR / "cuda-compat.yaml"
ARCHES = ("amd64", "arm64")
_DRIVER = re.compile(r"^[0-9]+(\.[0-9]+){0,2}$")  # "470" (a branch) or "535.54.03"
_MINOR = re.compile(r"^[0-9]+\.[0-9]+$")  # CUDA versions and compute capabilities


def _num(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def at_least(driver: str, minimum: str) -> bool:
    """A bare branch ("470") stands for any driver of that branch: only the branch counts."""
    have = _num(driver)
    return have >= _num(minimum)[:len(have)]


# -- the table ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GpuFamily:
    name: str
    gpu: str
    compute_capability: str
    min_cuda: str
    driver: str  # SageMaker's default for real-time endpoints
    cuda: str
    forward_compat: bool  # a data-center GPU: NVIDIA's forward compatibility works on it


@dataclasses.dataclass(frozen=True)
class Ami:
    name: str
    driver: str
    cuda: str
    families: frozenset[str]
    mounts_compat: bool  # legacy toolkit behaviour: it mounts the image's compat libraries


@dataclasses.dataclass(frozen=True)
class CudaRelease:
    version: str
    driver: str  # shipped with the toolkit: every feature
    minor_compat_driver: str  # lowest of the same major family: starts, fewer features
    forward_compat_drivers: tuple[str, ...]  # one per branch its cuda-compat package supports
    min_compute_capability: str


@dataclasses.dataclass(frozen=True)
class Table:
    gpu_families: dict[str, GpuFamily]
    cpu_families: dict[str, str]  # family -> CPU architecture
    amis: dict[str, Ami]
    cuda: dict[str, CudaRelease]


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(f"compatibility table: {where}: {problem}",
                       "fix that field in images/cuda-compat.yaml")


def _mapping(where: str, data: Any) -> dict:
    if not isinstance(data, dict):
        raise _fail(where, "must be a mapping")
    return data


def _fields(where: str, data: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()):
    unknown = sorted(set(_mapping(where, data)) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(sorted(required + optional))
        raise _fail(where, f"unknown field {unknown[0]!r}; allowed: {allowed}")
    missing = [key for key in required if key not in data]
    if missing:
        raise _fail(where, f"missing field {missing[0]!r}")
    return data


def _version(where: str, value: Any, pattern: re.Pattern = _DRIVER) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        example = "535.54.03" if pattern is _DRIVER else "12.6"
        raise _fail(where, f"{value!r} is not a quoted version like \"{example}\"")
    return value


def _flag(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, f"{value!r} must be true or false")
    return value


def _list(where: str, value: Any) -> list:
    if not isinstance(value, list):
        raise _fail(where, "must be a list")
    return value


def _gpu_family(name: str, data: Any) -> GpuFamily:
    where = f"gpu_families.{name}"
    _fields(where, data, ("gpu", "compute_capability", "min_cuda", "driver", "cuda",
                          "forward_compat"))
    if not isinstance(data["gpu"], str):
        raise _fail(f"{where}.gpu", "must be the GPU's name")
    return GpuFamily(name, data["gpu"],
                     _version(f"{where}.compute_capability", data["compute_capability"], _MINOR),
                     _version(f"{where}.min_cuda", data["min_cuda"], _MINOR),
                     _version(f"{where}.driver", data["driver"]),
                     _version(f"{where}.cuda", data["cuda"], _MINOR),
                     _flag(f"{where}.forward_compat", data["forward_compat"]))


def _ami(name: str, data: Any, gpu_families: dict) -> Ami:
    where = f"ami_versions.{name}"
    _fields(where, data, ("driver", "cuda", "families"), ("mounts_compat",))
    families = _list(f"{where}.families", data["families"])
    for i, family in enumerate(families):
        if family not in gpu_families:
            raise _fail(f"{where}.families[{i}]", f"{family!r} is not one of the gpu_families")
    return Ami(name, _version(f"{where}.driver", data["driver"]),
               _version(f"{where}.cuda", data["cuda"], _MINOR), frozenset(families),
               _flag(f"{where}.mounts_compat", data.get("mounts_compat", False)))


def _cuda(name: Any, data: Any) -> CudaRelease:
    where = f"cuda.{name}"
    _version("cuda key", name, _MINOR)
    _fields(where, data, ("driver", "minor_compat_driver", "forward_compat_drivers",
                          "min_compute_capability"))
    bridges = _list(f"{where}.forward_compat_drivers", data["forward_compat_drivers"])
    return CudaRelease(
        name, _version(f"{where}.driver", data["driver"]),
        _version(f"{where}.minor_compat_driver", data["minor_compat_driver"]),
        tuple(_version(f"{where}.forward_compat_drivers[{i}]", v) for i, v in enumerate(bridges)),
        _version(f"{where}.min_compute_capability", data["min_compute_capability"], _MINOR))


def parse_table(data: Any) -> Table:
    """Validate the YAML document: every error names the field and what it allows."""
    _fields("top level", data, ("gpu_families", "cpu_families", "ami_versions", "cuda"))
    gpu_families = {name: _gpu_family(name, entry)
                    for name, entry in _mapping("gpu_families", data["gpu_families"]).items()}
    cpu_families: dict[str, str] = {}
    for arch, names in _fields("cpu_families", data["cpu_families"], (), ARCHES).items():
        for name in _list(f"cpu_families.{arch}", names):
            if name in gpu_families or name in cpu_families:
                raise _fail(f"cpu_families.{arch}", f"{name!r} is listed twice")
            cpu_families[name] = arch
    amis = {name: _ami(name, entry, gpu_families)
            for name, entry in _mapping("ami_versions", data["ami_versions"]).items()}
    cuda = {name: _cuda(name, entry) for name, entry in _mapping("cuda", data["cuda"]).items()}
    return Table(gpu_families, cpu_families, amis, cuda)


def load_table(path: Path = TABLE_PATH) -> Table:
    return parse_table(read_yaml(path, "compatibility table",
                                 "run from a byoc checkout (images/cuda-compat.yaml)"))


@functools.cache
def default_table() -> Table:
    return load_table(TABLE_PATH)
