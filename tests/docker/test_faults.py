"""The fault table: what each image does when its model or server misbehaves.

Each row is a test, for both flavors, against real containers. The misbehaving models live
in tests/docker/fault_models (a TorchServe handler and a Triton Python backend that raise,
SIGKILL their own worker or stub, hang or sleep when the request asks them to); they are
mounted read-only at /opt/ml/model as SageMaker mounts ModelDataUrl. Where a fault leaves
the container serving, one container per flavor takes the rows in turn.

| row                              | TorchServe                   | Triton                      |
| -------------------------------- | ---------------------------- | --------------------------- |
| handler/backend raises           | 500 JSON, keeps serving (1)  | 500 JSON, keeps serving     |
| the server hangs                 | 504 JSON at the timeout      | 504 JSON at the timeout     |
| worker/stub SIGKILLed mid-request| 5xx JSON at once; /ping 503  | 5xx JSON at once; container |
|                                  | until the worker is back     | exits non-zero (2)          |
| SIGTERM, requests in flight      | they complete, exit 0 < 30 s | they complete, exit 0 < 30 s|
| model missing                    | exit 1, one ERROR line;      | exit 1, one ERROR line;     |
|                                  | verify fails (4)             | verify fails (4)            |
| model corrupt                    | exit non-zero, one line (3)  | exit 1, one line; verify    |
|                                  | verify fails                 | fails                       |
| /dev/shm exhausted (Triton)      |                              | 5xx JSON at once naming     |
|                                  |                              | shared memory; at start:    |
|                                  |                              | exit 1 naming it            |

(1) TorchServe answers a handler exception 503 "Prediction failed"; the adapter makes it
    500, as the Triton host answers it.
(2) Triton 2.51 does not restart a dead Python stub (the model answers 500 "Stub process is
    not healthy" for ever while its ready endpoint says 200): the adapter treats it as fatal,
    that request gets 503 JSON and the container exits 1 so SageMaker replaces it.
(3) A .mar that is not an archive exits 1 at once; a .mar with broken weights makes
    TorchServe restart its worker for ever: after 3 workers died loading it, exit 1.
(4) verify given an empty model.tar.gz refuses it: "holds no model files" (exit 2); it
    ended in a traceback before (issue13-cli.md, done).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
import requests

from byoc import launcher
from byoc.errors import ByocError
from byoc.verify import inputs

FAULT_MODELS = Path(__file__).with_name("fault_models")
TIMEOUT_S = 4  # SAGEMAKER_MODEL_SERVER_TIMEOUT for the rows that measure a deadline
IMAGES = {"torchserve": "torchserve_image", "triton": "triton_image"}
NOMODEL = {"torchserve": "torchserve_nomodel_image", "triton": "triton_nomodel_image"}


def tar_folder(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as archive:
        for path in sorted(folder.iterdir()):
            archive.add(path, arcname=path.name)
    return out


@pytest.fixture(scope="module")
def fault_tars(tmp_path_factory) -> dict[str, Path]:
    """model.tar.gz of each fault model, as SageMaker would be given them."""
    tmp = tmp_path_factory.mktemp("fault-models")
    store = tmp / "store"
    store.mkdir()
    archiver = Path(sys.executable).with_name("torch-model-archiver")
    subprocess.run([str(archiver), "--model-name", "fault", "--version", "1.0", "--handler",
                    str(FAULT_MODELS / "torchserve" / "fault_handler.py"),
                    "--export-path", str(store)], check=True, timeout=120)
    return {"torchserve": tar_folder(store, tmp / "torchserve.tar.gz"),
            "triton": tar_folder(FAULT_MODELS / "triton", tmp / "triton.tar.gz")}


def fault(url: str, name: str | None, timeout: float = 60, **fields) -> tuple[int, dict, float]:
    t0 = time.monotonic()
    response = requests.post(f"{url}/invocations", json={"fault": name, **fields},
                             timeout=timeout)
    took = time.monotonic() - t0
    assert response.headers.get("Content-Type", "").startswith("application/json"), \
        (response.status_code, response.headers.get("Content-Type"), response.text[:200])
    return response.status_code, response.json(), took


def wait_ping(url: str, status: int, within_s: float) -> float:
    """Seconds until /ping answers `status`; fails after within_s."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within_s:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == status:
                return time.monotonic() - t0
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"/ping never answered {status} within {within_s} s")


def error_lines(logs: str) -> list[str]:
    """serve's and the CLI's ERROR lines, and tritonserver's own fatal `error:` line."""
    return [line for line in logs.splitlines()
            if " ERROR " in line or line.startswith(("error:", "ERROR "))]


@pytest.fixture(scope="module", params=sorted(IMAGES))
def faulty(request, fault_tars):
    """One container per flavor serving the fault model, with a 4 s deadline."""
    image = request.getfixturevalue(IMAGES[request.param])
    with launcher.launched(image, model_tar=fault_tars[request.param],
                           env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": str(TIMEOUT_S)},
                           name_hint="byoc-test-faults") as running:
        running.wait_ready()
        yield request.param, running


def test_c11_handler_raises_500_json_and_keeps_serving(faulty, request):
    flavor, running = faulty
    wait_ping(running.url, 200, 90)
    status, body, took = fault(running.url, "raise")
    after, answer, _ = fault(running.url, None)
    assert (after, answer.get("ok")) == (200, True)
    assert status == 500 and body["status"] == 500 and body["error"], (status, body)


def test_c08_server_hang_gets_504_json_at_the_timeout(faulty):
    flavor, running = faulty
    wait_ping(running.url, 200, 90)
    # Hangs twice the deadline, then answers: the server is free again afterwards.
    status, body, took = fault(running.url, "sleep", seconds=2 * TIMEOUT_S)
    assert status == 504 and body["status"] == 504 and "SAGEMAKER_MODEL_SERVER_TIMEOUT" in \
        body["error"], (status, body)
    assert TIMEOUT_S - 0.1 <= took < TIMEOUT_S + 2, f"504 after {took:.2f}s"
    wait_ping(running.url, 200, 90)  # TorchServe replaces the worker it timed out
    deadline = time.monotonic() + 30
    while (status := fault(running.url, None)[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == 200, "never served again after the hang"
    assert running.status() == "running"


def test_c04_c06_worker_killed_mid_request(faulty, request):
    """TorchServe: 5xx JSON at once, /ping 503 until the worker is back, then 200.
    Triton: 5xx JSON at once, then the container exits non-zero (its stub is gone)."""
    flavor, running = faulty
    wait_ping(running.url, 200, 90)
    status, body, took = fault(running.url, "kill")
    assert 500 <= status < 600 and body["status"] == status, (status, body)
    assert took < TIMEOUT_S, f"answered after {took:.2f}s, not before the {TIMEOUT_S} s deadline"
    if flavor == "torchserve":
        wait_ping(running.url, 503, 5)
        back = wait_ping(running.url, 200, 90)
        assert fault(running.url, None)[0] == 200, f"not serving {back:.1f}s after recovery"
        return
    deadline = time.monotonic() + 30
    while running.status() == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert running.status() == "exited" and running.exit_code() != 0, \
        "a dead Python stub left the container running (and /ping 200)"


@pytest.mark.parametrize("flavor", sorted(IMAGES))
def test_c02_sigterm_lets_in_flight_requests_complete(flavor, fault_tars, request):
    image = request.getfixturevalue(IMAGES[flavor])
    with launcher.launched(image, model_tar=fault_tars[flavor], name_hint="byoc-test-faults",
                           env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "20"}) as running:
        running.wait_ready()
        answers: list[tuple[int, dict, float]] = []
        clients = [threading.Thread(target=lambda: answers.append(
            fault(running.url, "sleep", seconds=1.5))) for _ in range(2)]
        for client in clients:
            client.start()
        time.sleep(0.5)  # both are in flight (one running, one queued behind it)
        code, took = running.stop(timeout_s=30)
        for client in clients:
            client.join(timeout=30)
    assert [a[0] for a in answers] == [200, 200], answers
    assert code == 0 and took < 30, f"exit {code} {took:.1f}s after SIGTERM"


def run_until_exit(image: str, model_tar: Path | None, within_s: float,
                   env: dict | None = None) -> tuple[int | None, str]:
    with launcher.launched(image, model_tar=model_tar, env=env or {},
                           name_hint="byoc-test-faults") as running:
        deadline = time.monotonic() + within_s
        while running.status() == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
        return running.exit_code(), running.logs()


@pytest.mark.parametrize("flavor", sorted(IMAGES))
def test_c04_model_missing_exits_nonzero_with_one_line(flavor, request, run_cli, tmp_path):
    image = request.getfixturevalue(NOMODEL[flavor])
    code, logs = run_until_exit(image, None, 60)
    errors = error_lines(logs)
    assert code not in (None, 0), "kept running without a model"
    assert len(errors) == 1 and "no model" in errors[0], errors


@pytest.mark.parametrize("flavor", sorted(IMAGES))
def test_c04_verify_fails_on_a_missing_model(flavor, request, run_cli, tmp_path):
    image = request.getfixturevalue(NOMODEL[flavor])
    empty = tmp_path / "empty.tar.gz"
    tarfile.open(empty, "w:gz").close()
    result = run_cli("verify", image, "--model-tar", str(empty), "--startup-timeout", "60",
                     timeout=600)
    said = result.stdout + result.stderr
    assert "Traceback" not in said, said[-2000:]
    assert result.returncode != 0 and len(error_lines(said)) >= 1
    assert "no model" in said or "holds no" in said, said[-1500:]


def corrupt_model(flavor: str, image: str, into: Path, how: str) -> Path:
    """The image's own baked model, broken: weights that are not TorchScript, or (for
    TorchServe) a .mar that is not an archive."""
    folder = into / f"{flavor}-{how}"
    folder.mkdir()
    with tarfile.open(fileobj=io.BytesIO(inputs.export_folder(image, "/opt/byoc/model-store"))
                      ) as archive:
        archive.extractall(folder, filter="data")
    if flavor == "triton":
        (folder / "digits_classifier" / "1" / "digits.pt").write_bytes(b"not torchscript")
    else:
        [mar] = folder.glob("*.mar")
        if how == "archive":
            mar.write_bytes(b"not a zip archive")
        else:
            with zipfile.ZipFile(mar) as source:
                items = [(info, source.read(info)) for info in source.infolist()]
            with zipfile.ZipFile(mar, "w") as target:
                for info, data in items:
                    target.writestr(info, b"not torchscript" if info.filename.endswith(".pt")
                                    else data)
    return tar_folder(folder, into / f"{flavor}-{how}.tar.gz")


@pytest.mark.parametrize("flavor, how", [("torchserve", "archive"), ("torchserve", "weights"),
                                         ("triton", "weights")])
def test_c04_corrupt_model_exits_nonzero_and_verify_fails(flavor, how, request, run_cli,
                                                         tmp_path):
    image = request.getfixturevalue(IMAGES[flavor])
    nomodel = request.getfixturevalue(NOMODEL[flavor])
    broken = corrupt_model(flavor, image, tmp_path, how)
    result = run_cli("verify", nomodel, "--model-tar", str(broken), "--startup-timeout", "120",
                     timeout=600)
    said = result.stdout + result.stderr
    assert result.returncode != 0 and "ERROR" in said, said[-2000:]
    assert "exited with code" in said, f"verify did not see the container exit:\n{said[-1500:]}"
    cause = {"archive": "not a valid TorchServe model archive",
             "weights": "PytorchStreamReader failed"}[how]
    assert cause in said, said[-2000:]


def test_triton_shm_exhausted_is_a_clear_error_not_a_hang(fault_tars, triton_image):
    """Running: /dev/shm filled, an answer that needs more shared memory fails at once
    with a message naming it, and the next request is served. At start: stubs that do not
    fit exit 1 with a line naming shared memory."""
    fill = ("f = open('/dev/shm/byoc-fill', 'wb')\n"
            "try:\n    while True: f.write(b'x' * 1048576); f.flush()\n"
            "except OSError as e: print(e)\n")
    with launcher.launched(triton_image, model_tar=fault_tars["triton"],
                           name_hint="byoc-test-faults") as running:
        running.wait_ready()
        filled = running.container.exec_run(["python", "-c", fill]).output.decode()
        assert "No space left" in filled, filled
        status, body, took = fault(running.url, "big", timeout=30, bytes=5_000_000)
        assert 500 <= status < 600 and "shared memory" in body["error"], (status, body)
        assert took < 5, f"{took:.1f}s"
        assert fault(running.url, None)[0] == 200
    code, logs = run_until_exit(triton_image, None, 120,
                                env={"SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE": str(40 << 20)})
    assert code not in (None, 0)
    assert any("shared memory" in line for line in error_lines(logs)), error_lines(logs)


def test_fault_models_parse_their_requests():
    """The fault handler answers plain requests without a server (a quick self-check)."""
    sys.path.insert(0, str(FAULT_MODELS / "torchserve"))
    try:
        import fault_handler
    finally:
        sys.path.pop(0)
    answer = fault_handler.handle([{"body": json.dumps({"x": 1}).encode()}], None)
    assert json.loads(answer[0])["ok"] is True
    with pytest.raises(RuntimeError, match="injected"):
        fault_handler.handle([{"body": {"fault": "raise"}}], None)


def test_launcher_reports_an_exit_before_ready(triton_nomodel_image):
    """What verify relies on for the rows above: an exit before ready is one ByocError."""
    with launcher.launched(triton_nomodel_image, name_hint="byoc-test-faults") as running:
        with pytest.raises(ByocError, match="exited with code 1"):
            running.wait_ready(60)


BATCH_ENV = {"torchserve": {"BYOC_BATCH_SIZE": "8", "BYOC_MAX_BATCH_DELAY_MS": "500"},
             "triton": {}}  # Triton's classifier batches dynamically already


@pytest.mark.parametrize("flavor", sorted(IMAGES))
def test_c11_a_bad_request_fails_only_itself_in_a_batch(flavor, request):
    """8 requests at once (the gpu variants batch 8), one of them bad: it gets its 400 JSON,
    its batch-mates their predictions."""
    from concurrent.futures import ThreadPoolExecutor

    image = request.getfixturevalue(IMAGES[flavor])
    good = json.dumps({"instances": [[0, 0, 5, 13, 9, 1, 0, 0] * 8]}).encode()
    bad = b'{"instances": [[1, 2, 3]]}'
    bodies = [good] * 3 + [bad] + [good] * 4
    with launcher.launched(image, env=BATCH_ENV[flavor], name_hint="byoc-test-faults") as running:
        running.wait_ready()
        requests.post(f"{running.url}/invocations", data=good, timeout=30,
                      headers={"Content-Type": "application/json"})  # warm

        def send(body):
            return requests.post(f"{running.url}/invocations", data=body, timeout=30,
                                 headers={"Content-Type": "application/json"})

        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(send, bodies))
        logs = running.logs()
    statuses = [a.status_code for a in answers]
    assert statuses == [200] * 3 + [400] + [200] * 4, (statuses, [a.text[:80] for a in answers])
    assert "got shape (1, 3)" in answers[3].json()["error"]
    assert all(len(a.json()["predictions"]) == 1 for i, a in enumerate(answers) if i != 3)
    if flavor == "torchserve":
        assert '"batchSize": 8' in logs  # TorchServe registered the model with batching on
