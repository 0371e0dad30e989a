"""Issue 11's bad inputs that byoc refuses before anything is built, through the CLI as a
user runs it (`python build.py render ...`, which refuses exactly where a build does).

Each: exit 2, one ERROR line naming the user's file (or field) and what is wrong, a TIP
line, no traceback, and no Dockerfile written. The same cases through `build.py triton|
torchserve --tag ...` with a real Docker engine, checking that nothing is tagged, are in
tests/docker/test_refusals.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures" / "models"))

import refusals  # noqa: E402

PREBUILD = [case for case in refusals.CASES if case.stage == "render"]


def render_args(build_args: list[str], out: Path) -> list[str]:
    """The build command's arguments as `render` takes them (no --tag, an --out)."""
    args = list(build_args)
    at = args.index("--tag")
    del args[at:at + 2]
    return ["render", *args, "--out", str(out)]


def check_refusal(case: refusals.Case, done: subprocess.CompletedProcess,
                  named: Path) -> str:
    """The refusal as issue 11 wants it; returns its ERROR line."""
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == case.exit_code, output
    errors = [line for line in output.splitlines() if line.startswith("ERROR ")]
    tips = [line for line in output.splitlines() if line.startswith("TIP ")]
    assert len(errors) == 1, output
    assert case.error in errors[0], errors[0]
    assert str(named) in errors[0], f"the ERROR line does not name {named}: {errors[0]}"
    assert len(tips) == 1 and tips[0][4:].strip(), output
    assert case.tip in tips[0], tips[0]
    return errors[0]


@pytest.mark.parametrize("case", PREBUILD, ids=lambda case: case.name)
def test_refused_before_the_build(case: refusals.Case, tmp_path: Path) -> None:
    folder = tmp_path / case.name
    folder.mkdir()
    out = tmp_path / "context"
    done = subprocess.run([sys.executable, str(REPO / "build.py"),
                           *render_args(case.make(folder), out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    # Every case's broken input lies in its folder, and the ERROR line names it there
    # (not byoc's copy in the build context).
    check_refusal(case, done, folder)
    assert not (out / "Dockerfile").exists()

