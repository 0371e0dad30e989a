"""The AWS clients deploy uses (SageMaker, SageMaker runtime, S3, IAM, STS) and one place
that turns their failures into errors with a tip.

Credentials and region come from boto3's standard chain, endpoints from the standard
AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> variables (moto in the tests)."""

from __future__ import annotations

import os

import boto3
import botocore.config
import botocore.exceptions as bexc

from .. import __version__
from ..ecr import CREDENTIALS_TIP
from ..errors import ByocError, ConfigError

POLICY_TIP = ("the caller needs the actions of deploy/aws/sagemaker-deploy-policy.json "
              "(and iam:PassRole on the execution role)")
_THROTTLED = {"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
              "Throttling", "ThrottledException", "SlowDown"}
_DENIED = {"AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
           "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
           "InvalidSignatureException", "SignatureDoesNotMatch"}


class AwsError(ByocError):
    def __init__(self, message: str, tip: str | None = None, code: str = ""):
        super().__init__(message, tip)
        self.code = code


class Aws:
    def __init__(self, region: str | None = None, profile: str | None = None):
        try:
            self.session = boto3.Session(profile_name=profile)
        except bexc.ProfileNotFound:
            raise ConfigError(f"AWS profile {profile!r} not found",
                              "check --profile / AWS_PROFILE against ~/.aws/config") from None
        self.region = region or os.environ.get("AWS_REGION") or self.session.region_name
        if not self.region:
            raise ConfigError("no AWS region for the endpoint",
                              "pass --region, or set AWS_REGION (the image's ECR repository "
                              "must be in the same region, C20)")
        config = botocore.config.Config(
            region_name=self.region, connect_timeout=10, read_timeout=70,
            retries={"mode": os.environ.get("AWS_RETRY_MODE") or "standard",
                     "total_max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS") or 5)},
            user_agent_extra=f"byoc/{__version__}")
        # sagemaker-runtime waits up to 60 s for a real-time answer: no retry of a slow one.
        runtime_config = config.merge(botocore.config.Config(read_timeout=75,
                                                             retries={"total_max_attempts": 1}))
        self.sagemaker = self.session.client("sagemaker", config=config)
        self.runtime = self.session.client("sagemaker-runtime", config=runtime_config)
        self.s3 = self.session.client("s3", config=config)
        self.iam = self.session.client("iam", config=config)
        self.sts = self.session.client("sts", config=config)

    def call(self, client, operation: str, **kwargs):
        service = client.meta.service_model.service_name
        try:
            return getattr(client, operation)(**kwargs)
        except (bexc.NoCredentialsError, bexc.PartialCredentialsError,
                bexc.CredentialRetrievalError) as exc:
            raise AwsError(f"no usable AWS credentials: {exc}", CREDENTIALS_TIP) from None
        except (bexc.EndpointConnectionError, bexc.ConnectTimeoutError,
                bexc.ReadTimeoutError) as exc:
            raise AwsError(f"cannot reach {service} at {client.meta.endpoint_url}: {exc}",
                           "check the network and proxy settings; AWS_ENDPOINT_URL_* "
                           "variables override the endpoints") from None
        except bexc.ParamValidationError as exc:  # a bug in byoc: say so plainly
            raise AwsError(f"{service} {operation}: byoc sent an invalid request: {exc}",
                           "report it with the command line") from None
        except bexc.ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", str(exc))
            if code in _THROTTLED:
                raise AwsError(f"AWS throttled {service} {operation} ({code}: {message})",
                               "run again in a minute; raise AWS_MAX_ATTEMPTS if many "
                               "deploys share the account", code) from None
            if code in _DENIED:
                raise AwsError(f"AWS refused {service} {operation}: {code}: {message}",
                               f"{POLICY_TIP}; {CREDENTIALS_TIP}", code) from None
            error = AwsError(f"{service} {operation} failed: {code}: {message}", None, code)
            error.response = exc.response
            raise error from None

    def account(self) -> str:
        return self.call(self.sts, "get_caller_identity")["Account"]
