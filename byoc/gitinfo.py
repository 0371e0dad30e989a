"""Revision and timestamp for OCI labels and content tags, from git when there is one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess

from . import REPO_ROOT


@dataclasses.dataclass(frozen=True)
class Revision:
    sha: str  # short sha, "+dirty" marked; "unknown" outside git
    created: str  # RFC 3339: the commit time, so rebuilding a commit gives the same labels


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,
                          text=True, timeout=20).stdout.strip()


def current() -> Revision:
    try:
        sha = _git("rev-parse", "--short=12", "HEAD")
        if not sha:
            raise OSError("no commit")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
        stamp = int(_git("log", "-1", "--format=%ct"))
        created = dt.datetime.fromtimestamp(stamp, dt.timezone.utc).isoformat()
        return Revision(sha + ("-dirty" if dirty else ""), created)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return Revision("unknown", dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
                        .isoformat())
