"""train_digits: accuracy, deterministic weights and the exported TorchScript contract."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import digits_data
import pytest
import torch
import train_digits


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    # torch 2.13 deprecates TorchScript; TorchServe 0.12 still loads models this way.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    assert train_digits.main(["--out", str(out)]) == 0
    return out


def test_metrics_report_held_out_accuracy(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["held_out_accuracy"] >= 0.95
    x_train, x_test, _, _ = digits_data.load_split()
    assert (metrics["n_train"], metrics["n_test"]) == (len(x_train), len(x_test))
    assert metrics["seed"] == train_digits.SEED
    assert metrics["torch_version"] == torch.__version__
    assert metrics["train_seconds"] > 0


def test_two_runs_give_identical_weights(trained: Path, tmp_path: Path) -> None:
    assert train_digits.main(["--out", str(tmp_path)]) == 0
    first = load_torchscript(trained / "digits.pt").state_dict()
    second = load_torchscript(tmp_path / "digits.pt").state_dict()
    assert first.keys() == second.keys()
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


def test_cli_in_a_fresh_process_gives_the_same_weights(trained: Path, tmp_path: Path) -> None:
    script = Path(train_digits.__file__)
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("held-out accuracy 0.9")
    first = load_torchscript(trained / "digits.pt").state_dict()
    second = load_torchscript(tmp_path / "digits.pt").state_dict()
    assert all(torch.equal(tensor, second[name]) for name, tensor in first.items())


def test_torchscript_takes_raw_values_and_returns_probabilities(trained: Path) -> None:
    model = load_torchscript(trained / "digits.pt")
    _, x_test, _, y_test = digits_data.load_split()
    with torch.inference_mode():
        probabilities = model(torch.from_numpy(x_test))
    assert probabilities.shape == (len(x_test), 10)
    assert probabilities.dtype == torch.float32
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(len(x_test)))
    accuracy = (probabilities.argmax(dim=1).numpy() == y_test).mean()
    held_out = json.loads((trained / "metrics.json").read_text())["held_out_accuracy"]
    assert accuracy == pytest.approx(held_out, abs=1e-6)


def test_training_restores_global_torch_settings() -> None:
    threads = torch.get_num_threads()
    x_train, _, y_train, _ = digits_data.load_split()
    train_digits.train(x_train[:50], y_train[:50])
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_accuracy_below_minimum_exits_1_without_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "digits.pt").write_bytes(b"stale model from an earlier run")
    assert train_digits.main(["--out", str(tmp_path), "--min-accuracy", "1.01"]) == 1
    assert "below --min-accuracy" in capsys.readouterr().err
    assert not (tmp_path / "digits.pt").exists()
    assert (tmp_path / "metrics.json").exists()
