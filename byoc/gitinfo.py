"""Revision and timestamp for OCI labels and content tags, from git when there is one."""

from __future__ import annotations

import dataclasses
import datetime as dt

from . import REPO_ROOT
from .process import probe


@dataclasses.dataclass(frozen=True)
class Revision:
    sha: str  # short sha, "+dirty" marked; "unknown" outside git
    created: str  # RFC 3339: the commit time, so rebuilding a commit gives the same labels


def _git(*args: str) -> str:
    out = probe(["git", "-C", str(REPO_ROOT), *args])
    if out is None:
        raise OSError("git did not run")
    return out.stdout.strip()


def current() -> Revision:
    try:
        sha = _git("rev-parse", "--short=12", "HEAD")
        if not sha:
            raise OSError("no commit")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
        stamp = int(_git("log", "-1", "--format=%ct"))
        created = dt.datetime.fromtimestamp(stamp, dt.timezone.utc).isoformat()
        return Revision(sha + ("-dirty" if dirty else ""), created)
    except (OSError, ValueError):
        return Revision("unknown", dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
                        .isoformat())
