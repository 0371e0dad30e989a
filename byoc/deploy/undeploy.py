"""`build.py undeploy NAME`: remove what deploy created for an endpoint, and only that.

Each SageMaker resource is removed only if its tags say byoc deployed it for this endpoint
(created-by: byoc, byoc:endpoint: NAME); S3 objects only if deploy wrote them (the model
archive it uploaded, named in the model's byoc:uploaded tag, and the record's async sample
objects); a bucket only if deploy created it and it is empty afterwards."""

from __future__ import annotations

from ..console import Console
from ..errors import ByocError, ExitStatus
from . import endpoints, s3, wait
from .aws import Aws
from .options import UndeployOptions
from .record import Record


def _owned(aws: Aws, described: dict | None, arn_key: str, endpoint: str) -> bool:
    return described is not None and endpoints.is_ours(
        endpoints.list_tags(aws, described[arn_key]), endpoint)


def undeploy(options: UndeployOptions, console: Console) -> int:
    aws = Aws(options.region, options.profile)
    name = options.endpoint
    record = Record.load(options.record_dir, name, aws.region)
    console.step(f"undeploy {name} ({aws.region})")
    described = endpoints.describe_endpoint(aws, name)
    if described is not None and not _owned(aws, described, "EndpointArn", name):
        raise ByocError(f"endpoint {name} was not created by byoc deploy (its tags do not "
                        "say so): nothing removed",
                        f"remove it yourself: aws sagemaker delete-endpoint --endpoint-name "
                        f"{name}")
    configs = list(record.configs)
    if described is not None and described["EndpointConfigName"] not in configs:
        configs.append(described["EndpointConfigName"])
    if described is None and not configs and not record.models and not record.s3_objects:
        raise ByocError(f"no endpoint {name} in {aws.region}, and no record of one in "
                        f"{Record.path(options.record_dir, name)}: nothing to remove",
                        "check the name and --region")
    removed: list[str] = []
    if described is not None:
        endpoints.delete(aws, "endpoint", name)
        wait.until_gone(aws, name, console, timeout_s=options.wait_s, poll_s=options.poll_s)
        removed.append(f"endpoint {name}")
    models = list(record.models)
    uploads = list(record.s3_objects)
    for config_name in configs:
        config = endpoints.describe_config(aws, config_name)
        if config is None:
            record.drop("configs", config_name)
            continue
        if not _owned(aws, config, "EndpointConfigArn", name):
            console.info(f"endpoint config {config_name}: not byoc's, left as it is")
            continue
        models += [v["ModelName"] for v in config["ProductionVariants"]
                   if v.get("ModelName") and v["ModelName"] not in models]
        endpoints.delete(aws, "endpoint-config", config_name)
        record.drop("configs", config_name)
        removed.append(f"endpoint config {config_name}")
    for model_name in models:
        model = endpoints.describe_model(aws, model_name)
        if model is None:
            record.drop("models", model_name)
            continue
        model_tags = endpoints.list_tags(aws, model["ModelArn"])
        if not endpoints.is_ours(model_tags, name):
            console.info(f"model {model_name}: not byoc's, left as it is")
            continue
        uploads += [t["Value"] for t in model_tags if t["Key"] == endpoints.UPLOADED_TAG
                    and t["Value"] not in uploads]
        endpoints.delete(aws, "model", model_name)
        record.drop("models", model_name)
        removed.append(f"model {model_name}")
    for url in uploads:
        if s3.delete(aws, url):
            removed.append(url)
        record.drop("s3_objects", url)
    for bucket in list(record.buckets):
        if s3.delete_bucket_if_empty(aws, bucket):
            removed.append(f"bucket s3://{bucket}")
            record.drop("buckets", bucket)
        else:
            console.info(f"bucket s3://{bucket}: created by deploy but not empty: kept")
    for line in removed:
        console.ok(f"removed {line}")
    if record.configs or record.models or record.buckets:
        record.save(options.record_dir)
    else:
        record.remove(options.record_dir)
    print(f"undeployed {name}: {len(removed)} resources removed", flush=True)
    return ExitStatus.OK
