"""No traceback reaches a user, for the cases that need a Docker engine: a missing image, a
registry that does not answer, a daemon that accepts connections and never answers, and
model files verify cannot read. One ERROR line, one TIP line, the documented exit code
(README: 1 a step failed, 2 bad usage or config). The cases without Docker are in
tests/unit/test_no_traceback.py, whose helpers these share."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_no_traceback import assert_one_error, cli  # noqa: E402

USAGE, ERROR = 2, 1
MISSING = "byoc-test/no-such-image:1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("args", [
    ("verify", MISSING),
    ("push", MISSING, "--skip-verify", "--registry", "127.0.0.1:9"),
    ("check", MISSING),
    ("compare", "--no-build", "--torchserve-image", MISSING, "--servers", "torchserve",
     "--duration", "1"),
], ids=lambda a: a[0])
def test_a_missing_image_is_usage(args):
    assert_one_error(cli(*args), USAGE, MISSING)


def test_deploy_of_an_image_that_is_neither_local_nor_pushed():
    result = cli("deploy", MISSING, "--endpoint", "byoc-test", "--instance-type",
                 "ml.c5.xlarge", "--region", "eu-west-1")
    assert_one_error(result, USAGE, MISSING)


def test_a_registry_that_does_not_answer(torchserve_image):
    port = free_port()  # nothing listens there
    result = cli("push", torchserve_image, "--skip-verify", "--registry", f"127.0.0.1:{port}",
                 "--push-timeout", "20")
    assert_one_error(result, ERROR, f"127.0.0.1:{port}")


def test_a_registry_that_accepts_and_never_answers(torchserve_image):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port = server.getsockname()[1]
        accepted = []

        def accept():
            server.settimeout(1)
            deadline = time.monotonic() + 200
            while time.monotonic() < deadline:
                try:
                    accepted.append(server.accept()[0])
                except OSError:
                    if server.fileno() < 0:
                        return

        threading.Thread(target=accept, daemon=True).start()
        result = cli("push", torchserve_image, "--skip-verify", "--registry",
                     f"127.0.0.1:{port}", "--push-timeout", "20", timeout=400)
    assert_one_error(result, ERROR, f"127.0.0.1:{port}")


def test_a_docker_daemon_that_accepts_and_never_answers(tmp_path):
    """docker-py waits its 120 s timeout, then verify says Docker does not answer."""
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(16)
        result = cli("verify", "byoc-torchserve:0.1.0-cpu", timeout=400,
                     env={"DOCKER_HOST": f"unix://{path}"})
    assert_one_error(result, ERROR, "Docker")


@pytest.mark.parametrize("content", [b"not a tarball", None], ids=["garbage", "empty"])
def test_verify_a_model_tar_it_cannot_read(content, torchserve_image, tmp_path):
    import tarfile

    model_tar = tmp_path / "model.tar.gz"
    if content is None:
        tarfile.open(model_tar, "w:gz").close()
    else:
        model_tar.write_bytes(content)
    assert_one_error(cli("verify", torchserve_image, "--model-tar", str(model_tar),
                         "--startup-timeout", "60"), USAGE, "model")
