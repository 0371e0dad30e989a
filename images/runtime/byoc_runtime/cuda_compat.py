"""CUDA forward compatibility at start (C26): the image's compat libcuda goes first on
LD_LIBRARY_PATH only when the host driver is too old for the image's CUDA.

The logic of AWS's start_cuda_compat.sh (SageMaker guide, "Updating inference containers to
comply with the NVIDIA Container Toolkit": compat only while the host driver is older than the
compat libraries), plus two checks it leaves out: the image's CUDA really needs it (a driver of
the same major family runs it through minor-version compatibility), and the GPU supports
forward compatibility (data-center GPUs only; elsewhere CUDA fails with error 804). Never on
a newer driver: an older libcuda ahead of it fails with error 803.

apply_forward_compat() takes an environment and returns a new one with one log line; it only
reads files and, as a fallback, asks nvidia-smi (both injectable for tests)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

PROC_DIR = "/proc/driver/nvidia"
COMPAT_DIR = "/usr/local/cuda/compat"
# Lowest driver of each CUDA major family (CUDA release notes, minor-version compatibility):
# at or above it the image's CUDA runs on the host driver as it is.
MINOR_COMPAT_FLOOR = {"11": "450.80.02", "12": "525.60.13", "13": "580.65.06"}

_NVRM = re.compile(r"^NVRM version:.*?\s([0-9]+\.[0-9]+(?:\.[0-9]+)?)(?=\s|$)", re.M)
_MODEL = re.compile(r"^Model:\s*(.+?)\s*$", re.M)
_LIBCUDA = re.compile(r"^libcuda\.so\.([0-9]+\.[0-9]+(?:\.[0-9]+)?)$")
_NOT_DATA_CENTER = re.compile(r"GeForce|TITAN|Quadro|RTX(?!.*Server)", re.I)


def _num(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def query_nvidia_smi(field: str) -> str | None:
    """`nvidia-smi --query-gpu=FIELD`: its output, or None without a working nvidia-smi."""
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def host_driver(proc_dir: str = PROC_DIR,
                nvidia_smi: Callable[[str], str | None] = query_nvidia_smi) -> str | None:
    """The kernel module's version, e.g. 535.183.01; None on a host without an NVIDIA driver."""
    match = _NVRM.search(_read(Path(proc_dir) / "version"))
    if match:
        return match.group(1)
    lines = (nvidia_smi("driver_version") or "").split()
    return lines[0] if lines and re.fullmatch(r"[0-9.]+", lines[0]) else None


def gpu_names(proc_dir: str = PROC_DIR,
              nvidia_smi: Callable[[str], str | None] = query_nvidia_smi) -> list[str]:
    names = [m.group(1) for info in sorted(Path(proc_dir).glob("gpus/*/information"))
             if (m := _MODEL.search(_read(info)))]
    if not names:
        names = [line.strip() for line in (nvidia_smi("name") or "").splitlines() if line.strip()]
    return names


def compat_driver(compat_dir: str = COMPAT_DIR) -> str | None:
    """The driver the compat libcuda comes from (libcuda.so.1 -> libcuda.so.580.65.06)."""
    link = Path(compat_dir) / "libcuda.so.1"
    names = [Path(os.readlink(link)).name] if link.is_symlink() else []
    names += sorted(p.name for p in Path(compat_dir).glob("libcuda.so.*.*"))
    for name in names:
        match = _LIBCUDA.fullmatch(name)
        if match:
            return match.group(1)
    return None


def supports_forward_compat(gpu_name: str) -> bool:
    """NVIDIA: data-center GPUs and select NGC-ready RTX server cards only."""
    return not _NOT_DATA_CENTER.search(gpu_name)


def apply_forward_compat(env: Mapping[str, str], image_cuda: str, compat_dir: str = COMPAT_DIR,
                         *, proc_dir: str = PROC_DIR,
                         nvidia_smi: Callable[[str], str | None] = query_nvidia_smi,
                         ) -> tuple[dict[str, str], str]:
    """(the environment for the server, one line for the log). `env` is left as it was."""
    new_env = dict(env)
    if not image_cuda or image_cuda == "none":
        return new_env, "CPU image: nothing to do"
    driver = host_driver(proc_dir, nvidia_smi)
    if driver is None:
        return new_env, "no GPU driver: nothing to do"
    floor = MINOR_COMPAT_FLOOR.get(image_cuda.split(".")[0])
    if floor and _num(driver) >= _num(floor):
        return new_env, (f"host driver {driver} runs CUDA {image_cuda} as it is: "
                         "forward compatibility not needed")
    compat = compat_driver(compat_dir)
    too_old = f"host driver {driver} is older than CUDA {image_cuda} needs" + (
        f" (>= {floor})" if floor else "")
    if compat is None:
        return new_env, (f"{too_old} and {compat_dir} holds no compat libcuda: CUDA will not "
                         "initialise; use a newer driver (InferenceAmiVersion) or ship "
                         "the cuda-compat libraries")
    if _num(driver) >= _num(compat):
        return new_env, (f"host driver {driver} is not older than the compat libraries "
                         f"({compat}): using the host driver")
    unsupported = [name for name in gpu_names(proc_dir, nvidia_smi)
                   if not supports_forward_compat(name)]
    if unsupported:
        return new_env, (f"{too_old}, but forward compatibility does not work on the "
                         f"{unsupported[0]} (data-center GPUs only): CUDA will not initialise")
    rest = [p for p in new_env.get("LD_LIBRARY_PATH", "").split(":") if p and p != compat_dir]
    new_env["LD_LIBRARY_PATH"] = ":".join([compat_dir, *rest])
    return new_env, (f"host driver {driver} < compat {compat}: forward compatibility on for "
                     f"CUDA {image_cuda} ({compat_dir} first on LD_LIBRARY_PATH)")
