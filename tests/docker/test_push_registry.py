"""Push end to end with real parts: moto's ECR and STS server for the API, Debian's
docker-registry (distribution 2.8, htpasswd accepting moto's ECR token password) standing in
for ECR's registry through BYOC_ECR_PROXY_ENDPOINT, the real built TorchServe image, and the
CLI as users run it.

Failure paths: wrong password, registry down before and during the push, immutable tag
already present, repository missing with creation disabled, API throttling; for each, the
exit status, the message, and that nothing is recorded or left tagged as pushed."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from byoc import launcher, localregistry, registry

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
ACCOUNT = "123456789012"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
PASSWORD = localregistry.moto_password(ACCOUNT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def docker_registry_binary():
    if not Path(localregistry.BINARY).exists():
        message = f"{localregistry.BINARY} missing: `make setup` installs docker-registry"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@contextlib.contextmanager
def running_registry(folder: Path, password: str = PASSWORD):
    port = free_port()
    proc = localregistry.start(folder, port, {"AWS": password})
    try:
        yield port, proc
    finally:
        localregistry.stop_process(proc.pid)
        with contextlib.suppress(ChildProcessError):
            proc.wait(timeout=10)
        remove_local_tags(f"127.0.0.1:{port}/")


def remove_local_tags(prefix: str) -> None:
    dock = launcher.client()
    for image in dock.images.list():
        for tag in image.tags:
            if tag.startswith(prefix):
                dock.api.remove_image(tag, noprune=True)


def local_tags(prefix: str) -> list[str]:
    return [t for image in launcher.client().images.list() for t in image.tags
            if t.startswith(prefix)]


@pytest.fixture(scope="module")
def ecr_api(moto_url):
    import boto3

    return boto3.client("ecr", endpoint_url=moto_url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def registry_port(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("registry")) as (port, _):
        yield port


@pytest.fixture(scope="module")
def base_env(moto_url, registry_port, tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "BYOC_REGISTRY_", "GITHUB_"))}
    env.update(AWS_ENDPOINT_URL=moto_url, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION,
               AWS_CONFIG_FILE=str(home / "aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
               AWS_EC2_METADATA_DISABLED="true", DOCKER_CONFIG=str(home / "docker"),
               BYOC_ECR_PROXY_ENDPOINT=f"127.0.0.1:{registry_port}", NO_COLOR="1")
    return env


@pytest.fixture
def cli(base_env, tmp_path):
    """`python build.py ARGS` with the test's environment; returns (proc, seconds)."""
    def run(*args: str, timeout: float = 600, **env: str):
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(REPO / "build.py"), *args], cwd=REPO,
                              env={**base_env, **env}, capture_output=True, text=True,
                              timeout=timeout)
        sys.stderr.write(proc.stderr)  # the transcript, visible with -s
        return proc, time.monotonic() - t0
    return run


def manifest(port: int, repo: str, ref: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}/v2/{repo}/manifests/{ref}",
                        auth=("AWS", PASSWORD), timeout=10,
                        headers={"Accept": registry.ACCEPT})


def error_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith(("ERROR", "TIP"))]


# -- the happy path ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def first_push(torchserve_image, base_env, registry_port, tmp_path_factory):
    record = tmp_path_factory.mktemp("record") / "pushed.json"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "build.py"), "push", torchserve_image,
                           "--skip-verify", "--record", str(record)], cwd=REPO, env=base_env,
                          capture_output=True, text=True, timeout=900)
    sys.stderr.write(proc.stderr)
    return proc, record, time.monotonic() - t0


def test_push_creates_the_repository_pushes_and_verifies_c19(first_push, ecr_api,
                                                             registry_port, torchserve_image):
    proc, record, _ = first_push
    assert proc.returncode == 0, proc.stderr[-3000:]
    repo = ecr_api.describe_repositories(repositoryNames=["byoc-torchserve"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repo["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD",
                                                           "filter": "latest-*"}]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert repo["encryptionConfiguration"]["encryptionType"] == "AES256"
    policy = ecr_api.get_lifecycle_policy(repositoryName="byoc-torchserve")
    assert json.loads(policy["lifecyclePolicyText"])["rules"][0]["selection"]["countNumber"] == 30
    assert "OK  created ECR repository" in proc.stderr

    uri = proc.stdout.strip()
    assert re.fullmatch(rf"{re.escape(ECR_HOST)}/byoc-torchserve@sha256:[0-9a-f]{{64}}", uri)
    digest = uri.split("@")[1]
    pushed = json.loads(record.read_text())
    assert pushed["uri"] == uri and pushed["media_type"] == registry.DOCKER_V2
    image_id = launcher.client().images.get(torchserve_image).id
    assert pushed["image_id"] == image_id
    for tag in pushed["tags"]:  # the registry itself agrees: digest, type, image
        reply = manifest(registry_port, "byoc-torchserve", tag)
        assert reply.headers["Content-Type"] == registry.DOCKER_V2
        assert reply.headers["Docker-Content-Digest"] == digest
        assert reply.json()["config"]["digest"] == image_id
    assert pushed["tags"][1] == "latest-cpu"
    assert re.search(r"  \| [0-9a-f]{12}  pushed [0-9.]+ MB in", proc.stderr)
    assert "verified: application/vnd.docker.distribution.manifest.v2+json" in proc.stderr
    assert f"OK  image URI: {uri}" in proc.stderr


def test_second_push_of_the_same_image_uploads_nothing(first_push, cli, torchserve_image,
                                                      tmp_path):
    assert first_push[0].returncode == 0
    record = tmp_path / "again.json"
    proc, seconds = cli("push", torchserve_image, "--skip-verify", "--record", str(record))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OK  already pushed" in proc.stderr and "nothing uploaded" in proc.stderr
    assert "pushed 0" not in proc.stderr and "docker push" not in proc.stderr
    assert proc.stdout.strip() == first_push[0].stdout.strip()
    assert json.loads(record.read_text())["uploaded_layers"] == 0
    assert seconds < 30, seconds
    print(f"\nsecond push: {seconds:.1f}s (first: {first_push[2]:.1f}s)", file=sys.stderr)


def test_plain_registry_with_basic_auth_from_the_environment(first_push, cli, registry_port,
                                                             torchserve_image, tmp_path):
    proc, _ = cli("push", torchserve_image, "--skip-verify",
                  "--registry", f"127.0.0.1:{registry_port}/team", "--no-moving-tags",
                  "--record", str(tmp_path / "r.json"),
                  BYOC_REGISTRY_USERNAME="AWS", BYOC_REGISTRY_PASSWORD=PASSWORD)
    assert proc.returncode == 0, proc.stderr[-2000:]
    uri = proc.stdout.strip()
    assert uri.startswith(f"127.0.0.1:{registry_port}/team/byoc-torchserve@sha256:")
    assert "AWS account" not in proc.stderr  # no AWS call at all
    assert manifest(registry_port, "team/byoc-torchserve", uri.split("@")[1]).status_code == 200


def test_existing_repository_settings_are_reported_not_changed(first_push, cli, ecr_api,
                                                               torchserve_image, tmp_path):
    ecr_api.create_repository(repositoryName="legacy", imageTagMutability="MUTABLE")
    proc, _ = cli("push", torchserve_image, "--skip-verify", "--repository", "legacy",
                  "--record", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WARNING ECR repository legacy exists with settings that differ" in proc.stderr
    assert "scan on push: False (config: True)" in proc.stderr
    repo = ecr_api.describe_repositories(repositoryNames=["legacy"])["repositories"][0]
    assert repo["imageTagMutability"] == "MUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is False


# -- failure paths: message, exit status, nothing recorded or tagged ---------------------------

def assert_nothing_pushed(proc, record: Path, prefix: str, before: list[str] = ()) -> None:
    """Exit 1, no URI printed, no record written, no registry-qualified tag left behind."""
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stdout == ""
    assert "image URI" not in proc.stderr
    assert not record.exists()
    assert sorted(local_tags(prefix)) == sorted(before)


@pytest.fixture(scope="module")
def broken_image():
    """Labelled like a byoc CPU image (so the compatibility gate lets it through), with a
    baked model folder (so verify has a model to mount) but no server: `docker run IMAGE
    serve` fails, and so does the verify."""
    import io

    from byoc.render import BAKED_MODEL_DIR

    dockerfile = ("FROM debian:bookworm-slim\nLABEL dev.byoc.flavor=torchserve "
                  "dev.byoc.variant=cpu dev.byoc.cuda=none dev.byoc.torch=2.13.0 "
                  "org.opencontainers.image.version=0.1.0 "
                  "org.opencontainers.image.revision=0123456789ab\n"
                  f"RUN mkdir -p {BAKED_MODEL_DIR} && echo weights > {BAKED_MODEL_DIR}/model.pt\n")
    tag = "byoc-test/push-broken:latest"
    launcher.client().images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    yield tag
    with contextlib.suppress(Exception):
        launcher.client().images.remove(tag, force=True)


def test_failed_verify_never_pushes(first_push, cli, registry_port, broken_image, tmp_path):
    record = tmp_path / "r.json"
    before = local_tags(f"127.0.0.1:{registry_port}/")
    proc, _ = cli("push", broken_image, "--content-tag", "never-pushed", "--record", str(record))
    assert proc.returncode in (1, 3) and proc.stdout == "" and not record.exists()
    assert "==> verify" in proc.stderr and "==> push" not in proc.stderr
    assert manifest(registry_port, "byoc-torchserve", "never-pushed").status_code == 404
    assert local_tags(f"127.0.0.1:{registry_port}/") == before


def test_immutable_tag_already_present_is_refused_before_any_upload(
        first_push, cli, registry_port, torchserve_nomodel_image, tmp_path):
    """Another real image (the no-model build) under the content tag already pushed."""
    content_tag = json.loads(first_push[1].read_text())["tags"][0]
    before = manifest(registry_port, "byoc-torchserve", content_tag).headers
    tags_before = local_tags(f"127.0.0.1:{registry_port}/")
    record = tmp_path / "r.json"
    proc, _ = cli("push", torchserve_nomodel_image, "--skip-verify", "--content-tag",
                  content_tag, "--record", str(record))
    assert_nothing_pushed(proc, record, f"127.0.0.1:{registry_port}/", tags_before)
    assert "docker push" not in proc.stderr  # refused before any upload
    lines = error_lines(proc)
    assert f"already exists with another image ({before['Docker-Content-Digest']})" in lines[0]
    assert "is immutable there: refusing to push" in lines[0]
    assert lines[1].startswith("TIP   an immutable tag names one build forever")
    after = manifest(registry_port, "byoc-torchserve", content_tag).headers
    assert after["Docker-Content-Digest"] == before["Docker-Content-Digest"]


def test_repository_missing_with_creation_disabled(first_push, cli, ecr_api, tmp_path,
                                                   torchserve_image, registry_port):
    record = tmp_path / "r.json"
    proc, _ = cli("push", torchserve_image, "--skip-verify", "--repository", "byoc-missing",
                  "--no-create-repository", "--record", str(record))
    assert_nothing_pushed(proc, record, f"127.0.0.1:{registry_port}/byoc-missing")
    assert error_lines(proc) == [
        f"ERROR ECR repository byoc-missing does not exist in {REGION}, and creating it is "
        "disabled (push.create_repository: false or --no-create-repository)",
        f"TIP   create it: aws ecr create-repository --region {REGION} --repository-name "
        "byoc-missing --image-tag-mutability IMMUTABLE_WITH_EXCLUSION ..., or allow byoc to "
        "create it with the configured settings"]
    with pytest.raises(ecr_api.exceptions.RepositoryNotFoundException):
        ecr_api.describe_repositories(repositoryNames=["byoc-missing"])


def test_wrong_password_on_a_plain_registry(first_push, cli, registry_port, torchserve_image,
                                            tmp_path):
    record = tmp_path / "r.json"
    proc, seconds = cli("push", torchserve_image, "--skip-verify", "--repository", "wrong-pw",
                        "--registry", f"127.0.0.1:{registry_port}", "--record", str(record),
                        BYOC_REGISTRY_USERNAME="AWS", BYOC_REGISTRY_PASSWORD="not-the-password")
    assert_nothing_pushed(proc, record, f"127.0.0.1:{registry_port}/wrong-pw")
    assert error_lines(proc) == [
        f"ERROR registry 127.0.0.1:{registry_port} refused the login as AWS "
        "(BYOC_REGISTRY_USERNAME/BYOC_REGISTRY_PASSWORD): 401 UNAUTHORIZED: authentication "
        "required",
        f"TIP   log in with `docker login 127.0.0.1:{registry_port}` (byoc reads the docker "
        "config and its credential helpers), or set BYOC_REGISTRY_USERNAME and "
        "BYOC_REGISTRY_PASSWORD"]
    assert "trying again" not in proc.stderr  # an auth failure is never retried
    assert "not-the-password" not in proc.stderr + proc.stdout


def test_ecr_token_refused_by_the_registry(first_push, cli, torchserve_image, tmp_path):
    """A registry that does not accept this account's token: ECR's tip names the IAM side."""
    with running_registry(tmp_path / "other", password="210987654321-auth-token") as (port, _):
        record = tmp_path / "r.json"
        proc, _ = cli("push", torchserve_image, "--skip-verify", "--record", str(record),
                      BYOC_ECR_PROXY_ENDPOINT=f"127.0.0.1:{port}")
        assert_nothing_pushed(proc, record, f"127.0.0.1:{port}/")
    lines = error_lines(proc)
    assert lines[0] == (f"ERROR registry 127.0.0.1:{port} refused the login as AWS "
                        "(ECR GetAuthorizationToken): 401 UNAUTHORIZED: authentication required")
    assert "the token from ECR GetAuthorizationToken (account 123456789012) was refused" in \
        lines[1]


def test_registry_down_before_the_push(first_push, cli, torchserve_image, tmp_path):
    port = free_port()  # nothing listens here
    record = tmp_path / "r.json"
    proc, seconds = cli("push", torchserve_image, "--skip-verify", "--record", str(record),
                        BYOC_ECR_PROXY_ENDPOINT=f"127.0.0.1:{port}")
    assert_nothing_pushed(proc, record, f"127.0.0.1:{port}/")
    assert error_lines(proc) == [
        f"ERROR registry 127.0.0.1:{port} unreachable: connection refused (tried 3 times)",
        f"TIP   nothing answers at http://127.0.0.1:{port}: start the local registry "
        "(`scripts/local-registry.sh start`, or `make setup`)"]
    assert proc.stderr.count("trying again in") == 2
    assert seconds < 30


def test_registry_down_during_the_push(first_push, base_env, torchserve_image, tmp_path):
    """Killed once layers are uploading: the daemon retries each layer for about 50 s, then
    byoc probes the registry, finds it gone, and fails without retrying the whole push."""
    record = tmp_path / "r.json"
    with running_registry(tmp_path / "dying") as (port, registry_proc):
        env = {**base_env, "BYOC_ECR_PROXY_ENDPOINT": f"127.0.0.1:{port}"}
        cli_proc = subprocess.Popen(
            [sys.executable, str(REPO / "build.py"), "push", torchserve_image, "--skip-verify",
             "--repository", "dying", "--record", str(record)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(x) for x in cli_proc.stderr],
                                  daemon=True)
        reader.start()
        seen: list[str] = []
        killed_at = None
        deadline = time.monotonic() + 600
        try:
            while cli_proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    line = lines.get(timeout=0.5)
                    seen.append(line)
                    sys.stderr.write(line)
                    if killed_at is None and re.search(r"\d+%", line):
                        registry_proc.kill()  # mid-upload
                        killed_at = time.monotonic()
            cli_proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if cli_proc.poll() is None:
                cli_proc.kill()
        reader.join(timeout=10)
        while not lines.empty():
            seen.append(lines.get())
        stdout = cli_proc.stdout.read()
        assert killed_at is not None, "the push never reached a progress line"
        assert cli_proc.returncode == 1 and stdout == ""
        assert not record.exists()
        assert local_tags(f"127.0.0.1:{port}/") == []
    text = "".join(seen)
    assert "upload interrupted; the daemon retries in" in text
    error = [line for line in seen if line.startswith("ERROR")][0]
    assert error.startswith(f"ERROR 127.0.0.1:{port}/dying:")
    assert error.endswith("connection refused; the registry no longer answers, so the push "
                          "was not retried\n")
    print(f"\nfailed {time.monotonic() - killed_at:.0f}s after the registry died",
          file=sys.stderr)


class Throttle(http.server.BaseHTTPRequestHandler):
    """In front of moto: every ECR call is answered with ThrottlingException."""

    upstream = ""
    count = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).count += 1
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_api_throttling_is_retried_then_reported(first_push, cli, torchserve_image, tmp_path,
                                                 registry_port):
    before = local_tags(f"127.0.0.1:{registry_port}/")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Throttle)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        record = tmp_path / "r.json"
        proc, _ = cli("push", torchserve_image, "--skip-verify", "--record", str(record),
                      AWS_ENDPOINT_URL_ECR=f"http://127.0.0.1:{server.server_address[1]}",
                      AWS_MAX_ATTEMPTS="3")
    finally:
        server.shutdown()
        server.server_close()
    assert_nothing_pushed(proc, record, f"127.0.0.1:{registry_port}/", before)
    assert Throttle.count == 3  # botocore's standard retries, then stop
    assert error_lines(proc) == [
        "ERROR the AWS API throttled describe_repositories (ThrottlingException: Rate "
        "exceeded) through 3 attempts",
        "TIP   run again in a minute; raise AWS_MAX_ATTEMPTS (now 3) if many pushes share the "
        "account"]
