"""`deploy` and `undeploy` against moto's SageMaker, S3, IAM and STS: what each call sent,
read back with describe_* calls, and every refusal with nothing created before it.

Image facts are given as the labels byoc's build writes (the Docker-backed test in
tests/docker/test_deploy_end_to_end.py reads them from real images)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from test_deploy_support import (  # noqa: F401  (aws_server, module_monkeypatch: fixtures)
    REGION,
    UpdateState,
    aws_server,
    client,
    make_role,
    module_monkeypatch,
    queue_answers,
)

from byoc import deploy
from byoc.console import Console
from byoc.deploy import image as images
from byoc.deploy import limits, plan
from byoc.deploy.options import DeployOptions, UndeployOptions
from byoc.errors import ByocError, ExitStatus, IncompatibleImage, UsageError

DIGEST = "sha256:" + "ab" * 32
REPO = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/byoc-torchserve"
CPU_LABELS = {"dev.byoc.flavor": "torchserve", "dev.byoc.variant": "cpu", "dev.byoc.cuda": "none",
              "dev.byoc.instance-types": "ml.c6i.xlarge,ml.m6i.xlarge",
              "dev.byoc.model": "digits (baked)", "dev.byoc.model-name": "digits",
              "dev.byoc.samples": "/opt/byoc/samples", "dev.byoc.torch": "2.13.0"}
GPU_LABELS = {**CPU_LABELS, "dev.byoc.variant": "gpu", "dev.byoc.cuda": "13.0",
              "dev.byoc.cuda-compat": "none", "dev.byoc.instance-types": "ml.g5.xlarge"}
NOMODEL_LABELS = {**CPU_LABELS, "dev.byoc.model": "digits (from /opt/ml/model)"}
ANSWER = {"predictions": [{"label": 3, "probabilities": [0.1] * 10}]}


def make_image(labels=CPU_LABELS, *, size=1_300_000_000, arch="amd64", ready_s=8.7,
               repo=REPO, verified=Path("build/verified/ab.json")) -> images.DeployImage:
    return images.DeployImage(f"{repo}@{DIGEST}", f"{repo}@{DIGEST}", dict(labels), arch, size,
                              False, "sha256:" + "cd" * 32, None, ready_s,
                              verified if ready_s else None, True)


@pytest.fixture
def samples(tmp_path) -> Path:
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "three.json").write_text(json.dumps({"instances": [[0] * 64]}))
    (folder / "three.json.yaml").write_text(f"expect: {json.dumps(ANSWER)}\ntolerance: 0.01\n")
    # no expectation: the status counts. (Text only: moto's runtime fails on binary bodies.)
    (folder / "any.json").write_text(json.dumps({"instances": [[1] * 64]}))
    return folder


@pytest.fixture
def options(aws, tmp_path, samples) -> DeployOptions:
    return DeployOptions(image="img", endpoint="digits", instance_type="ml.c5.xlarge",
                         role=make_role(aws), samples=samples, poll_s=0, wait_s=30,
                         record_dir=tmp_path / "deployed")


def run(options: DeployOptions, image: images.DeployImage) -> tuple[int, str]:
    out = io.StringIO()
    status = deploy.deploy(options, Console(out), resolve=lambda ref, console, profile: image)
    return status, out.getvalue()


def created(url: str) -> dict:
    sm = client("sagemaker", url)
    return {"models": sorted(m["ModelName"] for m in sm.list_models()["Models"]),
            "configs": sorted(c["EndpointConfigName"]
                              for c in sm.list_endpoint_configs()["EndpointConfigs"]),
            "endpoints": sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]),
            "buckets": sorted(b["Name"] for b in client("s3", url).list_buckets()["Buckets"])}


def clean(url: str) -> None:
    sm, s3 = client("sagemaker", url), client("s3", url)
    for e in sm.list_endpoints()["Endpoints"]:
        sm.delete_endpoint(EndpointName=e["EndpointName"])
    for c in sm.list_endpoint_configs()["EndpointConfigs"]:
        sm.delete_endpoint_config(EndpointConfigName=c["EndpointConfigName"])
    for m in sm.list_models()["Models"]:
        sm.delete_model(ModelName=m["ModelName"])
    for b in s3.list_buckets()["Buckets"]:
        for o in s3.list_objects_v2(Bucket=b["Name"]).get("Contents", []):
            s3.delete_object(Bucket=b["Name"], Key=o["Key"])
        s3.delete_bucket(Bucket=b["Name"])


@pytest.fixture(autouse=True)
def fresh(aws):
    """Each test starts with empty backends (moto's runtime also caches answers by body)."""
    import requests

    requests.post(f"{aws}/moto-api/reset", timeout=10).raise_for_status()
    UpdateState.pending.clear()
    UpdateState.rollback_next = False
    yield
    clean(aws)


def good_answers(url: str) -> None:
    queue_answers(url, [(json.dumps(ANSWER), "application/json"),
                        (json.dumps(ANSWER), "application/json")])


def variant_of(url: str, endpoint: str = "digits") -> tuple[dict, dict, dict]:
    sm = client("sagemaker", url)
    described = sm.describe_endpoint(EndpointName=endpoint)
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    model = sm.describe_model(ModelName=variant["ModelName"])
    return variant, config, model


# -- real-time, serverless, async --------------------------------------------------------------

def test_c32_realtime_deploy_sends_digest_environment_and_measured_timeouts(aws, options,
                                                                            tmp_path, capsys):
    good_answers(aws)
    model_tar = tmp_path / "model.tar.gz"
    model_tar.write_bytes(b"\x1f\x8b" + b"m" * 4_000_000)
    status, log = run(dataclasses.replace(options, model_tar=model_tar, env=(("A", "1"),),
                                          count=2), make_image())
    assert status == ExitStatus.OK
    variant, config, model = variant_of(aws)
    container = model["PrimaryContainer"]
    assert container["Image"] == f"{REPO}@{DIGEST}"  # by digest, never by tag
    assert container["Environment"] == {"A": "1"}
    bucket = f"sagemaker-{REGION}-123456789012"
    assert container["ModelDataUrl"].startswith(f"s3://{bucket}/byoc/digits/")
    head = client("s3", aws).head_object(Bucket=bucket,
                                         Key=container["ModelDataUrl"].split("/", 3)[3])
    assert head["ContentLength"] == model_tar.stat().st_size
    assert model["ExecutionRoleArn"].endswith(":role/byoc-sagemaker-execution")
    assert variant["InstanceType"] == "ml.c5.xlarge" and variant["InitialInstanceCount"] == 2
    # C32: 2 x 8.7 s measured + 60 s; download: 4 MB at 20 MB/s + 60 s; C26: a CPU image
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 78
    assert variant["ModelDataDownloadTimeoutInSeconds"] == 61
    assert variant["VolumeSizeInGB"] == 30  # c5 takes an EBS volume
    assert "InferenceAmiVersion" not in variant
    assert "2 x 8.7 s measured cold start + 60 s" in log
    answers = capsys.readouterr().out
    assert "three.json" in answers and "OK" in answers
    record = json.loads((options.record_dir / "digits.json").read_text())
    assert record["endpoint_created"] and record["s3_objects"] == [container["ModelDataUrl"]]
    assert record["buckets"] == [bucket]


def test_c26_gpu_image_gets_the_inference_ami_the_gate_chooses(aws, options):
    good_answers(aws)
    # CUDA 13.0 on a T4 (g4dn, default driver 470): only the 580 AMI runs it natively.
    status, log = run(dataclasses.replace(options, instance_type="ml.g4dn.xlarge"),
                      make_image(GPU_LABELS))
    assert status == ExitStatus.OK
    variant, _, _ = variant_of(aws)
    assert variant["InferenceAmiVersion"] == "al2023-ami-sagemaker-inference-gpu-4-1"
    assert "VolumeSizeInGB" not in variant  # g4dn has local NVMe storage
    assert "the default driver would not do" in log


def test_c26_an_ami_the_image_config_names_is_kept(aws, options):
    good_answers(aws)
    labels = {**GPU_LABELS, "dev.byoc.ami-version": "al2023-ami-sagemaker-inference-gpu-4-1"}
    run(dataclasses.replace(options, instance_type="ml.g4dn.xlarge"), make_image(labels))
    assert variant_of(aws)[0]["InferenceAmiVersion"] == "al2023-ami-sagemaker-inference-gpu-4-1"


def test_c30_serverless_sends_memory_and_concurrency_and_nothing_instance_only(aws, options):
    good_answers(aws)
    status, _ = run(dataclasses.replace(options, instance_type=None, serverless=True,
                                        memory_mb=3072, max_concurrency=20), make_image())
    assert status == ExitStatus.OK
    variant, _, _ = variant_of(aws)
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 20}
    for instance_only in ("InstanceType", "InferenceAmiVersion", "VolumeSizeInGB",
                          "ContainerStartupHealthCheckTimeoutInSeconds"):
        assert instance_only not in variant


def test_c29_async_raises_the_image_limits_and_reads_answers_from_s3(aws, options, tmp_path):
    s3 = client("s3", aws)
    s3.create_bucket(Bucket="answers", CreateBucketConfiguration={"LocationConstraint": REGION})
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "one.json").write_text(json.dumps({"instances": [[0] * 64]}))
    status, _ = run(dataclasses.replace(options, asynchronous=True, samples=folder,
                                        output="s3://answers/digits", model_data=None),
                    make_image())
    assert status == ExitStatus.OK
    variant, config, model = variant_of(aws)
    assert config["AsyncInferenceConfig"]["OutputConfig"] == {
        "S3OutputPath": "s3://answers/digits/", "S3FailurePath": "s3://answers/digits/failures/"}
    env = model["PrimaryContainer"]["Environment"]
    assert env["SAGEMAKER_MODEL_SERVER_TIMEOUT"] == str(limits.ASYNC_MAX_RUN_S)  # 1 hour
    assert env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == str(limits.ASYNC_MAX_PAYLOAD_MB)  # 1 GiB
    inputs = s3.list_objects_v2(Bucket="answers", Prefix="digits/byoc-samples/")["Contents"]
    assert [o["Key"].rsplit("/", 1)[1] for o in inputs] == ["one.json"]
    record = json.loads((options.record_dir / "digits.json").read_text())
    assert any(url.endswith("/one.json") for url in record["s3_objects"])


def test_c29_an_explicit_limit_wins_but_must_be_one_the_image_accepts(aws, options):
    async_options = dataclasses.replace(options, asynchronous=True, output="s3://a/b",
                                        env=(("SAGEMAKER_MAX_PAYLOAD_IN_MB", "2048"),))
    with pytest.raises(UsageError, match="accepts 1..1024"):
        run(async_options, make_image())
    assert created(aws)["models"] == []


def test_c29_async_triton_is_warned_about_its_shared_memory_limit(aws, options):
    labels = {**CPU_LABELS, "dev.byoc.flavor": "triton"}
    async_options = dataclasses.replace(options, asynchronous=True, output="s3://a/b")
    the_plan = plan.make(async_options, make_image(labels), None, 0, region=REGION)
    assert plan.TRITON_ASYNC_WARNING in the_plan.notes
    the_plan = plan.make(async_options, make_image(), None, 0, region=REGION)
    assert plan.TRITON_ASYNC_WARNING not in the_plan.notes


def test_wrong_answers_fail_the_deploy_and_leave_the_endpoint_for_undeploy(aws, options):
    queue_answers(aws, [(json.dumps({"predictions": [{"label": 5}]}), "application/json")] * 2)
    with pytest.raises(ByocError, match="answered 1 of 2 samples wrongly") as caught:
        run(options, make_image())
    assert "undeploy digits" in caught.value.tip
    assert created(aws)["endpoints"] == ["digits"]


# -- update: blue/green, rollback --------------------------------------------------------------

def test_update_is_blue_green_with_rollback_alarms_and_retires_the_old_pair(aws, options):
    good_answers(aws)
    run(options, make_image())
    first = variant_of(aws)
    good_answers(aws)
    UpdateState.requests.clear()
    status, log = run(dataclasses.replace(options, env=(("V", "2"),),
                                          rollback_alarms=("digits-5xx",)), make_image())
    assert status == ExitStatus.OK
    (request,) = UpdateState.requests
    assert request["RetainAllVariantProperties"] is False
    assert request["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            "TerminationWaitInSeconds": 120, "MaximumExecutionTimeoutInSeconds": 3600},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "digits-5xx"}]}}
    variant, config, model = variant_of(aws)
    assert config["EndpointConfigName"] == request["EndpointConfigName"]
    assert model["PrimaryContainer"]["Environment"] == {"V": "2"}
    assert variant["VariantName"] == first[0]["VariantName"] == "AllTraffic"
    # the old model and config serve nothing now and were byoc's: removed
    assert created(aws)["models"] == [variant["ModelName"]]
    assert created(aws)["configs"] == [config["EndpointConfigName"]]
    assert "Updating" in log and "removed the previous endpoint-config" in log


def test_a_rolled_back_update_removes_the_new_pair_and_fails(aws, options):
    good_answers(aws)
    run(options, make_image())
    before = created(aws)
    UpdateState.rollback_next = True
    with pytest.raises(ByocError, match="rolled back") as caught:
        run(dataclasses.replace(options, env=(("BROKEN", "1"),)), make_image())
    assert "health checks" in caught.value.message
    assert created(aws) == before  # still serving the first config; the new pair is gone


def test_an_endpoint_byoc_did_not_create_is_not_updated(aws, options):
    sm = client("sagemaker", aws)
    sm.create_model(ModelName="theirs", ExecutionRoleArn=make_role(aws),
                    PrimaryContainer={"Image": f"{REPO}@{DIGEST}"})
    sm.create_endpoint_config(EndpointConfigName="theirs", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "theirs", "InstanceType": "ml.c5.xlarge",
        "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName="digits", EndpointConfigName="theirs")
    before = created(aws)
    with pytest.raises(ByocError, match="not deployed by byoc"):
        run(options, make_image())
    assert created(aws) == before


# -- undeploy ----------------------------------------------------------------------------------

def test_undeploy_removes_what_deploy_created_and_only_that(aws, options, tmp_path):
    good_answers(aws)
    model_tar = tmp_path / "model.tar.gz"
    model_tar.write_bytes(b"\x1f\x8b" + b"m" * 1000)
    s3 = client("s3", aws)
    s3.create_bucket(Bucket="keep", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="keep", Key="theirs.txt", Body=b"x")
    sm = client("sagemaker", aws)
    sm.create_model(ModelName="unrelated", ExecutionRoleArn=make_role(aws),
                    PrimaryContainer={"Image": f"{REPO}@{DIGEST}"})
    run(dataclasses.replace(options, model_tar=model_tar, bucket="keep"), make_image())
    assert len(created(aws)["models"]) == 2
    out = io.StringIO()
    assert deploy.undeploy(UndeployOptions("digits", poll_s=0,
                                           record_dir=options.record_dir),
                           Console(out)) == ExitStatus.OK
    assert created(aws) == {"models": ["unrelated"], "configs": [], "endpoints": [],
                            "buckets": ["keep"]}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="keep")["Contents"]] == ["theirs.txt"]
    assert not (options.record_dir / "digits.json").exists()


def test_undeploy_without_a_record_goes_by_the_tags_and_removes_a_created_bucket(aws,
                                                                                 options,
                                                                                 tmp_path):
    good_answers(aws)
    model_tar = tmp_path / "model.tar.gz"
    model_tar.write_bytes(b"\x1f\x8b" + b"m" * 1000)
    run(dataclasses.replace(options, model_tar=model_tar), make_image())
    # another machine (a CI job) undeploys: no record, only the tags
    deploy.undeploy(UndeployOptions("digits", poll_s=0, record_dir=tmp_path / "elsewhere"),
                    Console(io.StringIO()))
    assert created(aws)["models"] == [] and created(aws)["endpoints"] == []
    bucket = f"sagemaker-{REGION}-123456789012"
    assert client("s3", aws).list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_undeploy_refuses_an_endpoint_byoc_did_not_create(aws, options):
    sm = client("sagemaker", aws)
    sm.create_model(ModelName="theirs", ExecutionRoleArn=make_role(aws),
                    PrimaryContainer={"Image": f"{REPO}@{DIGEST}"})
    sm.create_endpoint_config(EndpointConfigName="theirs", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "theirs", "InstanceType": "ml.c5.xlarge",
        "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName="digits", EndpointConfigName="theirs")
    with pytest.raises(ByocError, match="not created by byoc"):
        deploy.undeploy(UndeployOptions("digits", poll_s=0, record_dir=options.record_dir),
                        Console(io.StringIO()))
    assert created(aws)["endpoints"] == ["digits"]


# -- refusals: one line, a tip, the exit status, and nothing created ---------------------------

REFUSALS = {
    "c26_cuda_will_not_start": (dict(instance_type="ml.p3.2xlarge"), dict(labels=GPU_LABELS),
                                IncompatibleImage, "will not start on ml.p3.2xlarge"),
    "c28_image_over_10_gib": ({}, dict(size=11 * limits.GIB), IncompatibleImage,
                              "over SageMaker's 10 GiB image limit"),
    "c30_serverless_gpu_image": (dict(instance_type=None, serverless=True, memory_mb=2048,
                                      max_concurrency=5), dict(labels=GPU_LABELS),
                                 IncompatibleImage, "serverless endpoints are CPU only"),
    "c30_serverless_memory_out_of_range": (dict(instance_type=None, serverless=True,
                                                memory_mb=8192, max_concurrency=5), {},
                                           UsageError, "1024-6144 MB"),
    "c30_serverless_concurrency_over_200": (dict(instance_type=None, serverless=True,
                                                 memory_mb=2048, max_concurrency=201), {},
                                            UsageError, "1 to 200 concurrent"),
    "c20_architecture": (dict(instance_type="ml.c7g.xlarge"), {}, IncompatibleImage,
                         "linux/amd64 image on a linux/arm64 instance"),
    "c27_cpu_image_on_gpu_instance": (dict(instance_type="ml.g5.xlarge"), {},
                                      IncompatibleImage, "leaves the GPU idle"),
    "c13_no_model_for_a_no_model_image": ({}, dict(labels=NOMODEL_LABELS), UsageError,
                                          "built with --no-model"),
    "c20_ecr_in_another_region": ({}, dict(repo=REPO.replace(REGION, "us-east-2")),
                                  UsageError, "SageMaker pulls only from its own region"),
    "not_ecr": ({}, dict(repo="127.0.0.1:5050/byoc-torchserve"), UsageError,
                "not in Amazon ECR"),
    "c14_bad_env_key": (dict(env=(("1BAD", "x"),)), {}, UsageError, "not a valid variable"),
    "async_without_output": (dict(asynchronous=True), {}, UsageError, "--async needs --output"),
    "bad_endpoint_name": (dict(endpoint="no_underscores"), {}, UsageError,
                          "not a SageMaker endpoint name"),
    "missing_model_data": (dict(model_data="s3://nowhere/model.tar.gz"), {}, UsageError,
                           "no such object"),
    "role_missing": (dict(role="arn:aws:iam::123456789012:role/nobody"), {}, UsageError,
                     "no such IAM role"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_come_before_anything_is_created(aws, options, case):
    changes, image_changes, error, text = REFUSALS[case]
    before = created(aws)
    with pytest.raises(error) as caught:
        run(dataclasses.replace(options, **changes), make_image(**image_changes))
    assert text in caught.value.message
    assert caught.value.tip  # every refusal says what to do
    assert caught.value.exit_status == (ExitStatus.INCOMPATIBLE if error is IncompatibleImage
                                        else ExitStatus.USAGE)
    assert created(aws) == before


def test_a_role_sagemaker_may_not_assume_is_refused(aws, options):
    untrusted = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": '
                 '{"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}')
    role = make_role(aws, "ec2-only", untrusted)
    with pytest.raises(UsageError, match="does not let sagemaker.amazonaws.com"):
        run(dataclasses.replace(options, role=role), make_image())
    assert created(aws)["models"] == []


# -- the numbers, without AWS ------------------------------------------------------------------

def test_c32_startup_timeout_without_a_measurement_is_stated_and_generous():
    value, why = plan.startup_timeout(make_image(ready_s=None), None)
    assert value == plan.UNMEASURED_STARTUP_S and "not measured" in why


def test_c32_timeouts_stay_inside_sagemakers_ranges():
    assert plan.startup_timeout(make_image(ready_s=5000), None)[0] == 3600
    assert plan.startup_timeout(make_image(ready_s=0.5), None)[0] == 61
    assert plan.download_timeout(0)[0] == 60
    assert plan.download_timeout(500 * 10**9)[0] == 3600
    with pytest.raises(UsageError):
        plan.startup_timeout(make_image(), 30)


def test_c28_the_build_time_check_refuses_over_10_gib_only():
    limits.refuse_oversized_image("img", limits.MAX_IMAGE_BYTES)
    with pytest.raises(IncompatibleImage, match="10 GiB"):
        limits.refuse_oversized_image("img", limits.MAX_IMAGE_BYTES + 1)


def test_volume_only_where_the_instance_takes_one():
    assert plan.takes_volume("ml.c5.xlarge") and plan.takes_volume("ml.p3.2xlarge")
    for nvme in ("ml.g5.xlarge", "ml.g4dn.xlarge", "ml.c5d.xlarge", "ml.p4d.24xlarge",
                 "ml.g6e.xlarge", "ml.m6gd.large"):
        assert not plan.takes_volume(nvme), nvme


def test_resource_names_fit_sagemakers_63_characters():
    model, config = plan.resource_names("e" * 63, DIGEST)
    assert len(model) <= 63 and model.startswith("e") and DIGEST[7:15] in model
