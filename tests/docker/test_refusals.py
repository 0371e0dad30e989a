"""Issue 11's refusals through the build command, as a user runs it, with a real engine.

Every case (tests/fixtures/models/refusals.py) runs `python build.py triton|torchserve
... --tag byoc-test/refusal-CASE:1 --test --push --registry 127.0.0.1:PORT`: exit 2 for
a bad model (before the build or inside it), 3 for a sample answered otherwise; one
ERROR line saying what is wrong, one TIP, no traceback; no image with the tag and nothing
in the registry. Cases refused inside the build reuse BuildKit's cache of the base
layers: each costs seconds to a minute on 2 cores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import throwaway_registry

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures" / "models"))

import refusals  # noqa: E402


@pytest.fixture(scope="module")
def registry_port(tmp_path_factory):
    with throwaway_registry.running(tmp_path_factory.mktemp("registry")) as port:
        yield port


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return throwaway_registry.push_env(tmp_path_factory.mktemp("home"))


def tagged(reference: str) -> str:
    return subprocess.run(["docker", "images", "-q", reference], capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.parametrize("case", refusals.CASES, ids=lambda case: case.name)
def test_refusal(case: refusals.Case, tmp_path: Path, env, registry_port) -> None:
    reference = refusals.tag(case.name)
    assert not tagged(reference), f"{reference} exists before the test"
    folder = tmp_path / case.name
    folder.mkdir()
    repository = f"byoc-test-refusal-{case.name}"
    args = case.make(folder) + ["--test", "--push", "--registry",
                                f"127.0.0.1:{registry_port}", "--repository", repository]
    done = subprocess.run([sys.executable, str(REPO / "build.py"), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output[-4000:]
    assert done.returncode == case.exit_code, output[-4000:]
    errors = [line for line in output.splitlines() if line.startswith("ERROR ")]
    tips = [line for line in output.splitlines() if line.startswith("TIP ")]
    assert len(errors) == 1, output[-4000:]
    assert case.error in errors[0], errors[0]
    assert len(tips) == 1 and tips[0][4:].strip() and case.tip in tips[0], tips
    if case.stage == "render":  # refused before the build: the user's file is named
        assert str(folder) in errors[0], errors[0]
    if case.stage == "verify":  # the verify table names the sample and the difference
        [row] = [line for line in done.stdout.splitlines()
                 if line.startswith("C07") and "every sample answered" in line]
        assert "FAIL" in row and "7/8 answered as expected" in row, row
        assert "2-negated.txt: answer differs at $.label: 'negative' != 'positive'" in row
    assert not tagged(reference), f"{reference} was tagged"
    assert repository not in throwaway_registry.repositories(registry_port)

