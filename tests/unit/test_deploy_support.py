"""Support for the deploy tests: moto's SageMaker, S3, IAM and STS in one loopback server,
with the one SageMaker call moto 5.2 lacks (UpdateEndpoint) added in the same process.

The addition keeps SageMaker's observable behaviour that deploy relies on: the request is
validated by botocore against the real service model before it is sent; the endpoint must
exist and be InService and the new config must exist; the endpoint reports Updating for a
few DescribeEndpoint calls, then InService on the new config, or, when a test asks for a
rollback, InService on the old config with a FailureReason (what SageMaker does when the
new fleet fails its health checks). Every UpdateEndpoint request is kept for assertions."""

from __future__ import annotations

import boto3
import pytest
from moto.core.responses import ActionResult
from moto.sagemaker import models as sm_models
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.responses import SageMakerResponse

REGION = "eu-west-1"
ACCOUNT = "123456789012"
UPDATING_DESCRIBES = 2  # DescribeEndpoint answers Updating this many times after an update
TRUST = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": '
         '{"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}')


class UpdateState:
    requests: list[dict] = []
    rollback_next = False
    pending: dict[str, list] = {}  # endpoint -> [describes left, outcome]


def _update_endpoint(self: SageMakerResponse) -> ActionResult:
    name = self._get_param("EndpointName")
    config_name = self._get_param("EndpointConfigName")
    backend = self.sagemaker_backend
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        raise ValidationError(message=f"Could not find endpoint \"{name}\".")
    if endpoint.endpoint_status != "InService":
        raise ValidationError(message=f"Cannot update in-progress endpoint \"{name}\".")
    if config_name not in backend.endpoint_configs:
        raise ValidationError(message=f"Could not find endpoint configuration \"{config_name}\".")
    UpdateState.requests.append({
        "EndpointName": name, "EndpointConfigName": config_name,
        "RetainAllVariantProperties": self._get_param("RetainAllVariantProperties"),
        "DeploymentConfig": self._get_param("DeploymentConfig")})
    endpoint.endpoint_status = "Updating"
    UpdateState.pending[name] = [UPDATING_DESCRIBES, config_name, UpdateState.rollback_next]
    UpdateState.rollback_next = False
    return ActionResult({"EndpointArn": endpoint.arn})


_describe = sm_models.SageMakerModelBackend.describe_endpoint


def _describe_endpoint(self, endpoint_name: str):
    pending = UpdateState.pending.get(endpoint_name)
    endpoint = self.endpoints.get(endpoint_name)
    if pending and endpoint is not None:
        pending[0] -= 1
        if pending[0] < 0:
            _, config_name, rollback = UpdateState.pending.pop(endpoint_name)
            endpoint.endpoint_status = "InService"
            if rollback:
                endpoint.failure_reason = ("The new fleet failed its health checks: the "
                                           "primary container did not pass the ping health "
                                           "check. Rolled back to the previous configuration.")
            else:
                config = self.endpoint_configs[config_name]
                endpoint.endpoint_config_name = config_name
                endpoint.production_variants = endpoint._process_production_variants(
                    config.production_variants)
                endpoint.failure_reason = None
    return _describe(self, endpoint_name)


def install_update_endpoint() -> None:
    SageMakerResponse.update_endpoint = _update_endpoint
    sm_models.SageMakerModelBackend.describe_endpoint = _describe_endpoint


@pytest.fixture(scope="module", name="aws")
def aws_server(monkeypatch_module, moto_url):
    """moto on loopback for every AWS API deploy calls, credentials and region set."""
    install_update_endpoint()
    url = moto_url
    for key, value in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
                       "AWS_DEFAULT_REGION": REGION, "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch_module.setenv(key, value)
    monkeypatch_module.delenv("AWS_PROFILE", raising=False)
    yield url


@pytest.fixture(scope="module", name="monkeypatch_module")
def module_monkeypatch():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def client(name: str, url: str):
    return boto3.client(name, region_name=REGION, endpoint_url=url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def make_role(url: str, name: str = "byoc-sagemaker-execution", trust: str = TRUST) -> str:
    iam = client("iam", url)
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]


def queue_answers(url: str, answers: list[tuple[str, str]]) -> None:
    """What moto's sagemaker-runtime answers next: (body, content type) per invocation.
    moto cannot run a model; the tests that need real answers run real containers."""
    import requests

    requests.post(f"{url}/moto-api/static/sagemaker/endpoint-results", json={
        "account_id": ACCOUNT, "region": REGION,
        "results": [{"Body": body, "ContentType": ctype, "InvokedProductionVariant":
                     "AllTraffic", "CustomAttributes": ""} for body, ctype in answers]},
        timeout=10).raise_for_status()
