"""byoc.ecr against moto's ECR and STS servers (in-process, on a loopback port): repository
created with the configured settings, existing settings reported and never changed, a
missing repository with creation disabled, fresh tokens, and throttling through a real
HTTP proxy that answers ThrottlingException before passing requests on."""

from __future__ import annotations

import http.server
import io
import json
import threading

import pytest
import requests

from byoc import config, ecr
from byoc.console import Console
from byoc.errors import ConfigError

REGION = "eu-west-1"
PUSH = config.PushSettings(
    lifecycle_policy=json.dumps({"rules": [{"rulePriority": 1, "description": "keep 5",
                                            "selection": {"tagStatus": "any",
                                                          "countType": "imageCountMoreThan",
                                                          "countNumber": 5},
                                            "action": {"type": "expire"}}]}),
    moving_tags=("latest-{variant}",))


@pytest.fixture
def aws(moto_url, monkeypatch, tmp_path):
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_ECR",
                "AWS_ENDPOINT_URL_STS", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_DEFAULT_REGION", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    return moto_url


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(out), out


def want(push: config.PushSettings = PUSH) -> ecr.Settings:
    return ecr.Settings.from_push(push, push.moving_tags)


def test_account_and_region_come_from_the_standard_chain(aws):
    api = ecr.Ecr()
    assert api.account() == "123456789012" and api.region == REGION
    assert api.endpoint == aws  # AWS_ENDPOINT_URL honoured, no code for it


def test_missing_repository_is_created_with_the_configured_settings(aws):
    con, out = console()
    api = ecr.Ecr()
    repo = api.ensure_repository("byoc-torchserve", want(), create=True, console=con)
    assert repo.created
    found = api.ecr.describe_repositories(repositoryNames=["byoc-torchserve"])["repositories"][0]
    assert found["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert found["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD",
                                                            "filter": "latest-*"}]
    assert found["imageScanningConfiguration"] == {"scanOnPush": True}
    assert found["encryptionConfiguration"] == {"encryptionType": "AES256"}
    policy = api.ecr.get_lifecycle_policy(repositoryName="byoc-torchserve")
    assert json.loads(policy["lifecyclePolicyText"]) == json.loads(PUSH.lifecycle_policy)
    assert "created ECR repository 123456789012.dkr.ecr.eu-west-1.amazonaws.com/" \
           "byoc-torchserve: immutable with exclusion (latest-* movable), scan on push, " \
           "AES256, lifecycle: keep 5" in out.getvalue()


def test_kms_encryption_is_passed_on(aws):
    push = config.PushSettings(encryption="KMS", kms_key="alias/byoc", tag_mutability="MUTABLE")
    api = ecr.Ecr()
    api.ensure_repository("byoc-kms", want(push), create=True, console=console()[0])
    found = api.ecr.describe_repositories(repositoryNames=["byoc-kms"])["repositories"][0]
    assert found["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": "alias/byoc"}
    assert found["imageTagMutability"] == "MUTABLE"


def test_existing_repository_with_other_settings_is_reported_and_left_alone(aws):
    api = ecr.Ecr()
    api.ecr.create_repository(repositoryName="legacy", imageTagMutability="MUTABLE")
    con, out = console()
    repo = api.ensure_repository("legacy", want(), create=True, console=con)
    assert not repo.created
    text = out.getvalue()
    assert "WARNING ECR repository legacy exists with settings that differ" in text
    assert "tag mutability: MUTABLE (config: IMMUTABLE_WITH_EXCLUSION ['latest-*'])" in text
    assert "scan on push: False (config: True)" in text
    assert "lifecycle policy: none (config: keep 5)" in text
    found = api.ecr.describe_repositories(repositoryNames=["legacy"])["repositories"][0]
    assert found["imageTagMutability"] == "MUTABLE"  # never changed silently
    assert not found["imageScanningConfiguration"]["scanOnPush"]
    # what the push will enforce comes from the repository, not the config
    assert not repo.tag_is_immutable("0.1.0-cpu-abc")


def test_existing_repository_with_the_same_settings_says_so(aws):
    api = ecr.Ecr()
    api.ensure_repository("same", want(), create=True, console=console()[0])
    con, out = console()
    repo = api.ensure_repository("same", want(), create=True, console=con)
    assert "exists with the configured settings" in out.getvalue()
    assert "WARNING" not in out.getvalue()
    assert repo.tag_is_immutable("0.1.0-cpu-abc") and not repo.tag_is_immutable("latest-cpu")


def test_missing_repository_with_creation_disabled_is_an_error_with_the_command(aws):
    with pytest.raises(ecr.RepositoryMissing) as caught:
        ecr.Ecr().ensure_repository("nope", want(), create=False, console=console()[0])
    assert "ECR repository nope does not exist in eu-west-1" in caught.value.message
    assert "aws ecr create-repository --region eu-west-1 --repository-name nope" in \
        caught.value.tip


@pytest.mark.parametrize("name", ["a", "UPPER", "x" * 257, "a//b"])
def test_invalid_repository_names_are_refused(aws, name):
    with pytest.raises(ConfigError, match="not a valid ECR repository name"):
        ecr.Ecr().ensure_repository(name, want(), create=True, console=console()[0])


def test_authorization_is_moto_s_deterministic_token(aws):
    auth = ecr.Ecr().authorization()
    assert (auth.credentials.username, auth.credentials.password) == ("AWS",
                                                                      "123456789012-auth-token")
    assert auth.registry == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


def test_no_region_is_a_config_error_with_a_tip(aws, monkeypatch):
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(ConfigError, match="no AWS region") as caught:
        ecr.Ecr()
    assert "AWS_REGION" in caught.value.tip


def test_no_credentials_is_an_error_with_a_tip(aws, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ecr.AwsError, match="no usable AWS credentials") as caught:
        ecr.Ecr().account()
    assert "role-to-assume (OIDC)" in caught.value.tip


def test_unreachable_api_is_an_error_with_a_tip(aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ecr.AwsError, match="cannot reach the AWS API at http://127.0.0.1:9"):
        ecr.Ecr().account()


# -- throttling: a real proxy in front of moto -------------------------------------------------

class Throttle(http.server.BaseHTTPRequestHandler):
    """Answers the first `budget` ECR calls with ThrottlingException, passes the rest on."""

    upstream = ""
    budget = 0
    throttled = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cls = type(self)
        if "AmazonEC2ContainerRegistry" in self.headers.get("X-Amz-Target", "") \
                and cls.throttled < cls.budget:
            cls.throttled += 1
            payload = json.dumps({"__type": "ThrottlingException",
                                  "message": "Rate exceeded"}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
        else:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            reply = requests.post(cls.upstream + self.path, data=body, headers=headers,
                                  timeout=30)
            payload = reply.content
            self.send_response(reply.status_code)
            self.send_header("Content-Type", reply.headers.get("Content-Type", ""))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def throttle(aws, monkeypatch):
    Throttle.upstream, Throttle.throttled = aws, 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Throttle)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", f"http://127.0.0.1:{server.server_address[1]}")
    yield Throttle
    server.shutdown()
    server.server_close()


def test_throttling_is_retried_by_botocore(throttle, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    throttle.budget = 1
    repo = ecr.Ecr().ensure_repository("byoc-t", want(), create=True, console=console()[0])
    assert repo.created and throttle.throttled == 1


def test_throttling_that_persists_is_a_clear_error(throttle, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    throttle.budget = 100
    with pytest.raises(ecr.AwsError) as caught:
        ecr.Ecr().ensure_repository("byoc-t", want(), create=True, console=console()[0])
    assert caught.value.message == ("the AWS API throttled describe_repositories "
                                    "(ThrottlingException: Rate exceeded) through 2 attempts")
    assert "AWS_MAX_ATTEMPTS" in caught.value.tip
    assert throttle.throttled == 2  # exactly the configured attempts, then stop
