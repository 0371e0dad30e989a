"""Build time and size for each cpu image: cold, warm, and a handler-only change.

    .venv/bin/python bench/build_times.py [--flavors torchserve,triton] [--json OUT]

cold: every layer rebuilt (--no-cache), pip and apt cache mounts warm, as on a CI
runner with a restored cache. handler-only: one handler/backend file changed in the
rendered context, then rebuilt. Sizes are the image's uncompressed size and layer
count. Numbers go to BENCHMARKS.md by hand, with the machine they came from."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from byoc import build_inputs, config, docker_cli, launcher  # noqa: E402
from byoc.render import render_context  # noqa: E402

# The file a user edits most: the handler (TorchServe) or a Python backend (Triton).
HANDLER_FILE = {"torchserve": "handlers/digits_handler.py",
                "triton": "triton_backends/digits_preprocess/1/model.py"}


def timed_build(cli, context: Path, tag: str, secrets, no_cache: bool = False) -> float:
    t0 = time.monotonic()
    cli.build(context, tags=[tag], target="image", labels={}, secrets=secrets,
              progress="plain", on_line=lambda line: None, no_cache=no_cache)
    return time.monotonic() - t0


def measure(flavor: str) -> dict:
    spec = config.select(config.load(), flavor, "cpu")
    cli = docker_cli.detect()
    inputs = build_inputs.collect()
    tag = f"byoc-bench/{flavor}:cpu"
    with tempfile.TemporaryDirectory() as scratch:
        secrets = inputs.secrets(Path(scratch))
        context = Path(scratch) / "context"
        render_context(spec, context, inputs.wheelhouse)
        cold = timed_build(cli, context, tag, secrets, no_cache=True)
        warm = timed_build(cli, context, tag, secrets)
        handler = context / HANDLER_FILE[flavor]
        handler.write_text(handler.read_text() + f"\n# bench edit {time.time()}\n")
        handler_only = timed_build(cli, context, tag, secrets)
    image = launcher.client().images.get(tag)
    return {"flavor": flavor, "cold_s": round(cold, 1), "warm_s": round(warm, 1),
            "handler_only_s": round(handler_only, 1),
            "size_gb": round(image.attrs["Size"] / 1e9, 2),
            "layers": len(image.attrs["RootFS"]["Layers"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavors", default="torchserve,triton")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    results = [measure(f) for f in args.flavors.split(",")]
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"| image (cpu) | cold build | no-change rebuild | handler-only rebuild | size "
          f"| layers |   ({machine})")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['flavor']} | {r['cold_s']} s | {r['warm_s']} s | {r['handler_only_s']} s "
              f"| {r['size_gb']} GB | {r['layers']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
