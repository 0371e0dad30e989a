"""Train the example digits classifier and export it as TorchScript.

    python train_digits.py --out DIR [--min-accuracy 0.95]

Writes DIR/digits.pt (TorchScript: float32 (N, 64) raw 0..16 values in, softmax
probabilities (N, 10) out) and DIR/metrics.json. Training is deterministic: the same torch
version produces the same weights on every run. Exits 1, without writing the model, when the
held-out accuracy is below --min-accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import digits_data
import numpy as np
import torch
from torch import nn

SEED = 0
EPOCHS = 300
LEARNING_RATE = 0.01
WEIGHT_DECAY = 1e-3
HIDDEN = 64
MODEL_FILE = "digits.pt"
METRICS_FILE = "metrics.json"


class DigitsMLP(nn.Module):
    """64 -> 64 -> 10 perceptron that takes raw 0..16 pixel values."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, HIDDEN)
        self.output = nn.Linear(HIDDEN, 10)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        # Normalising inside the model keeps every client sending the raw dataset values.
        scaled = pixels / 16.0
        return self.output(torch.relu(self.hidden(scaled)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(pixels), dim=1)


@contextlib.contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """Seed torch and force deterministic single-threaded CPU kernels, restoring afterwards."""
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    # Thread count changes the reduction order of float sums, hence the weights.
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(was_deterministic)


def train(x_train: np.ndarray, y_train: np.ndarray, seed: int = SEED) -> DigitsMLP:
    """Full-batch Adam for a fixed number of epochs, so the result depends only on seed."""
    features = torch.from_numpy(x_train)
    labels = torch.from_numpy(y_train)
    with deterministic_torch(seed):
        model = DigitsMLP()
        optimiser = torch.optim.Adam(
            model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY
        )
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(EPOCHS):
            optimiser.zero_grad()
            loss_fn(model.logits(features), labels).backward()
            optimiser.step()
    return model.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.inference_mode():
        predicted = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return float((predicted == y).mean())


def export(model: DigitsMLP, path: Path) -> None:
    # torch 2.13 warns that TorchScript is deprecated, but it is the format TorchServe 0.12's
    # BaseHandler and Triton's PyTorch backend load.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        torch.jit.script(model).save(str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--min-accuracy", type=float, default=0.95)
    args = parser.parse_args(argv)

    x_train, x_test, y_train, y_test = digits_data.load_split()
    started = time.perf_counter()
    model = train(x_train, y_train)
    seconds = time.perf_counter() - started
    held_out = accuracy(model, x_test, y_test)

    args.out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "held_out_accuracy": round(held_out, 6),
        "n_train": len(x_train),
        "n_test": len(x_test),
        "seed": SEED,
        "torch_version": torch.__version__,
        "train_seconds": round(seconds, 3),
    }
    (args.out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"held-out accuracy {held_out:.4f} on {len(x_test)} digits, trained in {seconds:.2f} s")
    if held_out < args.min_accuracy:
        print(
            f"error: held-out accuracy {held_out:.4f} is below --min-accuracy "
            f"{args.min_accuracy}; {MODEL_FILE} not written",
            file=sys.stderr,
        )
        # A model from an earlier run must not pass for this one.
        (args.out / MODEL_FILE).unlink(missing_ok=True)
        return 1
    export(model, args.out / MODEL_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
