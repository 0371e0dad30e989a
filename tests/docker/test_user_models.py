"""Issue 11: two models that are not digits, built, verified and pushed as a user does it.

A: a TorchServe archive whose handler needs transformers, declared in the .mar's own
requirements (tests/fixtures/models/bert_reviews, random weights made here).
B: a Triton repository whose default model calls two others with BLS, one of them with
two version folders (tests/fixtures/models/wordscore).

Each is one `python build.py ... --test --push --registry 127.0.0.1:PORT` against a real
engine and a real registry: every applicable check passes (C15 included), every sample
answers as expected, and the URI printed is a Docker v2 manifest the registry holds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import throwaway_registry
import yaml

from byoc import launcher, registry

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "fixtures" / "models"
sys.path.insert(0, str(MODELS))

from bert_reviews import build_model  # noqa: E402

ROW = re.compile(r"^(C\d\d)\s+(PASS|FAIL|not checked|n/a)\s+(.*?)\s{2,}(.*?)\s*$")


@pytest.fixture(scope="module")
def registry_port(tmp_path_factory):
    with throwaway_registry.running(tmp_path_factory.mktemp("registry")) as port:
        yield port


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    env = throwaway_registry.push_env(tmp_path_factory.mktemp("home"))

    def run(*args: str, timeout: float = 1200) -> tuple[subprocess.CompletedProcess, float]:
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, str(REPO / "build.py"), *args], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=timeout)
        sys.stderr.write(done.stderr)  # the build and verify log, visible with -s
        return done, time.monotonic() - t0
    return run


def verify_rows(stdout: str) -> list[tuple[str, str, str, str]]:
    """(ID, result, check, detail) of each row of the verify table."""
    return [m.groups() for line in stdout.splitlines() if (m := ROW.match(line))]


def assert_every_check_passes(done: subprocess.CompletedProcess) -> dict[str, list]:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "Traceback" not in output
    rows = verify_rows(done.stdout)
    assert rows, done.stdout
    failed = [row for row in rows if row[1] == "FAIL"]
    assert not failed, failed
    by_id: dict[str, list] = {}
    for cid, result, title, detail in rows:
        by_id.setdefault(cid, []).append((result, title, detail))
    assert [r for r, _, _ in by_id["C15"]] == ["PASS"], by_id["C15"]
    assert {r for r, _, _ in by_id["C07"]} == {"PASS"}, by_id["C07"]
    assert re.search(r"\d+ passed, 0 failed", done.stdout), done.stdout[-500:]
    return by_id


def assert_pushed(done: subprocess.CompletedProcess, port: int, repository: str) -> str:
    uri = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"127\.0\.0\.1:{port}/{repository}@sha256:[0-9a-f]{{64}}", uri), uri
    reply = throwaway_registry.manifest(port, repository, uri.split("@", 1)[1])
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == registry.DOCKER_V2  # C19
    return uri


@pytest.fixture(scope="module")
def text_classifier(tmp_path_factory) -> dict[str, Path]:
    """Model A from seeded random weights: the .mar (real torch-model-archiver, with its
    requirements file) and samples whose expected answers the handler gave in process."""
    folder = tmp_path_factory.mktemp("text-classifier")
    weights = build_model.write_model(folder / "weights")
    mar = build_model.archive(weights, folder)
    samples = build_model.write_samples(weights, folder / "samples")
    return {"mar": mar, "samples": samples}


def test_text_classifier_archive_declares_transformers(text_classifier):
    import zipfile

    with zipfile.ZipFile(text_classifier["mar"]) as archive:
        manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
        requirements = archive.read(manifest["model"]["requirementsFile"]).decode()
    assert "transformers==4.44.2" in requirements.splitlines()
    statuses = {p.name: yaml.safe_load(p.read_text())["status"]
                for p in text_classifier["samples"].glob("*.yaml")}
    assert statuses.pop("9-no-text.json.yaml") == 400  # the malformed sample
    assert set(statuses.values()) == {200} and len(statuses) == 5


def test_c07_c15_transformer_archive_verifies_and_pushes(text_classifier, cli, registry_port):
    tag = "byoc-test/user-textclf:1"
    done, seconds = cli("torchserve", "--variant", "cpu", "--mar", str(text_classifier["mar"]),
                        "--samples", str(text_classifier["samples"]), "--tag", tag,
                        "--repository", "byoc-test-textclf", "--test", "--push",
                        "--registry", f"127.0.0.1:{registry_port}")
    checks = assert_every_check_passes(done)
    assert any("6/6 answered as expected" in d for _, _, d in checks["C07"]), checks["C07"]
    assert_pushed(done, registry_port, "byoc-test-textclf")
    # The archive's requirement was installed at build time, into the image's venv.
    version = launcher.client().containers.run(
        tag, ["python", "-c", "import transformers; print(transformers.__version__)"],
        remove=True, network_mode="none").decode().strip()
    assert version == "4.44.2"
    print(f"model A: build, verify and push in {seconds:.0f}s")


def test_c07_c15_c18_bls_repository_with_two_versions_verifies_and_pushes(cli, registry_port):
    tag = "byoc-test/user-wordscore:1"
    samples = MODELS / "wordscore-samples"
    done, seconds = cli("triton", "--variant", "cpu",
                        "--model-repository", str(MODELS / "wordscore"),
                        "--default-model", "pipeline", "--samples", str(samples),
                        "--content-types", "text/plain,application/json", "--tag", tag,
                        "--repository", "byoc-test-wordscore", "--test", "--push",
                        "--registry", f"127.0.0.1:{registry_port}")
    checks = assert_every_check_passes(done)
    count = len([p for p in samples.iterdir() if not p.name.endswith(".yaml")])
    assert any(f"{count}/{count} answered as expected" in d for _, _, d in checks["C07"])
    # A BLS pipeline is not servable by Triton's multi-model load: no capability claimed,
    # so no multi-model checks, and C18 agrees.
    assert checks["C18"][0][0] == "PASS" and "absent" in checks["C18"][0][2]
    assert not {"C21", "C22", "C23", "C24", "C25"} & set(checks)
    labels = launcher.client().images.get(tag).labels
    assert "com.amazonaws.sagemaker.capabilities.multi-models" not in labels
    assert labels["dev.byoc.multi-model"] == "false"
    assert_pushed(done, registry_port, "byoc-test-wordscore")
    print(f"model B: build, verify and push in {seconds:.0f}s")
