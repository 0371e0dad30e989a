"""Triton-specific behaviour in real containers: same answers as TorchServe, Triton's
native request formats, the model-folder checks of Triton's serve, 64 MB /dev/shm."""

from __future__ import annotations

import io
import json
import struct

import digits_samples as samples
import numpy as np
import pytest
import requests

from byoc import launcher

SHM_DEFAULT = 64 * 1024 * 1024


def labels_through(image: str, bodies: list[tuple[str, bytes]]) -> list[int]:
    with launcher.launched(image) as running:
        running.wait_ready()
        with requests.Session() as http:
            out = []
            for ctype, body in bodies:
                response = http.post(f"{running.url}/invocations", data=body,
                                     headers={"Content-Type": ctype}, timeout=60)
                assert response.status_code == 200, response.text
                out += [p["label"] for p in response.json()["predictions"]]
            return out


def test_same_labels_from_torchserve_and_triton_on_held_out_digits(torchserve_image,
                                                                   triton_image):
    """Identical request bodies, identical labels; accuracy >= 95 % through Triton."""
    from digits_data import load_split

    _, x_test, _, y_test = load_split()
    bodies = [("application/json", samples.as_json(x_test.tolist()))]
    bodies += [("image/png", samples.as_image(row, "PNG")) for row in x_test[:150]]
    torchserve = labels_through(torchserve_image, bodies)
    triton = labels_through(triton_image, bodies)
    assert torchserve == triton
    n = len(y_test)
    accuracy = float(np.mean(np.asarray(triton[:n]) == y_test))
    print(f"\nheld-out accuracy through Triton {accuracy:.4f}; "
          f"{len(triton)} labels identical to TorchServe's")
    assert accuracy >= 0.95


def kserve_payload_request(digit: samples.Digit) -> bytes:
    """A KServe v2 JSON request for the example ensemble: the JSON body as PAYLOAD."""
    ctype, body = samples.request_bodies(digit.pixels)["json"]
    return json.dumps({"inputs": [
        {"name": "PAYLOAD", "shape": [1], "datatype": "BYTES", "data": [body.decode()]},
        {"name": "CONTENT_TYPE", "shape": [1], "datatype": "BYTES", "data": [ctype]},
    ]}).encode()


def kserve_label(response: requests.Response) -> int | None:
    outputs = {o["name"]: o for o in response.json().get("outputs", [])}
    return json.loads(outputs["RESPONSE"]["data"][0])["predictions"][0]["label"]


def binary_json_request(digit: samples.Digit) -> tuple[str, bytes]:
    """Triton's binary tensor format: a JSON header, then raw tensor bytes."""
    ctype, body = samples.request_bodies(digit.pixels)["json"]
    header = json.dumps({
        "inputs": [
            {"name": "PAYLOAD", "shape": [1], "datatype": "BYTES",
             "parameters": {"binary_data_size": len(body) + 4}},
            {"name": "CONTENT_TYPE", "shape": [1], "datatype": "BYTES",
             "parameters": {"binary_data_size": len(ctype) + 4}},
        ],
        "outputs": [{"name": "RESPONSE", "parameters": {"binary_data": False}}],
    }).encode()
    data = header + struct.pack("<I", len(body)) + body + struct.pack("<I", len(ctype)) + \
        ctype.encode()
    return (f"application/vnd.sagemaker-triton.binary+json;json-header-size={len(header)}",
            data)


@pytest.mark.parametrize("front", ["on", "off"])
def test_native_kserve_v2_and_binary_requests(triton_image, front):
    """Triton's own formats work through the front and with the front switched off."""
    sample = samples.digits()[6]
    env = {} if front == "on" else {"BYOC_TRITON_FRONT": "off"}
    with launcher.launched(triton_image, env=env) as running:
        running.wait_ready()
        url = f"{running.url}/invocations"
        v2 = requests.post(url, data=kserve_payload_request(sample),
                           headers={"Content-Type": "application/json"}, timeout=30)
        assert v2.status_code == 200, v2.text
        assert kserve_label(v2) == sample.label
        ctype, body = binary_json_request(sample)
        binary = requests.post(url, data=body, headers={"Content-Type": ctype}, timeout=30)
        assert binary.status_code == 200, binary.text
        size = int(binary.headers["Content-Type"].split("json-header-size=")[1]) \
            if "json-header-size" in binary.headers.get("Content-Type", "") else len(binary.content)
        answer = json.loads(binary.content[:size])
        assert json.loads(answer["outputs"][0]["data"][0])["predictions"][0]["label"] == \
            sample.label
        png = requests.post(url, data=samples.request_bodies(sample.pixels)["png"][1],
                            headers={"Content-Type": "image/png"}, timeout=30)
        # The front speaks image/png; Triton alone does not (and says so with an error).
        assert (png.status_code == 200) == (front == "on")


def exits_with(image: str, model_tar=None, env=None, model_dir=None) -> tuple[int, str]:
    running = launcher.run(image, publish=False, env=env, model_dir=model_dir)
    try:
        code = running.container.wait(timeout=90)["StatusCode"]
        return code, running.logs()
    finally:
        running.remove()


def test_triton_serve_model_folder_checks(triton_nomodel_image, tmp_path):
    """The checks of Triton's own serve, each with a message that says how to fix it."""
    top = tmp_path / "top"
    top.mkdir()
    (top / "config.pbtxt").write_text('name: "x"\n')
    code, logs = exits_with(triton_nomodel_image, model_dir=top)
    assert code == 1 and "config.pbtxt is at the top" in logs

    several = tmp_path / "several"
    for name in ("a", "b"):
        (several / name / "1").mkdir(parents=True)
        (several / name / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "python"\n')
    code, logs = exits_with(triton_nomodel_image, model_dir=several,
                            env={"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": ""})
    assert code == 1 and "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME" in logs and "a, b" in logs

    code, logs = exits_with(triton_nomodel_image, model_dir=several,
                            env={"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "nope"})
    assert code == 1 and "no model folder nope" in logs

    code, logs = exits_with(triton_nomodel_image)
    assert code == 1 and "package-model triton" in logs


def test_runs_in_dockers_default_64mb_shm(triton_image):
    """SageMaker cannot raise /dev/shm: the Python backend must fit Docker's default."""
    with launcher.launched(triton_image) as running:
        running.wait_ready()
        running.container.reload()
        shm = running.container.attrs["HostConfig"].get("ShmSize")
        df = running.container.exec_run(["df", "-B1", "/dev/shm"]).output.decode()
        rows = (6 * 1024 * 1024 - 4096 - 128) // (64 * 4)
        buf = io.BytesIO()
        np.save(buf, np.tile(np.asarray(samples.digits()[3].pixels, np.float32), (rows, 1)))
        big = buf.getvalue()
        response = requests.post(f"{running.url}/invocations", data=big,
                                 headers={"Content-Type": "application/x-npy"}, timeout=60)
    assert shm in (None, 0, SHM_DEFAULT), f"the test must not raise /dev/shm: {shm}"
    assert str(SHM_DEFAULT) in df
    assert response.status_code == 200, response.text
