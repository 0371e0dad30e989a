"""`build.py deploy` / `undeploy` through the CLI's main(): what the command line alone gets
wrong is one ERROR line, one TIP and exit 2, before any AWS client exists."""

from __future__ import annotations

import pytest

from byoc import cli

BAD = [
    (["--serverless", "--memory", "8192", "--max-concurrency", "5"], "1024-6144 MB"),
    (["--serverless", "--memory", "2048", "--max-concurrency", "201"], "1 to 200"),
    (["--serverless"], "--serverless needs --memory"),
    (["--instance-type", "ml.c5.xlarge", "--memory", "2048"], "for --serverless endpoints"),
    (["--instance-type", "ml.c5.xlarge", "--serverless"], "not allowed with argument"),
    (["--instance-type", "ml.c5.xlarge", "--async"], "--async needs --output"),
    (["--instance-type", "ml.c5.xlarge", "--output", "s3://b/p"], "--output is for --async"),
    (["--instance-type", "ml.c5.xlarge", "--env", "NOEQUALS"], "is not KEY=VALUE"),
    (["--instance-type", "ml.c5.xlarge", "--count", "0"], "at least one instance"),
    ([], "needs --instance-type"),
]


@pytest.mark.parametrize("extra, text", BAD)
def test_c30_bad_command_lines_are_one_error_a_tip_and_exit_2(extra, text, capsys,
                                                              monkeypatch):
    import boto3

    monkeypatch.setattr(boto3, "Session", None)  # proof: no AWS client is made
    status = cli.main(["deploy", "img@sha256:x", "--endpoint", "digits", *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(("ERROR", "TIP"))]
    assert status == 2
    assert lines[0].startswith("ERROR") and text in lines[0], err
    assert lines[1].startswith("TIP") and len(lines) == 2


def test_undeploy_and_deploy_are_commands():
    assert cli.parse(["undeploy", "digits"]).command == "undeploy"
    args = cli.parse(["deploy", "img", "--endpoint", "e", "--instance-type", "ml.c5.xlarge"])
    assert args.command == "deploy"
