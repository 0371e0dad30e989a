"""`build.py deploy`: from a pushed image to a SageMaker endpoint that answers.

    image (by digest; facts from Docker or the registry, cold start from verify)
      -> plan: every refusal, and every number with its reason (plan.py), before any
         AWS call that creates something
      -> role check (IAM), model archive (given in S3, or uploaded)
      -> CreateModel -> CreateEndpointConfig -> CreateEndpoint, or UpdateEndpoint with a
         blue/green deployment (an existing endpoint byoc deployed)
      -> wait with progress -> the samples through sagemaker-runtime -> the answers

`build.py undeploy NAME` removes what this created (undeploy.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..console import Console
from ..errors import ByocError, ExitStatus, UsageError
from . import endpoints, invoke, limits, plan, s3, wait
from . import image as images
from .aws import Aws
from .options import DeployOptions, UndeployOptions
from .record import Record
from .undeploy import undeploy

__all__ = ["DeployOptions", "UndeployOptions", "deploy", "limits", "undeploy"]
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
_UPLOAD_PLACEHOLDER = "s3://(uploaded by deploy)/model.tar.gz"


def _model_data(aws: Aws, options: DeployOptions) -> tuple[str | None, int]:
    """The model archive's URL (a placeholder when deploy will upload it) and size: read
    only, so a missing object refuses before anything exists."""
    if options.model_data and options.model_tar:
        raise UsageError("--model-data and --model-tar both given", "pass one of them")
    if options.model_data:
        return options.model_data, s3.size(aws, options.model_data)
    if options.model_tar:
        path = s3.check_model_tar(Path(options.model_tar))
        return _UPLOAD_PLACEHOLDER, path.stat().st_size
    return None, 0


def _existing(aws: Aws, name: str) -> dict | None:
    described = endpoints.describe_endpoint(aws, name)
    if described is None:
        return None
    status = described["EndpointStatus"]
    if status in BUSY:
        raise ByocError(f"endpoint {name} is {status}: SageMaker takes no update now",
                        "wait until it is InService (or Failed), then deploy again")
    if status == "Failed":
        raise ByocError(f"endpoint {name} exists and has Failed "
                        f"({described.get('FailureReason', 'no reason given')}): SageMaker "
                        "cannot update a failed endpoint",
                        f"remove it with `python build.py undeploy {name}`, then deploy again")
    if not endpoints.is_ours(endpoints.list_tags(aws, described["EndpointArn"]), name):
        raise ByocError(f"endpoint {name} exists and was not deployed by byoc",
                        "deploy under another --endpoint name; byoc updates only endpoints "
                        "it created")
    return described


def deploy(options: DeployOptions, console: Console, *, resolve=images.resolve) -> int:
    console.step(f"deploy {options.image} -> SageMaker endpoint {options.endpoint} "
                 f"({options.kind})")
    plan.check_options(options)
    aws = Aws(options.region, options.profile)
    image = resolve(options.image, console, profile=options.profile)
    if image.verify_passed is False:
        console.warn(f"the last verify of this image failed ({image.verified})")
    model_url, model_bytes = _model_data(aws, options)
    the_plan = plan.make(options, image, model_url, model_bytes, region=aws.region)
    role = endpoints.check_role(aws, options.role, console)
    existing = _existing(aws, options.endpoint)
    samples = invoke.load_samples(options.samples, image.local, console) \
        if options.invoke else []
    console.step(f"plan: {'update (blue/green)' if existing else 'create'} {options.endpoint}"
                 f" in {aws.region}")
    for note in the_plan.notes:
        console.info(note)
    # -- from here on, things are created ------------------------------------------------
    record = Record.load(options.record_dir, options.endpoint, aws.region)
    try:
        the_plan = _upload(aws, options, the_plan, record, console)
        endpoints.create_model(aws, the_plan, role, _uploaded(record, the_plan))
        record.add("models", the_plan.model_name)
        endpoints.create_config(aws, the_plan)
        record.add("configs", the_plan.config_name)
        console.ok(f"created model {the_plan.model_name} and endpoint config "
                   f"{the_plan.config_name}")
        if existing is None:
            _create(aws, options, the_plan, record, console)
        else:
            _update(aws, options, the_plan, existing, record, console)
        written: list[str] = []
        try:
            answers = invoke.send_all(aws, options.endpoint, the_plan.kind, samples, console,
                                      output=options.output, written=written)
        finally:
            for url in written:
                record.add("s3_objects", url)
        record.history[-1]["answers"] = invoke.answers_json(answers)
    finally:
        where = record.save(options.record_dir)
    invoke.report(answers, options.endpoint, the_plan.image_uri, console, options.summary)
    console.info(f"recorded in {where}; remove it all with `python build.py undeploy "
                 f"{options.endpoint}" + (f" --region {aws.region}`" if options.region else "`"))
    print(f"endpoint {options.endpoint} InService ({the_plan.kind}, {the_plan.image_uri})",
          flush=True)
    return ExitStatus.OK


def _upload(aws: Aws, options: DeployOptions, the_plan: plan.Plan, record: Record,
            console: Console) -> plan.Plan:
    if the_plan.model_data_url != _UPLOAD_PLACEHOLDER:
        return the_plan
    bucket = options.bucket or s3.default_bucket(aws)
    if s3.ensure_bucket(aws, bucket, console):
        record.add("buckets", bucket)
    url, uploaded = s3.upload_model(aws, Path(options.model_tar), bucket, options.endpoint,
                                    console)
    if uploaded:
        record.add("s3_objects", url)
    return dataclasses.replace(the_plan, model_data_url=url)


def _uploaded(record: Record, the_plan: plan.Plan) -> str | None:
    return the_plan.model_data_url if the_plan.model_data_url in record.s3_objects else None


def _create(aws: Aws, options: DeployOptions, the_plan: plan.Plan, record: Record,
            console: Console) -> None:
    endpoints.create_endpoint(aws, the_plan)
    record.endpoint_created = True
    record.event("create", config=the_plan.config_name, model=the_plan.model_name,
                 image=the_plan.image_uri, kind=the_plan.kind)
    console.step(f"waiting for {options.endpoint} to be InService")
    described = wait.until_settled(aws, options.endpoint, console, timeout_s=options.wait_s,
                                   poll_s=options.poll_s)
    if described["EndpointStatus"] != "InService":
        raise ByocError(f"endpoint {options.endpoint} is {described['EndpointStatus']}: "
                        f"{described.get('FailureReason', 'no reason given')}",
                        "read the container's log in CloudWatch (/aws/sagemaker/Endpoints/"
                        f"{options.endpoint}); `python build.py undeploy {options.endpoint}` "
                        "removes what deploy created")
    console.ok(f"endpoint {options.endpoint} InService")


def _update(aws: Aws, options: DeployOptions, the_plan: plan.Plan, existing: dict,
            record: Record, console: Console) -> None:
    old_config = existing["EndpointConfigName"]
    old = endpoints.describe_config(aws, old_config) or {}
    old_models = [v.get("ModelName") for v in old.get("ProductionVariants", [])]
    deployment = endpoints.update_endpoint(aws, the_plan, options.rollback_alarms,
                                           options.termination_wait_s)
    record.event("update", config=the_plan.config_name, model=the_plan.model_name,
                 image=the_plan.image_uri, kind=the_plan.kind, previous_config=old_config,
                 deployment=deployment)
    policy = deployment["BlueGreenUpdatePolicy"]
    console.info(f"blue/green: {policy['TrafficRoutingConfiguration']['Type']}, old fleet "
                 f"kept {policy['TerminationWaitInSeconds']} s after the shift, rollback "
                 + (f"on alarms {', '.join(options.rollback_alarms)} and " if
                    options.rollback_alarms else "")
                 + "when the new fleet fails its health checks")
    console.step(f"waiting for {options.endpoint} to move to {the_plan.config_name}")
    described = wait.until_settled(aws, options.endpoint, console, timeout_s=options.wait_s,
                                   poll_s=options.poll_s)
    if described.get("EndpointConfigName") != the_plan.config_name or \
            described["EndpointStatus"] != "InService":
        # SageMaker rolled back (or could not): the old fleet serves; the new pair is unused.
        for kind, name in (("endpoint-config", the_plan.config_name),
                           ("model", the_plan.model_name)):
            endpoints.delete(aws, kind, name)
            record.drop("configs" if kind == "endpoint-config" else "models", name)
        record.event("rolled back", config=the_plan.config_name,
                      reason=described.get("FailureReason"))
        raise ByocError(f"the update of {options.endpoint} was rolled back; it still serves "
                        f"{described.get('EndpointConfigName')}: "
                        f"{described.get('FailureReason', 'no reason given')}",
                        "read the new container's log in CloudWatch; the new model and "
                        "config were removed")
    console.ok(f"endpoint {options.endpoint} InService on {the_plan.config_name}")
    # The old pair serves nothing now; remove it if byoc made it (and only then).
    for kind, name, arn_key in (("endpoint-config", old_config, "EndpointConfigArn"),
                                *(("model", m, "ModelArn") for m in old_models if m)):
        described_old = (endpoints.describe_config(aws, name) if kind == "endpoint-config"
                         else endpoints.describe_model(aws, name))
        if described_old and endpoints.is_ours(
                endpoints.list_tags(aws, described_old[arn_key]), options.endpoint):
            endpoints.delete(aws, kind, name)
            record.drop("configs" if kind == "endpoint-config" else "models", name)
            console.info(f"removed the previous {kind} {name}")
