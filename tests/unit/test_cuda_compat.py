"""byoc_runtime.cuda_compat (C26): the compat libcuda goes on LD_LIBRARY_PATH only when the
host driver is too old for the image's CUDA, the image ships it, and the GPU supports it.
Fake /proc/driver/nvidia folders and compat folders; nvidia-smi is a stub."""

from __future__ import annotations

import os

import pytest
from byoc_runtime.cuda_compat import (
    apply_forward_compat,
    compat_driver,
    host_driver,
    supports_forward_compat,
)

CLOSED = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  {v}  Thu May  2 14:37:44 UTC 2024\n"
OPEN = ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {v}  Release Build  "
        "(dvs-builder@U16-I3-B03-4-3)  Sun May 12 19:39:15 UTC 2024\n")
GCC = "GCC version:  gcc version 7.3.1 20180712 (Red Hat 7.3.1-17) (GCC)\n"


def no_smi(field: str) -> None:
    return None


def fake_proc(tmp_path, driver: str | None, gpu: str = "NVIDIA A10G", line: str = CLOSED):
    proc = tmp_path / "proc"
    proc.mkdir()
    if driver:
        (proc / "version").write_text(line.format(v=driver) + GCC)
        info = proc / "gpus" / "0000:00:1e.0"
        info.mkdir(parents=True)
        (info / "information").write_text(f"Model: \t\t {gpu}\nIRQ:   \t\t 34\n")
    return str(proc)


def fake_compat(tmp_path, version: str | None = "580.65.06", symlink: bool = True) -> str:
    compat = tmp_path / "compat"
    compat.mkdir(parents=True)
    if version:
        (compat / f"libcuda.so.{version}").write_bytes(b"")
        if symlink:
            os.symlink(f"libcuda.so.{version}", compat / "libcuda.so.1")
    return str(compat)


def apply(tmp_path, image_cuda: str, driver: str | None, compat: str | None = "580.65.06",
          env=None, gpu: str = "NVIDIA A10G", smi=no_smi):
    return apply_forward_compat(env or {}, image_cuda, fake_compat(tmp_path, compat),
                                proc_dir=fake_proc(tmp_path, driver, gpu), nvidia_smi=smi)


def test_cpu_image_has_nothing_to_do(tmp_path):
    assert apply(tmp_path, "none", "535.183.01") == ({}, "CPU image: nothing to do")


def test_cpu_host_has_nothing_to_do(tmp_path):
    env = {"LD_LIBRARY_PATH": "/opt/lib", "PATH": "/bin"}
    assert apply(tmp_path, "13.0", None, env=env) == (env, "no GPU driver: nothing to do")


def test_an_old_driver_gets_the_compat_libraries_first(tmp_path):
    env = {"LD_LIBRARY_PATH": "/opt/lib:/usr/local/cuda/compat", "PATH": "/bin"}
    compat = fake_compat(tmp_path)
    new_env, line = apply_forward_compat(env, "13.0", compat, nvidia_smi=no_smi,
                                         proc_dir=fake_proc(tmp_path, "535.183.01"))
    assert new_env["LD_LIBRARY_PATH"] == f"{compat}:/opt/lib:/usr/local/cuda/compat"
    assert new_env["PATH"] == "/bin"
    assert env["LD_LIBRARY_PATH"] == "/opt/lib:/usr/local/cuda/compat"  # the input is untouched
    assert line == ("host driver 535.183.01 < compat 580.65.06: forward compatibility on for "
                    f"CUDA 13.0 ({compat} first on LD_LIBRARY_PATH)")


def test_compat_is_not_repeated_on_the_path(tmp_path):
    compat = fake_compat(tmp_path)
    env, _ = apply_forward_compat({"LD_LIBRARY_PATH": compat}, "13.0", compat,
                                  proc_dir=fake_proc(tmp_path, "535.183.01"), nvidia_smi=no_smi)
    assert env["LD_LIBRARY_PATH"] == compat


@pytest.mark.parametrize("image_cuda, driver, compat", [
    ("13.0", "580.95.05", "580.65.06"),  # a new enough driver: never an older libcuda on top
    ("13.0", "580.65.06", "580.65.06"),
    ("12.6", "535.183.01", "560.35.03"),  # same major family: minor-version compatibility
    ("12.4", "550.144.01", "550.54.15"),
    ("11.8", "470.256.02", None),
])
def test_a_driver_that_runs_the_cuda_is_left_alone(tmp_path, image_cuda, driver, compat):
    env, line = apply(tmp_path, image_cuda, driver, compat, env={"LD_LIBRARY_PATH": "/x"})
    assert env == {"LD_LIBRARY_PATH": "/x"}
    assert line == (f"host driver {driver} runs CUDA {image_cuda} as it is: forward "
                    "compatibility not needed")


def test_cuda_12_on_the_470_default_of_g5(tmp_path):
    env, line = apply(tmp_path, "12.6", "470.256.02", "560.35.03")
    assert env["LD_LIBRARY_PATH"].endswith("/compat")
    assert line.startswith("host driver 470.256.02 < compat 560.35.03: forward compatibility on")


def test_no_compat_libraries_says_cuda_will_fail(tmp_path):
    env, line = apply(tmp_path, "13.0", "535.183.01", compat=None)
    assert "LD_LIBRARY_PATH" not in env
    assert line.startswith("host driver 535.183.01 is older than CUDA 13.0 needs (>= 580.65.06) "
                           "and ")
    assert "holds no compat libcuda: CUDA will not initialise" in line


def test_a_compat_dir_that_does_not_exist_is_no_compat(tmp_path):
    env, line = apply_forward_compat({}, "13.0", str(tmp_path / "missing"), nvidia_smi=no_smi,
                                     proc_dir=fake_proc(tmp_path, "535.183.01"))
    assert env == {} and "holds no compat libcuda" in line


def test_compat_libraries_older_than_the_driver_are_not_used(tmp_path):
    env, line = apply(tmp_path, "14.0", "580.95.05", "580.65.06")  # unknown major: AWS's rule
    assert env == {}
    assert line == ("host driver 580.95.05 is not older than the compat libraries (580.65.06): "
                    "using the host driver")


def test_unknown_major_uses_the_compat_version_as_the_bar(tmp_path):
    env, line = apply(tmp_path, "14.0", "580.95.05", "590.44.01")
    assert env["LD_LIBRARY_PATH"].endswith("/compat")
    assert "host driver 580.95.05 < compat 590.44.01" in line


@pytest.mark.parametrize("gpu", ["NVIDIA GeForce RTX 4090", "Quadro RTX 8000", "NVIDIA RTX A6000",
                                 "NVIDIA TITAN RTX"])
def test_consumer_gpus_get_no_forward_compat(tmp_path, gpu):
    env, line = apply(tmp_path, "13.0", "535.183.01", gpu=gpu)
    assert env == {}
    assert f"forward compatibility does not work on the {gpu}" in line


@pytest.mark.parametrize("gpu", ["Tesla T4", "NVIDIA A10G", "NVIDIA L4", "NVIDIA L40S",
                                 "NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3", "NVIDIA H200",
                                 "Tesla V100-SXM2-16GB",
                                 "NVIDIA RTX PRO 6000 Blackwell Server Edition"])
def test_data_center_gpus_support_forward_compat(gpu):
    assert supports_forward_compat(gpu)


def test_the_open_kernel_module_line_is_read_too(tmp_path):
    proc = fake_proc(tmp_path, "550.144.01", line=OPEN)
    assert host_driver(proc, no_smi) == "550.144.01"


def test_nvidia_smi_is_the_fallback_for_driver_and_gpu_name(tmp_path):
    answers = {"driver_version": "535.183.01\n535.183.01\n", "name": "NVIDIA L4\nNVIDIA L4\n"}
    asked = []

    def smi(field: str) -> str:
        asked.append(field)
        return answers[field]

    env, line = apply_forward_compat({}, "13.0", fake_compat(tmp_path),
                                     proc_dir=str(tmp_path / "no-proc"), nvidia_smi=smi)
    assert asked == ["driver_version", "name"]
    assert "host driver 535.183.01 < compat 580.65.06" in line
    assert env["LD_LIBRARY_PATH"].endswith("/compat")


def test_unreadable_nvidia_smi_output_is_no_driver(tmp_path):
    assert host_driver(str(tmp_path), lambda field: "NVIDIA-SMI has failed\n") is None


def test_compat_version_comes_from_the_symlink_or_the_file(tmp_path):
    assert compat_driver(fake_compat(tmp_path / "a", "580.65.06")) == "580.65.06"
    assert compat_driver(fake_compat(tmp_path / "b", "570.211.01", symlink=False)) == "570.211.01"
    assert compat_driver(str(tmp_path / "none")) is None
