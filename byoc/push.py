"""Push built images to ECR or any registry. (Being built: issue 4.)"""

from __future__ import annotations

import argparse

from .errors import UsageError


def add_push_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `--push` on build commands and the `push` command."""


def register(subparsers) -> None:
    """Add the `push IMAGE` subcommand."""


def push_built(args, built, spec, console) -> None:
    raise UsageError("--push is not available yet")


def run_push_command(args, console) -> int:
    raise UsageError("push is not available yet")
