"""The GPU checks as a pytest test: skipped cleanly where CUDA is absent."""

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA on this machine")
def test_c27_handler_and_triton_backend_run_on_the_gpu():
    script = Path(__file__).with_name("gpu_check.py")
    result = subprocess.run([sys.executable, str(script), "--seconds", "1"],
                            capture_output=True, text=True, timeout=900)
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_script_skips_cleanly_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the real check runs instead")
    script = Path(__file__).with_name("gpu_check.py")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "SKIP: no CUDA" in result.stdout


def _gpu_check_module():
    import importlib.util

    path = Path(__file__).with_name("gpu_check.py")
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("require_all, code", [(False, 0), (True, 1)])
def test_a_skipped_check_is_never_reported_as_passed(capsys, require_all, code):
    gpu_check = _gpu_check_module()
    report = {"handler": {"ok": True}, "triton": {"skipped": "nvidia-pytriton is not installed"},
              "resnet50": {"skipped": "torchvision is not installed"}}
    assert gpu_check.verdict(report, require_all) == code
    out = capsys.readouterr().out
    assert "OK: GPU checks passed" not in out
    assert "SKIPPED: triton: nvidia-pytriton" in out and "NOT PASSED: 2 of 3" in out


def test_every_check_skipped_is_not_ok_even_with_cuda(monkeypatch, capsys):
    """main() on a CUDA machine where nothing could run: no "OK", and a failure when the
    GPU workflow requires the GPU (BYOC_REQUIRE_GPU=1)."""
    gpu_check = _gpu_check_module()

    class FakeCuda:
        @staticmethod
        def device_count():
            return 1

        @staticmethod
        def get_device_name(_):
            return "fake GPU"

    class FakeTorch:
        __version__ = "0"
        cuda = FakeCuda()

        class version:  # noqa: N801 - torch.version
            cuda = "13.0"

    skipped = {"skipped": "not installed"}
    monkeypatch.setattr(gpu_check, "cuda_or_none", lambda: FakeTorch)
    monkeypatch.setattr(gpu_check, "train_model", lambda out: out / "digits.pt")
    monkeypatch.setattr(gpu_check, "handler_check", lambda _: dict(skipped))
    monkeypatch.setattr(gpu_check, "triton_check", lambda _: dict(skipped))
    monkeypatch.setattr(gpu_check, "resnet_throughput", lambda *_: dict(skipped))
    monkeypatch.setattr(sys, "argv", ["gpu_check.py"])
    monkeypatch.setenv("BYOC_REQUIRE_GPU", "1")
    assert gpu_check.main() == 1
    assert "OK: GPU checks passed" not in capsys.readouterr().out


def test_the_classifier_the_check_copies_exists():
    gpu_check = _gpu_check_module()
    assert (gpu_check.CLASSIFIER / "1" / "model.py").is_file()
    assert (gpu_check.CLASSIFIER / "config.pbtxt.j2").is_file()


def test_the_gpu_workflow_installs_a_cuda_torch_and_pytriton():
    """The gpu-check job must not run on requirements.lock's CPU torch (it would skip or
    fail on a GPU runner), and must have the tritonserver wheel for the Triton check."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    workflow = yaml.safe_load((root / ".github" / "workflows" / "gpu.yml").read_text())
    runs = [step.get("run", "") for step in workflow["jobs"]["gpu-check"]["steps"]]
    check_at = next(i for i, run in enumerate(runs) if "make gpu-check" in run)
    assert "make gpu-deps" in runs[:check_at]
    makefile = (root / "Makefile").read_text()
    recipe = makefile.split("\ngpu-deps:\n", 1)[1].split("\n\n", 1)[0]
    assert "nvidia-pytriton" in recipe and "torch==" in recipe
    assert "+cpu" not in recipe and "whl/cpu" not in recipe
    assert "torch.version.cuda" in recipe  # it proves the torch it got is a CUDA build
