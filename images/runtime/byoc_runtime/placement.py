"""Where the model server says it placed the model: `python -m byoc_runtime.placement`.

Run inside a serving container (verify's C27): reads what serve wrote at start
(STATE_FILE: the flavor and the server's loopback URLs), asks the server through its
adapter (TorchServe: each worker's gpu flag; Triton: each model's instance kind), and
prints one JSON line {"what": "gpu" | "cpu"}."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

STATE_FILE = Path("/tmp/byoc/serve.json")


def write_state(flavor: str, state: dict) -> None:
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps({"flavor": flavor, **state}))


def main() -> int:
    try:
        state = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError) as exc:
        print(f"no serve state ({STATE_FILE}): {exc}", file=sys.stderr)
        return 1
    adapter = importlib.import_module(f"byoc_runtime.adapters.{state['flavor']}")
    print(json.dumps(adapter.placement(state)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
