"""No traceback reaches a user: each subcommand, run as a user runs it, against a missing or
unreadable file and a Docker daemon that does not answer, ends in one ERROR line, a TIP
line, and the exit code README documents (0 ok, 1 a step failed, 2 bad usage or config,
3 contract, 4 will not start). The cases that need a Docker engine (a missing image, a
registry that does not answer, a daemon that accepts and never answers) are in
tests/docker/test_cli_errors.py.

Unreadable files: the suite runs as root, who reads any file whatever its mode, so
"unreadable" is a path that cannot be read as the file it should be: a folder, or bytes
that are not the format."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
USAGE, ERROR = 2, 1


def cli(*args: str, env: dict | None = None, drop: tuple[str, ...] = (), timeout: int = 300):
    environment = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run([sys.executable, str(REPO / "build.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**environment, "NO_COLOR": "1", **(env or {})})


def assert_one_error(result, code: int, *words: str) -> None:
    said = result.stdout + result.stderr
    errors = [line for line in said.splitlines() if line.startswith("ERROR")]
    tips = [line for line in said.splitlines() if line.startswith("TIP")]
    assert "Traceback" not in said, said[-3000:]
    assert len(errors) == 1 and len(tips) == 1, said[-2000:]
    assert result.returncode == code, (result.returncode, errors, tips)
    for word in words:
        assert word.lower() in (errors[0] + tips[0]).lower(), (word, errors[0], tips[0])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli-files")
    garbage = tmp / "garbage.bin"
    garbage.write_bytes(b"\x00garbage, not any format\xff" * 10)
    folder = tmp / "a-folder"
    folder.mkdir()
    return {"missing": tmp / "missing.file", "garbage": garbage, "folder": folder,
            "out": tmp / "out" / "model.tar.gz"}


MISSING_FILE = [
    ("torchserve", "--variant", "cpu", "--mar", "{missing}"),
    ("torchserve", "--variant", "cpu", "--ca-cert", "{missing}"),
    ("torchserve", "--variant", "cpu", "--wheelhouse", "{missing}"),
    ("triton", "--variant", "cpu", "--model-repository", "{missing}"),
    ("triton", "--variant", "cpu", "--config", "{missing}"),
    ("render", "torchserve", "--variant", "cpu", "--mar", "{missing}"),
    ("render", "triton", "--variant", "cpu", "--config", "{missing}"),
    ("render", "torchserve", "--variant", "cpu", "--ca-cert", "{missing}"),
    ("package-model", "torchserve", "--variant", "cpu", "--mar", "{missing}",
     "--out", "{out}"),
    ("verify", "byoc-anything:1", "--model-tar", "{missing}", "--config", "{missing}"),
    ("verify", "byoc-anything:1", "--config", "{missing}"),
    ("push", "byoc-anything:1", "--config", "{missing}"),
    ("compare", "--mar", "{missing}"),
    ("compare", "--config", "{missing}"),
]
UNREADABLE_FILE = [
    ("torchserve", "--variant", "cpu", "--mar", "{garbage}"),
    ("render", "torchserve", "--variant", "cpu", "--mar", "{folder}"),
    ("torchserve", "--variant", "cpu", "--config", "{garbage}"),
    ("compare", "--model", "{garbage}"),
    ("triton", "--variant", "cpu", "--model-repository", "{garbage}"),
    ("render", "torchserve", "--variant", "cpu", "--samples", "{garbage}"),
    ("package-model", "triton", "--variant", "cpu", "--model-repository", "{garbage}",
     "--out", "{out}"),
]
def _args(case, files):
    return [part.format(**files) for part in case]


@pytest.mark.parametrize("case", MISSING_FILE, ids=" ".join)
def test_a_missing_file_is_one_error_and_a_tip(case, files):
    assert_one_error(cli(*_args(case, files)), USAGE)


@pytest.mark.parametrize("case", UNREADABLE_FILE, ids=" ".join)
def test_an_unreadable_file_is_one_error_and_a_tip(case, files):
    assert_one_error(cli(*_args(case, files)), USAGE)


NO_DAEMON = [
    (("verify", "byoc-torchserve:0.1.0-cpu"), ERROR),
    (("push", "byoc-torchserve:0.1.0-cpu", "--skip-verify", "--registry", "127.0.0.1:9"),
     ERROR),
    (("check", "byoc-torchserve:0.1.0-cpu"), ERROR),
    (("torchserve", "--variant", "cpu"), ERROR),
    (("triton", "--variant", "cpu"), ERROR),
    (("package-model", "torchserve", "--variant", "cpu", "--out", "{out}"), ERROR),
    (("compare", "--no-build", "--duration", "1"), ERROR),
]


@pytest.mark.parametrize("case, code", NO_DAEMON, ids=[" ".join(c) for c, _ in NO_DAEMON])
def test_a_docker_daemon_that_is_not_there(case, code, files, tmp_path):
    """DOCKER_HOST names a socket nothing listens on (the daemon is down)."""
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"}
    assert_one_error(cli(*_args(case, files), env=env), code, "Docker")


def test_undeploy_without_aws_credentials(tmp_path):
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    drop = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER")
    assert_one_error(cli("undeploy", "no-such-endpoint", "--region", "eu-west-1", env=env,
                         drop=drop), ERROR, "credentials")
