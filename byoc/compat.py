"""CUDA/driver compatibility gate for GPU images. (Being built: issue 6.)"""

from __future__ import annotations

import argparse


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """Options for the gate that build and push run."""


def register(subparsers) -> None:
    """Add the `check IMAGE --instance ...` subcommand."""


def gate_built(args, built, spec, console) -> None:
    """Refuse (overridably) an image that would not start on its target instances."""


def run_check_command(args, console) -> int:
    return 2
