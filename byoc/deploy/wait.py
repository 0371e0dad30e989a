"""Waiting for SageMaker, with progress: a line on each status change and one a minute
while nothing changes, then the outcome (InService, Failed with its reason, rolled back)."""

from __future__ import annotations

import time

from ..console import Console
from ..errors import ByocError
from . import endpoints
from .aws import Aws

HEARTBEAT_S = 60.0


def until_settled(aws: Aws, name: str, console: Console, *, timeout_s: float,
                  poll_s: float, sleep=time.sleep) -> dict:
    """Poll DescribeEndpoint until the endpoint leaves Creating/Updating/SystemUpdating."""
    started = last_line = time.monotonic()
    last = None
    while True:
        described = endpoints.describe_endpoint(aws, name)
        if described is None:
            raise ByocError(f"endpoint {name} disappeared while deploy waited for it",
                            "someone deleted it; run deploy again")
        status = described["EndpointStatus"]
        elapsed = time.monotonic() - started
        if status != last:
            console.info(f"endpoint {name}: {status} ({elapsed:.0f}s)")
            last, last_line = status, time.monotonic()
        elif time.monotonic() - last_line >= HEARTBEAT_S:
            console.info(f"endpoint {name}: still {status} ({elapsed:.0f}s)")
            last_line = time.monotonic()
        if status not in ("Creating", "Updating", "SystemUpdating", "RollingBack"):
            return described
        if elapsed > timeout_s:
            raise ByocError(f"endpoint {name} is still {status} after {timeout_s:.0f}s",
                            "it may still come up: watch it in the SageMaker console, or run "
                            "deploy again with a longer --wait")
        sleep(poll_s)


def until_gone(aws: Aws, name: str, console: Console, *, timeout_s: float, poll_s: float,
               sleep=time.sleep) -> None:
    started = time.monotonic()
    while endpoints.describe_endpoint(aws, name) is not None:
        if time.monotonic() - started > timeout_s:
            raise ByocError(f"endpoint {name} is still being deleted after {timeout_s:.0f}s",
                            "run undeploy again later to remove its configuration and model")
        console.info(f"endpoint {name}: Deleting ({time.monotonic() - started:.0f}s)")
        sleep(poll_s)
