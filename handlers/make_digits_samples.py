"""Write the example model's samples folder: request bodies and expected answers.

    python handlers/make_digits_samples.py --out images/samples/digits

Trains the model exactly as the build does (deterministic), then writes one body per
held-out digit, cycling through the four content types, and one JSON body holding all
ten; each has a sidecar with the answer the trained model gives (docs/models.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import digits_codec
import digits_data
import digits_samples
import torch
import train_digits
import yaml

KINDS = ("png", "json", "jpeg", "npy")
EXTENSION = {"png": ".png", "json": ".json", "jpeg": ".jpeg", "npy": ".npy"}
TOLERANCE = 0.01  # other CPUs round the trained weights a little differently


def answer(model, body: bytes, content_type: str) -> dict:
    features = digits_codec.decode(body, content_type)
    with torch.inference_mode():
        probabilities = model(torch.from_numpy(features)).numpy()
    return json.loads(digits_codec.encode(probabilities))


def write(out: Path, name: str, content_type: str, body: bytes, expect: dict) -> None:
    (out / name).write_bytes(body)
    sidecar = {"content_type": content_type, "accept": "application/json",
               "expect": expect, "tolerance": TOLERANCE}
    (out / f"{name}.yaml").write_text(yaml.safe_dump(sidecar, sort_keys=False, width=100))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    x_train, _, y_train, _ = digits_data.load_split()
    model = train_digits.train(x_train, y_train)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.iterdir():
        old.unlink()
    for i, digit in enumerate(digits_samples.digits()):
        kind = KINDS[i % len(KINDS)]
        content_type, body = digits_samples.request_bodies(digit.pixels)[kind]
        expect = answer(model, body, content_type)
        if expect["predictions"][0]["label"] != digit.label:
            print(f"digit {digit.label} as {kind} is misread: not a good sample",
                  file=sys.stderr)
            return 1
        write(args.out, f"digit-{digit.label}{EXTENSION[kind]}", content_type, body, expect)
    batch = digits_samples.as_json([d.pixels for d in digits_samples.digits()])
    write(args.out, "ten-digits.json", "application/json", batch,
          answer(model, batch, "application/json"))
    print(f"wrote {len(list(args.out.glob('*.yaml')))} samples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
