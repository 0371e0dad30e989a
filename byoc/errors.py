"""Errors that reach the user as one line of what is wrong and one of what to do."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1  # a build, verify or push step failed
    USAGE = 2  # bad command line or configuration
    VERIFY_FAILED = 3  # the image broke a contract point
    INCOMPATIBLE = 4  # the image would not start on an instance it targets (CUDA vs driver)


class ByocError(Exception):
    """A failure the user can act on. Printed once, at the edge, by the CLI."""

    exit_status = ExitStatus.ERROR

    def __init__(self, message: str, tip: str | None = None):
        super().__init__(message)
        self.message = message
        self.tip = tip


class ConfigError(ByocError):
    exit_status = ExitStatus.USAGE


class UsageError(ByocError):
    exit_status = ExitStatus.USAGE


class DockerError(ByocError):
    pass


class VerifyFailed(ByocError):
    exit_status = ExitStatus.VERIFY_FAILED


class IncompatibleImage(ByocError):
    """The compatibility gate says the image will not start where it is meant to run."""

    exit_status = ExitStatus.INCOMPATIBLE
