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
