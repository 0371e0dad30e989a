"""`build.py deploy` / `undeploy` end to end, as users run them: the real TorchServe image
pushed by `build.py push` to a moto-backed "ECR" (Debian's docker-registry standing in for
ECR's registry), moto's SageMaker, S3, IAM and STS for the control plane, and the real
container answering the samples.

moto's sagemaker-runtime only returns canned answers, so a stand-in for SageMaker's data
plane runs here: it reads what deploy created from moto (CreateModel's image digest,
environment and ModelDataUrl; the endpoint config's async output path), starts that image
as SageMaker does (launcher: `serve`, 64 MB /dev/shm, the model read-only at /opt/ml/model)
and forwards InvokeEndpoint / InvokeEndpointAsync to its /invocations. Run with -s for the
transcript: every command, its output, and the request fields asserted."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import uuid
from pathlib import Path

import boto3
import pytest
import requests
import throwaway_registry

from byoc import launcher, localregistry

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit"))
from test_deploy_support import UpdateState, install_update_endpoint  # noqa: E402

REGION = "eu-west-1"
ACCOUNT = "123456789012"
PASSWORD = localregistry.moto_password(ACCOUNT)
ROLE_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
    "Action": "sts:AssumeRole"}]})
pytestmark = pytest.mark.timeout(1800)


# -- the stand-in for SageMaker's data plane ---------------------------------------------------

class RuntimeStandIn:
    """InvokeEndpoint and InvokeEndpointAsync, served by the image deploy put behind the
    endpoint, started from what moto holds for it."""

    def __init__(self, moto_url: str):
        kw = dict(endpoint_url=moto_url, region_name=REGION, aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        self.sm, self.s3 = boto3.client("sagemaker", **kw), boto3.client("s3", **kw)
        self.running: dict[str, tuple[str, launcher.Running, tempfile.TemporaryDirectory]] = {}
        self.started: list[dict] = []  # what each container got: image, env
        self.lock = threading.Lock()

    def container(self, endpoint: str) -> launcher.Running:
        described = self.sm.describe_endpoint(EndpointName=endpoint)
        assert described["EndpointStatus"] == "InService", described
        config_name = described["EndpointConfigName"]
        with self.lock:
            if endpoint in self.running and self.running[endpoint][0] == config_name:
                return self.running[endpoint][1]
            self.stop(endpoint)  # an update: the new fleet replaces the old
            config = self.sm.describe_endpoint_config(EndpointConfigName=config_name)
            model = self.sm.describe_model(
                ModelName=config["ProductionVariants"][0]["ModelName"])["PrimaryContainer"]
            digest = model["Image"].rsplit("@", 1)[1]
            local = next(i for i in launcher.client().images.list()
                         if any(d.endswith("@" + digest) for d in i.attrs.get("RepoDigests")
                                or []))
            scratch = tempfile.TemporaryDirectory(prefix="byoc-standin-")
            model_dir = None
            if model.get("ModelDataUrl"):
                bucket, key = model["ModelDataUrl"][5:].split("/", 1)
                archive = Path(scratch.name) / "model.tar.gz"
                archive.write_bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                model_dir = launcher.extract_model(archive, Path(scratch.name))
            env = model.get("Environment") or {}
            running = launcher.run(local.id, model_dir=model_dir, env=env,
                                   name_hint="byoc-test-runtime-standin")
            running.wait_ready(120)
            self.started.append({"endpoint": endpoint, "image": model["Image"], "env": env,
                                 "model_data": model.get("ModelDataUrl")})
            self.running[endpoint] = (config_name, running, scratch)
            return running

    def stop(self, endpoint: str) -> None:
        if endpoint in self.running:
            _, running, scratch = self.running.pop(endpoint)
            running.remove()
            scratch.cleanup()

    def invoke(self, endpoint: str, body: bytes, headers) -> tuple[int, dict, bytes]:
        running = self.container(endpoint)
        forward = {k: v for k, v in headers.items() if k.lower() in ("content-type", "accept")}
        reply = requests.post(f"{running.url}/invocations", data=body, headers=forward,
                              timeout=70)
        if reply.status_code < 300:
            return 200, {"Content-Type": reply.headers.get("Content-Type", "")}, reply.content
        # SageMaker's answer to a container error: 424 ModelError, the container's own
        # status and body inside.
        return 424, {"x-amzn-errortype": "ModelError", "Content-Type": "application/json"}, \
            json.dumps({"message": "Received client error from primary", "OriginalStatusCode":
                        reply.status_code, "OriginalMessage": reply.text}).encode()

    def invoke_async(self, endpoint: str, headers) -> tuple[int, dict, bytes]:
        location = headers["X-Amzn-SageMaker-InputLocation"]
        bucket, key = location[5:].split("/", 1)
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        status, _, answer = self.invoke(endpoint, body, {
            "Content-Type": headers.get("X-Amzn-SageMaker-Content-Type", ""),
            "Accept": headers.get("X-Amzn-SageMaker-Accept", "")})
        config = self.sm.describe_endpoint_config(EndpointConfigName=self.sm.describe_endpoint(
            EndpointName=endpoint)["EndpointConfigName"])["AsyncInferenceConfig"]["OutputConfig"]
        name = f"{uuid.uuid4()}.out"
        out = config["S3OutputPath"] + name
        failure = config["S3FailurePath"] + name
        target = out if status == 200 else failure
        out_bucket, out_key = target[5:].split("/", 1)
        self.s3.put_object(Bucket=out_bucket, Key=out_key, Body=answer)
        return 202, {"X-Amzn-SageMaker-OutputLocation": out,
                     "X-Amzn-SageMaker-FailureLocation": failure,
                     "Content-Type": "application/json"}, json.dumps(
            {"InferenceId": name}).encode()

    def serve(self) -> tuple[str, http.server.ThreadingHTTPServer]:
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                match = re.fullmatch(r"/endpoints/([^/]+)/(invocations|async-invocations)",
                                     self.path)
                if not match:
                    self.send_error(404)
                    return
                if match.group(2) == "invocations":
                    status, headers, answer = standin.invoke(match.group(1), body, self.headers)
                else:
                    status, headers, answer = standin.invoke_async(match.group(1), self.headers)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}", server


# -- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moto(moto_url):
    install_update_endpoint()
    return moto_url


@pytest.fixture(scope="module")
def registry_port(tmp_path_factory):
    """A registry accepting moto's ECR password: the one `make setup` started when it
    answers (its layers are warm), else one of our own."""
    if localregistry.answers(localregistry.DEFAULT_PORT) and requests.get(
            f"http://127.0.0.1:{localregistry.DEFAULT_PORT}/v2/", auth=("AWS", PASSWORD),
            timeout=5).status_code == 200:
        yield localregistry.DEFAULT_PORT
        return
    assert throwaway_registry.PASSWORD == PASSWORD  # both moto's ECR password for ACCOUNT
    with throwaway_registry.running(tmp_path_factory.mktemp("registry")) as port:
        yield port


@pytest.fixture(scope="module")
def standin(moto):
    runtime = RuntimeStandIn(moto)
    url, server = runtime.serve()
    runtime.url = url
    yield runtime
    server.shutdown()
    for endpoint in list(runtime.running):
        runtime.stop(endpoint)


@pytest.fixture(scope="module")
def env(moto, standin, registry_port, tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_"))}
    base.update(AWS_ENDPOINT_URL=moto, AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=standin.url,
                AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                AWS_REGION=REGION, AWS_CONFIG_FILE=str(home / "aws-config"),
                AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
                AWS_EC2_METADATA_DISABLED="true", DOCKER_CONFIG=str(home / "docker"),
                BYOC_ECR_PROXY_ENDPOINT=f"127.0.0.1:{registry_port}", NO_COLOR="1")
    return base


@pytest.fixture(scope="module")
def cli(env):
    def run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        print(f"\n$ python build.py {' '.join(args)}", flush=True)
        proc = subprocess.run([sys.executable, str(REPO / "build.py"), *args], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=timeout)
        sys.stdout.write(proc.stderr + proc.stdout + f"[exit {proc.returncode}]\n")
        return proc
    return run


@pytest.fixture(scope="module")
def aws_clients(moto):
    kw = dict(endpoint_url=moto, region_name=REGION, aws_access_key_id="testing",
              aws_secret_access_key="testing")
    return {name: boto3.client(name, **kw) for name in ("sagemaker", "s3", "iam")}


@pytest.fixture(scope="module")
def role(aws_clients) -> str:
    return aws_clients["iam"].create_role(RoleName="byoc-sagemaker-execution",
                                          AssumeRolePolicyDocument=ROLE_TRUST)["Role"]["Arn"]


@pytest.fixture(scope="module")
def pushed(torchserve_image, cli, tmp_path_factory) -> dict:
    record = tmp_path_factory.mktemp("pushed") / "torchserve-cpu.json"
    # A tag of its own: the content tag (version-variant-gitsha) may already name another
    # build of this commit in the long-lived local registry, and it is immutable there.
    proc = cli("push", torchserve_image, "--skip-verify", "--no-moving-tags",
               "--content-tag", f"deploy-test-{uuid.uuid4().hex[:12]}", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(record.read_text())
    data["record"] = str(record)
    return data


@pytest.fixture(scope="module")
def model_tar(torchserve_image, tmp_path_factory) -> Path:
    from byoc.render import BAKED_MODEL_DIR
    from byoc.verify.inputs import export_folder

    out = tmp_path_factory.mktemp("model") / "model.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(export_folder(torchserve_image, BAKED_MODEL_DIR))) \
            as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            if member.name not in (".", "./"):
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    return out


def resources(clients) -> dict:
    sm = clients["sagemaker"]
    return {"models": sorted(m["ModelName"] for m in sm.list_models()["Models"]),
            "configs": sorted(c["EndpointConfigName"]
                              for c in sm.list_endpoint_configs()["EndpointConfigs"]),
            "endpoints": sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"])}


def variant_and_model(clients, endpoint: str) -> tuple[dict, dict, dict]:
    sm = clients["sagemaker"]
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    return variant, config, sm.describe_model(ModelName=variant["ModelName"])


def asserted(what: str, value) -> None:
    print(f"    asserted {what}: {value}", flush=True)


def error_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith(("ERROR", "TIP"))]


# -- deploy, invoke, update, undeploy ----------------------------------------------------------

def test_c32_realtime_deploy_invoke_blue_green_update_and_undeploy(
        cli, pushed, model_tar, role, aws_clients, standin, torchserve_image, tmp_path):
    record, digest = pushed["record"], pushed["digest"]
    deploy = ("deploy", record, "--endpoint", "byoc-digits", "--instance-type", "ml.c5.xlarge",
              "--role", role, "--region", REGION, "--poll", "0.2",
              "--record-dir", str(tmp_path))
    proc = cli(*deploy, "--model-tar", str(model_tar))
    assert proc.returncode == 0
    variant, _, model = variant_and_model(aws_clients, "byoc-digits")
    container = model["PrimaryContainer"]
    assert container["Image"].endswith(f"/byoc-torchserve@{digest}")
    asserted("PrimaryContainer.Image (by digest)", container["Image"])
    report = REPO / "build" / "verified" / f"{pushed['image_id'].split(':')[1]}.json"
    if report.exists():  # verify measured the cold start: 2x + 60 s
        ready = json.loads(report.read_text())["ready_s"]
        expected = max(60, math.ceil(2 * ready + 60))
    else:
        expected = 600
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == expected
    asserted("ContainerStartupHealthCheckTimeoutInSeconds",
             variant["ContainerStartupHealthCheckTimeoutInSeconds"])
    assert variant["ModelDataDownloadTimeoutInSeconds"] >= 60
    asserted("ModelDataDownloadTimeoutInSeconds", variant["ModelDataDownloadTimeoutInSeconds"])
    assert variant["VolumeSizeInGB"] >= 30 and "InferenceAmiVersion" not in variant
    asserted("VolumeSizeInGB / InferenceAmiVersion", (variant["VolumeSizeInGB"], None))
    assert container["ModelDataUrl"].startswith(f"s3://sagemaker-{REGION}-{ACCOUNT}/byoc/")
    asserted("ModelDataUrl", container["ModelDataUrl"])
    answers = proc.stdout
    assert "digit-0.png" in answers and "WRONG" not in answers  # real answers, checked
    assert standin.started[-1]["image"] == container["Image"]

    # update: new environment, blue/green with an alarm
    UpdateState.requests.clear()
    proc = cli(*deploy, "--model-tar", str(model_tar), "--env",
               "SAGEMAKER_MODEL_SERVER_WORKERS=2", "--rollback-alarm", "byoc-digits-5xx")
    assert proc.returncode == 0
    (request,) = UpdateState.requests
    policy = request["DeploymentConfig"]
    assert policy["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == \
        "ALL_AT_ONCE"
    assert policy["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "byoc-digits-5xx"}]}
    asserted("UpdateEndpoint.DeploymentConfig", json.dumps(policy))
    _, _, model = variant_and_model(aws_clients, "byoc-digits")
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    assert standin.started[-1]["env"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    assert len(resources(aws_clients)["models"]) == 1  # the old pair was retired
    asserted("models after the update", resources(aws_clients)["models"])

    proc = cli("undeploy", "byoc-digits", "--region", REGION, "--poll", "0.2",
               "--record-dir", str(tmp_path))
    assert proc.returncode == 0
    assert resources(aws_clients) == {"models": [], "configs": [], "endpoints": []}
    bucket = f"sagemaker-{REGION}-{ACCOUNT}"
    left = aws_clients["s3"].list_buckets()["Buckets"]
    assert bucket not in [b["Name"] for b in left]  # deploy created it, empty now: removed
    asserted("after undeploy", resources(aws_clients))


def test_c29_async_deploy_raises_the_limits_and_answers_through_s3(cli, pushed, role,
                                                                   aws_clients, standin,
                                                                   tmp_path):
    s3 = aws_clients["s3"]
    s3.create_bucket(Bucket="byoc-async", CreateBucketConfiguration={
        "LocationConstraint": REGION})
    proc = cli("deploy", pushed["record"], "--endpoint", "byoc-digits-async", "--async",
               "--output", "s3://byoc-async/answers", "--instance-type", "ml.c5.xlarge",
               "--role", role, "--poll", "0.2", "--record-dir", str(tmp_path))
    assert proc.returncode == 0
    _, config, model = variant_and_model(aws_clients, "byoc-digits-async")
    env = model["PrimaryContainer"]["Environment"]
    assert env == {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "3600", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1024"}
    asserted("async Environment", env)
    assert config["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == \
        "s3://byoc-async/answers/"
    asserted("AsyncInferenceConfig", json.dumps(config["AsyncInferenceConfig"]))
    assert standin.started[-1]["env"] == env  # the container ran with the raised limits
    assert "WRONG" not in proc.stdout and "digit-9.json" in proc.stdout
    proc = cli("undeploy", "byoc-digits-async", "--poll", "0.2", "--record-dir",
               str(tmp_path))
    assert proc.returncode == 0
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="byoc-async").get("Contents", [])]
    assert keys == []  # inputs and answers of the samples were deploy's: removed
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["byoc-async"]  # not ours
    asserted("byoc-async after undeploy", keys)


def test_c30_serverless_deploy_and_undeploy(cli, pushed, role, aws_clients, tmp_path):
    proc = cli("deploy", pushed["record"], "--endpoint", "byoc-digits-sls", "--serverless",
               "--memory", "2048", "--max-concurrency", "5", "--role", role, "--poll", "0.2",
               "--record-dir", str(tmp_path))
    assert proc.returncode == 0
    variant, _, _ = variant_and_model(aws_clients, "byoc-digits-sls")
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    asserted("ServerlessConfig", variant["ServerlessConfig"])
    assert "WRONG" not in proc.stdout
    assert cli("undeploy", "byoc-digits-sls", "--poll", "0.2", "--record-dir",
               str(tmp_path)).returncode == 0
    assert resources(aws_clients)["endpoints"] == []


# -- refusals: the command, its ERROR line and TIP, its exit code, nothing created -------------

@contextlib.contextmanager
def relabelled(image: str, labels: dict[str, str]):
    """The same image with other byoc labels (no new layer): a GPU-labelled or --no-model
    image for the refusals, which read only the labels."""
    dock = launcher.client()
    lines = "".join(f'LABEL {k}="{v}"\n' for k, v in labels.items())
    tag = f"byoc-test/relabelled:{uuid.uuid4().hex[:8]}"
    built, _ = dock.images.build(fileobj=io.BytesIO(f"FROM {image}\n{lines}".encode()),
                                 tag=tag, rm=True)
    try:
        yield tag
    finally:
        dock.images.remove(tag, force=True)


def pushed_copy(cli, tag: str, folder: Path) -> str:
    record = folder / f"{tag.split(':')[1]}.json"
    proc = cli("push", tag, "--flavor", "torchserve", "--variant", "cpu", "--skip-verify",
               "--allow-incompatible", "--no-moving-tags", "--content-tag",
               f"deploy-test-{tag.split(':')[1]}", "--record", str(record))
    assert proc.returncode == 0, proc.stderr
    return str(record)


def test_refusals_print_one_error_and_a_tip_and_create_nothing(cli, pushed, role, aws_clients,
                                                               torchserve_image, tmp_path):
    base = ("--role", role, "--endpoint", "byoc-refused", "--record-dir", str(tmp_path))
    cases = [
        ("c27 CPU image on a GPU instance", (pushed["record"], "--instance-type",
                                             "ml.g5.xlarge"), 4, "leaves the GPU idle"),
        ("c20 architecture", (pushed["record"], "--instance-type", "ml.c7g.xlarge"), 4,
         "linux/amd64 image on a linux/arm64 instance"),
        ("c30 serverless memory", (pushed["record"], "--serverless", "--memory", "8192",
                                   "--max-concurrency", "5"), 2, "1024-6144 MB"),
        ("c30 serverless concurrency", (pushed["record"], "--serverless", "--memory", "2048",
                                        "--max-concurrency", "500"), 2, "1 to 200"),
    ]
    gpu = {"dev.byoc.cuda": "13.0", "dev.byoc.cuda-compat": "none", "dev.byoc.variant": "gpu",
           "dev.byoc.instance-types": "ml.g5.xlarge"}
    with relabelled(torchserve_image, gpu) as gpu_tag, \
            relabelled(torchserve_image, {"dev.byoc.model": "digits (from /opt/ml/model)"}) \
            as nomodel_tag:
        gpu_record = pushed_copy(cli, gpu_tag, tmp_path)
        nomodel_record = pushed_copy(cli, nomodel_tag, tmp_path)
        cases += [
            ("c26 CUDA 13.0 on a V100 (no AMI runs it)", (gpu_record, "--instance-type",
                                                          "ml.p3.2xlarge"), 4,
             "will not start on ml.p3.2xlarge"),
            ("c30 serverless with a GPU image", (gpu_record, "--serverless", "--memory",
                                                 "2048", "--max-concurrency", "5"), 4,
             "serverless endpoints are CPU only"),
            ("c13 --no-model image without a model", (nomodel_record, "--instance-type",
                                                      "ml.c5.xlarge"), 2,
             "built with --no-model"),
        ]
        before = resources(aws_clients)
        buckets = aws_clients["s3"].list_buckets()["Buckets"]
        for title, args, status, text in cases:
            print(f"\n--- refusal: {title}")
            proc = cli("deploy", *args, *base)
            lines = error_lines(proc)
            assert proc.returncode == status, (title, proc.stderr)
            assert len(lines) == 2 and lines[0].startswith("ERROR") and text in lines[0], lines
            assert lines[1].startswith("TIP")
            assert resources(aws_clients) == before, title
            assert aws_clients["s3"].list_buckets()["Buckets"] == buckets, title
    print("\n--- refusal: c28 image over 10 GiB: see tests/unit/test_deploy.py "
          "(no 10 GiB image is built here)")


def test_image_facts_from_the_registry_when_docker_lacks_the_image(pushed, env,
                                                                     torchserve_image,
                                                                     monkeypatch):
    """A deploy job on another runner (GitHub Actions) has no local image: the labels,
    architecture and size come from the registry's manifest and config blob."""
    from byoc.deploy import image as images
    from byoc.deploy import registry_facts

    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                "BYOC_ECR_PROXY_ENDPOINT"):
        monkeypatch.setenv(key, env[key])
    repository, _ = images.split_uri(pushed["uri"])
    found = registry_facts.fetch(repository, pushed["digest"], None)
    # by the id that was pushed: the fixture's tag may have moved since (shared machine)
    local = launcher.client().images.get(pushed["image_id"])
    assert found.digest == pushed["digest"] and found.image_id == local.id
    assert found.labels == local.labels and found.architecture == "amd64"
    assert 0 < found.size_bytes < local.attrs["Size"]  # compressed: a lower bound
    print(f"    asserted registry facts: {found.image_id[:19]}, {len(found.labels)} labels, "
          f"{found.size_bytes / 1e9:.2f} GB compressed")
