"""What `deploy` and `undeploy` are asked to do: frozen options, built by byoc/cli from the
command line and trusted from there on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import builder

RECORD_DIR = builder.DEFAULT_WORK_DIR / "deployed"
DEFAULT_WAIT_S = 3600.0  # SageMaker's own limit for an endpoint to come up is hours; ours


@dataclasses.dataclass(frozen=True)
class DeployOptions:
    image: str  # registry URI (tag or digest), a local image pushed before, or a push record
    endpoint: str
    instance_type: str | None = None  # None only for --serverless
    model_data: str | None = None  # s3://.../model.tar.gz, used as it is
    model_tar: Path | None = None  # a local model.tar.gz, uploaded to S3 first
    bucket: str | None = None  # where --model-tar goes (default: the SDK's default bucket)
    role: str | None = None  # the execution role SageMaker assumes
    region: str | None = None
    profile: str | None = None
    count: int = 1
    env: tuple[tuple[str, str], ...] = ()
    asynchronous: bool = False
    output: str | None = None  # s3:// prefix for async answers
    max_concurrent_invocations: int | None = None  # async, per instance
    serverless: bool = False
    memory_mb: int | None = None
    max_concurrency: int | None = None
    ami_version: str | None = None  # overrides the gate's choice
    startup_timeout_s: int | None = None  # overrides the measured cold start + margin
    rollback_alarms: tuple[str, ...] = ()  # CloudWatch alarms that roll an update back
    termination_wait_s: int = 120  # blue/green: how long the old fleet stays after the shift
    samples: Path | None = None  # default: the samples baked into the image
    invoke: bool = True
    wait_s: float = DEFAULT_WAIT_S
    poll_s: float = 15.0
    summary: Path | None = None  # append the answers as Markdown (GitHub job summary)
    record_dir: Path = RECORD_DIR

    @property
    def kind(self) -> str:
        return "serverless" if self.serverless else "async" if self.asynchronous \
            else "real-time"


@dataclasses.dataclass(frozen=True)
class UndeployOptions:
    endpoint: str
    region: str | None = None
    profile: str | None = None
    wait_s: float = 1800.0
    poll_s: float = 10.0
    record_dir: Path = RECORD_DIR
