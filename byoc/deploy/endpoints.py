"""SageMaker's model, endpoint configuration and endpoint calls, each tagged so that
undeploy can tell what byoc created (and removes only that)."""

from __future__ import annotations

import json
import urllib.parse

from .. import __version__
from ..errors import UsageError
from .aws import Aws, AwsError
from .plan import Plan

CREATED_BY = "created-by"
ENDPOINT_TAG = "byoc:endpoint"
UPLOADED_TAG = "byoc:uploaded"  # the S3 object deploy uploaded for this model
MAX_UPDATE_S = 3600  # blue/green: MaximumExecutionTimeoutInSeconds


def tags(endpoint: str, **extra: str) -> list[dict]:
    found = [{"Key": CREATED_BY, "Value": f"byoc {__version__}"},
             {"Key": ENDPOINT_TAG, "Value": endpoint}]
    return found + [{"Key": k, "Value": v} for k, v in extra.items()]


def is_ours(tag_list: list[dict], endpoint: str) -> bool:
    found = {t["Key"]: t["Value"] for t in tag_list}
    return found.get(CREATED_BY, "").startswith("byoc") and found.get(ENDPOINT_TAG) == endpoint


def _missing(exc: AwsError) -> bool:
    text = str(exc)
    return exc.code in ("ValidationException", "ValidationError", "ResourceNotFound") and \
        ("Could not find" in text or "does not exist" in text or "not found" in text)


def describe_endpoint(aws: Aws, name: str) -> dict | None:
    try:
        return aws.call(aws.sagemaker, "describe_endpoint", EndpointName=name)
    except AwsError as exc:
        if _missing(exc):
            return None
        raise


def describe_config(aws: Aws, name: str) -> dict | None:
    try:
        return aws.call(aws.sagemaker, "describe_endpoint_config", EndpointConfigName=name)
    except AwsError as exc:
        if _missing(exc):
            return None
        raise


def describe_model(aws: Aws, name: str) -> dict | None:
    try:
        return aws.call(aws.sagemaker, "describe_model", ModelName=name)
    except AwsError as exc:
        if _missing(exc):
            return None
        raise


def list_tags(aws: Aws, arn: str) -> list[dict]:
    return aws.call(aws.sagemaker, "list_tags", ResourceArn=arn).get("Tags", [])


def check_role(aws: Aws, role_arn: str | None, console) -> str:
    """The execution role exists and SageMaker may assume it: a failed CreateModel says
    neither clearly. A caller without iam:GetRole gets a warning, not a refusal."""
    if not role_arn:
        raise UsageError("deploy needs --role ARN: the execution role SageMaker assumes to "
                         "pull the image and read the model",
                         "see deploy/aws/README.md (the SageMaker execution role)")
    if not role_arn.startswith("arn:") or ":role/" not in role_arn:
        raise UsageError(f"--role {role_arn}: not an IAM role ARN",
                         "arn:aws:iam::ACCOUNT_ID:role/NAME")
    name = role_arn.rsplit("/", 1)[-1]
    try:
        role = aws.call(aws.iam, "get_role", RoleName=name)["Role"]
    except AwsError as exc:
        if exc.code == "NoSuchEntity":
            raise UsageError(f"--role {role_arn}: no such IAM role", "create it as "
                             "deploy/aws/README.md shows, or pass an existing one") from None
        if exc.code in ("AccessDenied", "AccessDeniedException"):
            console.warn(f"cannot read role {name} (iam:GetRole denied): not checking that "
                         "SageMaker may assume it")
            return role_arn
        raise
    policy = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(policy, str):
        policy = json.loads(urllib.parse.unquote(policy))
    trusted = []
    for statement in policy.get("Statement", []):
        service = (statement.get("Principal") or {}).get("Service", [])
        trusted += [service] if isinstance(service, str) else service
    if "sagemaker.amazonaws.com" not in trusted:
        raise UsageError(f"--role {role_arn}: its trust policy does not let "
                         "sagemaker.amazonaws.com assume it", "add sagemaker.amazonaws.com as "
                         "a trusted service (deploy/aws/README.md)")
    return role["Arn"]


def create_model(aws: Aws, plan: Plan, role_arn: str, uploaded: str | None) -> None:
    extra = {UPLOADED_TAG: uploaded} if uploaded else {}
    aws.call(aws.sagemaker, "create_model", ModelName=plan.model_name,
             ExecutionRoleArn=role_arn, PrimaryContainer=plan.container(),
             Tags=tags(plan.endpoint, **extra))


def create_config(aws: Aws, plan: Plan) -> None:
    kwargs = dict(EndpointConfigName=plan.config_name, ProductionVariants=[plan.variant],
                  Tags=tags(plan.endpoint))
    if plan.async_config:
        kwargs["AsyncInferenceConfig"] = plan.async_config
    aws.call(aws.sagemaker, "create_endpoint_config", **kwargs)


def create_endpoint(aws: Aws, plan: Plan) -> None:
    aws.call(aws.sagemaker, "create_endpoint", EndpointName=plan.endpoint,
             EndpointConfigName=plan.config_name, Tags=tags(plan.endpoint))


def deployment_config(alarms: tuple[str, ...], termination_wait_s: int) -> dict:
    """Blue/green, all traffic at once once the new fleet passes its health checks; the old
    fleet stays termination_wait_s for a rollback. SageMaker rolls back by itself when the
    new fleet never gets healthy; alarms add rollback on what they watch."""
    config: dict = {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
        "TerminationWaitInSeconds": termination_wait_s,
        "MaximumExecutionTimeoutInSeconds": MAX_UPDATE_S}}
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def update_endpoint(aws: Aws, plan: Plan, alarms: tuple[str, ...],
                    termination_wait_s: int) -> dict:
    config = deployment_config(alarms, termination_wait_s)
    aws.call(aws.sagemaker, "update_endpoint", EndpointName=plan.endpoint,
             EndpointConfigName=plan.config_name, RetainAllVariantProperties=False,
             DeploymentConfig=config)
    return config


def delete(aws: Aws, kind: str, name: str) -> bool:
    """Delete a model, endpoint-config or endpoint; False when it was already gone."""
    operation, key = {"model": ("delete_model", "ModelName"),
                      "endpoint-config": ("delete_endpoint_config", "EndpointConfigName"),
                      "endpoint": ("delete_endpoint", "EndpointName")}[kind]
    try:
        aws.call(aws.sagemaker, operation, **{key: name})
        return True
    except AwsError as exc:
        if _missing(exc) or exc.code == "MissingModel":
            return False
        raise
