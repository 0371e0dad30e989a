"""The AWS side of deploy: the least-privilege deploy policy, the deploy role's trust (the
protected GitHub environment only), the execution role, and the deploy workflow (manual,
protected environment, OIDC, answers in the job summary)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from byoc.cli import deploy_parser

REPO = Path(__file__).resolve().parents[2]
AWS = REPO / "deploy" / "aws"
SAGEMAKER_RESOURCES = {"arn:aws:sagemaker:REGION:ACCOUNT_ID:model/*",
                       "arn:aws:sagemaker:REGION:ACCOUNT_ID:endpoint-config/*",
                       "arn:aws:sagemaker:REGION:ACCOUNT_ID:endpoint/*"}


def policy(name: str) -> dict:
    return json.loads((AWS / name).read_text())


def statements(name: str) -> dict[str, dict]:
    doc = policy(name)
    assert doc["Version"] == "2012-10-17"
    return {s["Sid"]: s for s in doc["Statement"]}


def actions(statement: dict) -> set[str]:
    listed = statement["Action"]
    return set(listed if isinstance(listed, list) else [listed])


def test_deploy_policy_names_no_wildcard_action_and_allows_only_what_deploy_calls():
    found = statements("sagemaker-deploy-policy.json")
    everything = set()
    for statement in found.values():
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        assert all("*" not in a for a in actions(statement)), statement
        everything |= actions(statement)
    calls = {  # every AWS call byoc/deploy makes, as IAM actions
        "sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:CreateEndpoint",
        "sagemaker:AddTags", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint",
        "sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel", "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel", "sagemaker:ListTags",
        "sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointAsync", "iam:PassRole",
        "iam:GetRole", "s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket",
        "s3:CreateBucket", "s3:PutBucketTagging", "s3:DeleteBucket",
        "ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
    assert everything == calls


def test_deploy_policy_creates_and_removes_only_what_is_tagged_by_byoc():
    found = statements("sagemaker-deploy-policy.json")
    create = found["CreateOnlyWhatIsTaggedByByoc"]
    assert set(create["Resource"]) == SAGEMAKER_RESOURCES
    assert create["Condition"] == {"StringLike": {"aws:RequestTag/created-by": "byoc *"}}
    change = found["UpdateAndRemoveOnlyWhatByocCreated"]
    assert actions(change) == {"sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint",
                               "sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"}
    assert change["Condition"] == {"StringLike": {"aws:ResourceTag/created-by": "byoc *"}}
    from byoc import __version__
    from byoc.deploy import endpoints

    # the tag deploy writes matches the condition
    tag = {t["Key"]: t["Value"] for t in endpoints.tags("x")}["created-by"]
    assert tag == f"byoc {__version__}" and re.fullmatch(r"byoc .+", tag)


def test_the_execution_role_is_passed_to_sagemaker_only():
    passing = statements("sagemaker-deploy-policy.json")["HandTheExecutionRoleToSageMakerOnly"]
    assert passing["Resource"] == "arn:aws:iam::ACCOUNT_ID:role/byoc-sagemaker-execution"
    assert passing["Condition"]["StringEqualsIfExists"]["iam:PassedToService"] == \
        "sagemaker.amazonaws.com"
    trust = policy("sagemaker-execution-trust-policy.json")["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    execution = statements("sagemaker-execution-role-policy.json")
    assert "ecr:BatchGetImage" in actions(execution["PullTheImage"])


def test_deploy_role_trusts_only_the_protected_staging_environment():
    statement = policy("github-oidc-deploy-trust-policy.json")["Statement"][0]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": "repo:OWNER/REPO:environment:staging"}
    job = yaml.safe_load((REPO / ".github" / "workflows" / "deploy.yml").read_text())
    assert job["jobs"]["deploy"]["environment"] == "staging"


def test_deploy_workflow_is_manual_protected_oidc_and_reports_the_answers():
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "deploy.yml").read_text())
    assert set(wf.pop(True)) == {"workflow_dispatch"}  # YAML 1.1 reads `on` as true
    assert wf["permissions"] == {"contents": "read"}
    job = wf["jobs"]["deploy"]
    assert job["permissions"]["id-token"] == "write"
    steps = job["steps"]
    (aws,) = [s for s in steps if s.get("uses", "").startswith(
        "aws-actions/configure-aws-credentials@")]
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    (download,) = [s for s in steps if s.get("uses", "").startswith(
        "actions/download-artifact@")]
    assert download["with"]["run-id"] == "${{ inputs.images_run_id }}"
    assert download["with"]["name"] == "pushed-${{ inputs.image }}"  # images.yml's artifact
    (deploy_step,) = [s for s in steps if "build.py deploy" in s.get("run", "")]
    assert '--summary "$GITHUB_STEP_SUMMARY"' in deploy_step["run"]
    assert "${{" not in deploy_step["run"]  # inputs reach the shell as variables only


def test_the_deploy_parser_turns_the_command_line_into_options():
    import argparse

    parser = argparse.ArgumentParser()
    deploy_parser.add_deploy_commands(parser.add_subparsers(dest="subcommand"))
    args = parser.parse_args(["deploy", "img", "--endpoint", "e", "--serverless", "--memory",
                              "2048", "--max-concurrency", "3", "--env", "A=1", "--env",
                              "B=x=y"])
    options = deploy_parser.deploy_options(args)
    assert args.command == "deploy" and options.serverless and options.memory_mb == 2048
    assert options.env == (("A", "1"), ("B", "x=y")) and options.kind == "serverless"
    args = parser.parse_args(["undeploy", "e", "--region", "eu-west-1"])
    assert args.command == "undeploy"
    assert deploy_parser.undeploy_options(args).region == "eu-west-1"
