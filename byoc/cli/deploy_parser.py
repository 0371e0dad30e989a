"""`build.py deploy` and `build.py undeploy`: their arguments, and the namespace turned into
the frozen options byoc/deploy takes (argparse stays in byoc/cli)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..deploy.options import DEFAULT_WAIT_S, RECORD_DIR, DeployOptions, UndeployOptions
from ..errors import UsageError


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def add_deploy_commands(sub) -> None:
    p = sub.add_parser(
        "deploy", help="create or update a SageMaker endpoint from a pushed image, then "
                       "invoke its samples",
        description="Create the model, endpoint configuration and endpoint for a pushed "
                    "image (or update an existing byoc endpoint with a blue/green "
                    "deployment), wait until it is InService, and send the model's samples "
                    "through sagemaker-runtime. Everything that would fail is refused before "
                    "anything is created. See docs/deploy.md.")
    p.add_argument("image", help="the pushed image: its URI (HOST/REPO@sha256:... or :TAG), "
                                 "a local image `push` recorded, or the record "
                                 "build/pushed/NAME.json")
    p.add_argument("--endpoint", required=True, metavar="NAME", help="the endpoint's name")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--instance-type", metavar="TYPE",
                       help="e.g. ml.c5.xlarge or ml.g5.xlarge (real-time and async)")
    where.add_argument("--serverless", action="store_true",
                       help="a serverless endpoint (CPU images only; needs --memory and "
                            "--max-concurrency)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model-data", metavar="S3_URL",
                       help="the model.tar.gz in S3 (ModelDataUrl), used as it is")
    model.add_argument("--model-tar", metavar="FILE",
                       help="a local model.tar.gz, uploaded to S3 by deploy (default bucket: "
                            "sagemaker-REGION-ACCOUNT, as the SageMaker SDK's)")
    p.add_argument("--bucket", help="where --model-tar is uploaded")
    p.add_argument("--role", metavar="ARN", help="the execution role SageMaker assumes")
    p.add_argument("--region", help="the endpoint's region (default AWS_REGION or the "
                                    "profile's); the ECR repository must be in it (C20)")
    p.add_argument("--profile", help="AWS profile (default AWS_PROFILE or the default)")
    p.add_argument("--count", type=int, default=1, metavar="N", help="instances (default 1)")
    p.add_argument("--env", type=_key_value, action="append", default=[], metavar="K=V",
                   help="container environment (repeatable)")
    p.add_argument("--async", dest="asynchronous", action="store_true",
                   help="an asynchronous endpoint (needs --output): the image's payload and "
                        "deadline limits are raised to SageMaker's async limits (C29)")
    p.add_argument("--output", metavar="S3_URL", help="async: where the answers go")
    p.add_argument("--max-concurrent-invocations", type=int, metavar="N",
                   help="async: concurrent requests per instance")
    p.add_argument("--memory", dest="memory_mb", type=int, metavar="MB",
                   help="serverless memory: 1024, 2048, ... 6144 (C30)")
    p.add_argument("--max-concurrency", type=int, metavar="N",
                   help="serverless: at most 200 concurrent invocations (C30)")
    p.add_argument("--ami-version", metavar="VERSION",
                   help="InferenceAmiVersion (default: what the CUDA gate chooses)")
    p.add_argument("--startup-timeout", dest="startup_timeout_s", type=int, metavar="S",
                   help="ContainerStartupHealthCheckTimeoutInSeconds (default: the verified "
                        "cold start x2 + 60 s)")
    p.add_argument("--rollback-alarm", action="append", default=[], metavar="ALARM",
                   help="a CloudWatch alarm that rolls an update back (repeatable)")
    p.add_argument("--termination-wait", dest="termination_wait_s", type=int, default=120,
                   metavar="S", help="blue/green: seconds the old fleet stays after the "
                                     "shift (default 120)")
    p.add_argument("--samples", metavar="DIR",
                   help="samples to send (default: those baked into the image)")
    p.add_argument("--no-invoke", action="store_true", help="do not send the samples")
    p.add_argument("--wait", dest="wait_s", type=float, default=DEFAULT_WAIT_S, metavar="S",
                   help=f"give up waiting after this long (default {DEFAULT_WAIT_S:.0f})")
    p.add_argument("--poll", dest="poll_s", type=float, default=15.0, metavar="S",
                   help=argparse.SUPPRESS)
    p.add_argument("--summary", metavar="FILE",
                   help="append the answers as Markdown (e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument("--record-dir", default=str(RECORD_DIR), metavar="DIR",
                   help="where what deploy created is recorded (default build/deployed)")
    p.set_defaults(command="deploy")

    p = sub.add_parser("undeploy", help="remove what deploy created for an endpoint",
                       description="Delete the endpoint, its configurations and models and "
                                   "the S3 objects deploy uploaded: only what byoc's tags "
                                   "and record say deploy created.")
    p.add_argument("endpoint", metavar="NAME")
    p.add_argument("--region")
    p.add_argument("--profile")
    p.add_argument("--wait", dest="wait_s", type=float, default=1800.0, metavar="S")
    p.add_argument("--poll", dest="poll_s", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--record-dir", default=str(RECORD_DIR), metavar="DIR",
                   help="where deploy recorded what it created (default build/deployed)")
    p.set_defaults(command="undeploy")


def deploy_options(args: argparse.Namespace) -> DeployOptions:
    if args.serverless and args.asynchronous:
        raise UsageError("--serverless and --async: an endpoint is one or the other",
                         "drop one of them")
    if not args.serverless and (args.memory_mb is not None or args.max_concurrency is not None):
        raise UsageError("--memory and --max-concurrency are for --serverless endpoints",
                         "add --serverless, or drop them")
    if args.output and not args.asynchronous:
        raise UsageError("--output is for --async endpoints", "add --async, or drop it")
    return DeployOptions(
        image=args.image, endpoint=args.endpoint, instance_type=args.instance_type,
        model_data=args.model_data, model_tar=Path(args.model_tar) if args.model_tar else None,
        bucket=args.bucket, role=args.role, region=args.region, profile=args.profile,
        count=args.count, env=tuple(args.env), asynchronous=args.asynchronous,
        output=args.output, max_concurrent_invocations=args.max_concurrent_invocations,
        serverless=args.serverless, memory_mb=args.memory_mb,
        max_concurrency=args.max_concurrency, ami_version=args.ami_version,
        startup_timeout_s=args.startup_timeout_s, rollback_alarms=tuple(args.rollback_alarm),
        termination_wait_s=args.termination_wait_s,
        samples=Path(args.samples) if args.samples else None, invoke=not args.no_invoke,
        wait_s=args.wait_s, poll_s=args.poll_s,
        summary=Path(args.summary) if args.summary else None,
        record_dir=Path(args.record_dir))


def undeploy_options(args: argparse.Namespace) -> UndeployOptions:
    return UndeployOptions(endpoint=args.endpoint, region=args.region, profile=args.profile,
                           wait_s=args.wait_s, poll_s=args.poll_s,
                           record_dir=Path(args.record_dir))


def deploy_command(args: argparse.Namespace, console) -> int:
    from ..deploy import deploy

    return deploy(deploy_options(args), console)


def undeploy_command(args: argparse.Namespace, console) -> int:
    from ..deploy import undeploy

    return undeploy(undeploy_options(args), console)
