"""Amazon ECR through boto3: account, repository settings, authorization tokens.

Credentials and region come from boto3's standard chain (environment, profiles, SSO, OIDC
web identity in GitHub Actions, instance roles); endpoints from the standard
AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL_STS variables. botocore's
standard retry mode retries throttling and transient faults; whatever is left is raised
as a ByocError with a tip."""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
import json
import os
import re

import boto3
import botocore.config
import botocore.exceptions as bexc

from . import __version__
from .config import PushSettings, mutability_filter
from .console import Console
from .errors import ByocError, ConfigError
from .registry import Credentials

_REPO_NAME = r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*"
_THROTTLED = {"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
              "Throttling", "ThrottledException"}
_DENIED = {"AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
           "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
           "InvalidSignatureException", "SignatureDoesNotMatch"}
IAM_ACTIONS = ("ecr:GetAuthorizationToken, ecr:DescribeRepositories, ecr:CreateRepository, "
               "ecr:PutLifecyclePolicy, ecr:GetLifecyclePolicy, ecr:BatchCheckLayerAvailability, "
               "ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload, "
               "ecr:PutImage, ecr:BatchGetImage")
CREDENTIALS_TIP = ("configure AWS credentials: AWS_PROFILE (aws configure / aws sso login), "
                   "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or in GitHub Actions "
                   "aws-actions/configure-aws-credentials with role-to-assume (OIDC); "
                   "or push to another registry with --registry HOST")


class AwsError(ByocError):
    pass


class RepositoryMissing(AwsError):
    pass


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a repository should look like, from the image config."""

    mutability: str  # MUTABLE | IMMUTABLE | IMMUTABLE_WITH_EXCLUSION
    exclusions: tuple[str, ...]  # WILDCARD filters for moving tags
    scan_on_push: bool
    encryption: str
    kms_key: str | None
    lifecycle_policy: str | None

    @classmethod
    def from_push(cls, push: PushSettings, moving: tuple[str, ...]) -> Settings:
        """IMMUTABLE with moving tags becomes IMMUTABLE_WITH_EXCLUSION: content tags stay
        immutable, the moving ones (templates turned into wildcards) may move."""
        filters = tuple(dict.fromkeys(mutability_filter(t) for t in moving))
        mutability = push.tag_mutability
        if mutability == "IMMUTABLE" and filters:
            mutability = "IMMUTABLE_WITH_EXCLUSION"
        return cls(mutability, filters if mutability.endswith("_WITH_EXCLUSION") else (),
                   push.scan_on_push, push.encryption, push.kms_key, push.lifecycle_policy)

    def describe(self) -> str:
        parts = [self.mutability.lower().replace("_", " ")]
        if self.exclusions:
            parts[0] += f" ({', '.join(self.exclusions)} movable)"
        parts.append("scan on push" if self.scan_on_push else "no scan on push")
        parts.append(self.encryption + (f" {self.kms_key}" if self.kms_key else ""))
        parts.append("lifecycle: " + lifecycle_summary(self.lifecycle_policy))
        return ", ".join(parts)


def lifecycle_summary(policy: str | None) -> str:
    if not policy:
        return "none"
    try:
        rules = json.loads(policy).get("rules", [])
        return "; ".join(r.get("description") or f"rule {r.get('rulePriority')}" for r in rules)
    except (ValueError, AttributeError):
        return "unreadable policy"


@dataclasses.dataclass(frozen=True)
class Repository:
    name: str
    uri: str
    settings: Settings
    created: bool

    def tag_is_immutable(self, tag: str) -> bool:
        excluded = any(fnmatch.fnmatchcase(tag, f) for f in self.settings.exclusions)
        return {"IMMUTABLE": True, "MUTABLE": False,
                "IMMUTABLE_WITH_EXCLUSION": not excluded,
                "MUTABLE_WITH_EXCLUSION": excluded}.get(self.settings.mutability, False)


@dataclasses.dataclass(frozen=True)
class Authorization:
    credentials: Credentials
    registry: str  # host of the proxy endpoint, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com


class Ecr:
    def __init__(self, *, region: str | None = None, profile: str | None = None):
        try:
            self.session = boto3.Session(profile_name=profile)
        except bexc.ProfileNotFound as exc:
            raise ConfigError(f"AWS profile not found: {exc}",
                              "check --profile / AWS_PROFILE against ~/.aws/config") from None
        self.region = region or os.environ.get("AWS_REGION") or self.session.region_name
        if not self.region:
            raise ConfigError("no AWS region for ECR",
                              "set AWS_REGION, push.region in images/images.yaml, or --region "
                              "(the repository must be in the endpoint's region, C20)")
        self.max_attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or 5)
        config = botocore.config.Config(
            region_name=self.region, connect_timeout=10, read_timeout=60,
            retries={"mode": os.environ.get("AWS_RETRY_MODE") or "standard",
                     "total_max_attempts": self.max_attempts},
            user_agent_extra=f"byoc/{__version__}")
        self.ecr = self.session.client("ecr", config=config)
        self.sts = self.session.client("sts", config=config)

    @property
    def endpoint(self) -> str:
        return self.ecr.meta.endpoint_url

    # -- every call goes through here --------------------------------------------------------
    def _call(self, client, operation: str, **kwargs):
        try:
            return getattr(client, operation)(**kwargs)
        except (bexc.NoCredentialsError, bexc.PartialCredentialsError,
                bexc.CredentialRetrievalError) as exc:
            raise AwsError(f"no usable AWS credentials: {exc}", CREDENTIALS_TIP) from None
        except (bexc.EndpointConnectionError, bexc.ConnectTimeoutError,
                bexc.ReadTimeoutError) as exc:
            raise AwsError(f"cannot reach the AWS API at {client.meta.endpoint_url}: {exc}",
                           "check the network and proxy settings; AWS_ENDPOINT_URL_ECR and "
                           "AWS_ENDPOINT_URL_STS override the endpoints") from None
        except bexc.ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", str(exc))
            if code in _THROTTLED:
                raise AwsError(
                    f"the AWS API throttled {operation} ({code}: {message}) through "
                    f"{self.max_attempts} attempts",
                    "run again in a minute; raise AWS_MAX_ATTEMPTS (now "
                    f"{self.max_attempts}) if many pushes share the account") from None
            if code in _DENIED:
                raise AwsError(f"AWS refused {operation}: {code}: {message}",
                               f"the caller needs {IAM_ACTIONS} on the repository; "
                               + CREDENTIALS_TIP) from None
            raise _Coded(code, f"ECR {operation} failed: {code}: {message}") from None

    # -- API ------------------------------------------------------------------------------
    def account(self) -> str:
        return self._call(self.sts, "get_caller_identity")["Account"]

    def authorization(self) -> Authorization:
        """A fresh token (valid 12 h; never reuse one across a long build)."""
        data = self._call(self.ecr, "get_authorization_token")["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        endpoint = data["proxyEndpoint"].split("://", 1)[-1].rstrip("/")
        return Authorization(Credentials(user, password, "ECR GetAuthorizationToken"), endpoint)

    def ensure_repository(self, name: str, want: Settings, *, create: bool,
                          console: Console) -> Repository:
        if not 2 <= len(name) <= 256 or not re.fullmatch(_REPO_NAME, name):
            raise ConfigError(f"{name!r} is not a valid ECR repository name",
                              "2-256 characters: lowercase letters, numbers, . _ - and /")
        try:
            found = self._call(self.ecr, "describe_repositories",
                               repositoryNames=[name])["repositories"][0]
        except _Coded as exc:
            if exc.code != "RepositoryNotFoundException":
                raise
            if not create:
                raise RepositoryMissing(
                    f"ECR repository {name} does not exist in {self.region}, and creating it "
                    "is disabled (push.create_repository: false or --no-create-repository)",
                    f"create it: aws ecr create-repository --region {self.region} "
                    f"--repository-name {name} --image-tag-mutability {want.mutability} ..., "
                    "or allow byoc to create it with the configured settings") from None
            return self._create(name, want, console)
        have = self._settings_of(found)
        differences = _differences(have, want)
        if differences:
            console.warn(f"ECR repository {name} exists with settings that differ from the "
                         "image config; byoc leaves them as they are:")
            for line in differences:
                console.info(f"  {line}")
            console.info("  change them yourself (aws ecr put-image-tag-mutability, "
                         "put-image-scanning-configuration, put-lifecycle-policy), or change "
                         "images/images.yaml to match")
        else:
            console.info(f"ECR repository {name} exists with the configured settings")
        return Repository(name, found["repositoryUri"], have, created=False)

    def _create(self, name: str, want: Settings, console: Console) -> Repository:
        kwargs = dict(repositoryName=name, imageTagMutability=want.mutability,
                      imageScanningConfiguration={"scanOnPush": want.scan_on_push},
                      encryptionConfiguration={"encryptionType": want.encryption,
                                               **({"kmsKey": want.kms_key}
                                                  if want.kms_key else {})},
                      tags=[{"Key": "created-by", "Value": f"byoc {__version__}"}])
        if want.exclusions:
            kwargs["imageTagMutabilityExclusionFilters"] = [
                {"filterType": "WILDCARD", "filter": f} for f in want.exclusions]
        try:
            repo = self._call(self.ecr, "create_repository", **kwargs)["repository"]
        except _Coded as exc:
            if exc.code == "RepositoryAlreadyExistsException":  # created beside us meanwhile
                return self.ensure_repository(name, want, create=False, console=console)
            raise
        if want.lifecycle_policy:
            self._call(self.ecr, "put_lifecycle_policy", repositoryName=name,
                       lifecyclePolicyText=want.lifecycle_policy)
        console.ok(f"created ECR repository {repo['repositoryUri']}: {want.describe()}")
        return Repository(name, repo["repositoryUri"], want, created=True)

    def _settings_of(self, repo: dict) -> Settings:
        try:
            policy = self._call(self.ecr, "get_lifecycle_policy",
                                repositoryName=repo["repositoryName"])["lifecyclePolicyText"]
        except _Coded as exc:
            if exc.code != "LifecyclePolicyNotFoundException":
                raise
            policy = None
        encryption = repo.get("encryptionConfiguration") or {}
        return Settings(
            repo.get("imageTagMutability", "MUTABLE"),
            tuple(f["filter"] for f in repo.get("imageTagMutabilityExclusionFilters") or []),
            bool((repo.get("imageScanningConfiguration") or {}).get("scanOnPush")),
            encryption.get("encryptionType", "AES256"), encryption.get("kmsKey"), policy)


class _Coded(AwsError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _same_policy(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return a == b


def _mutability(s: Settings) -> str:
    return s.mutability + (f" {list(s.exclusions)}" if s.exclusions else "")


def _encryption(s: Settings) -> str:
    return s.encryption + (f" {s.kms_key}" if s.kms_key else "")


def _differences(have: Settings, want: Settings) -> list[str]:
    out = []
    if (have.mutability, set(have.exclusions)) != (want.mutability, set(want.exclusions)):
        out.append(f"tag mutability: {_mutability(have)} (config: {_mutability(want)})")
    if have.scan_on_push != want.scan_on_push:
        out.append(f"scan on push: {have.scan_on_push} (config: {want.scan_on_push})")
    if have.encryption != want.encryption or (want.kms_key and have.kms_key != want.kms_key):
        out.append(f"encryption: {_encryption(have)} (config: {_encryption(want)}); ECR "
                   "cannot change a repository's encryption after creation")
    if not _same_policy(have.lifecycle_policy, want.lifecycle_policy):
        out.append(f"lifecycle policy: {lifecycle_summary(have.lifecycle_policy)} "
                   f"(config: {lifecycle_summary(want.lifecycle_policy)})")
    return out
