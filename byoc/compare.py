"""`build.py compare`: measure which server serves this model better. (Being built: issue 7.)"""

from __future__ import annotations

from .errors import UsageError


def register(subparsers) -> None:
    """Add the `compare` subcommand."""


def run_compare_command(args, console) -> int:
    raise UsageError("compare is not available yet")
