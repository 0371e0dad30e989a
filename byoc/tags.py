"""The tags a push publishes: one immutable content tag, plus optional moving tags.

The content tag names one build: version, variant and the git revision the image was built
from (its org.opencontainers.image.revision label). A dirty tree does not identify the
content, so its revision is marked "-dirty" and the image id is appended: two different
dirty builds never claim the same immutable tag."""

from __future__ import annotations

import dataclasses
import os
import re

from . import REPO_ROOT
from .config import PushSettings, validate_tag
from .errors import UsageError
from .process import probe

REVISION_LABEL = "org.opencontainers.image.revision"
VERSION_LABEL = "org.opencontainers.image.version"


@dataclasses.dataclass(frozen=True)
class TagPlan:
    content: str
    moving: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # moving-tag templates that could not be expanded, and why

    @property
    def all(self) -> tuple[str, ...]:
        return (self.content, *(t for t in self.moving if t != self.content))


def _sanitize(name: str) -> str:
    """A branch name as a tag: 'feature/New thing' -> 'feature-new-thing'."""
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.")[:60]


def current_branch() -> str | None:
    """The branch being built: GitHub Actions' names first (a pull request's head branch,
    then the pushed ref), then git; None when detached or outside git."""
    for var in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME"):
        if os.environ.get(var):
            return _sanitize(os.environ[var]) or None
    out = probe(["git", "-C", str(REPO_ROOT), "rev-parse", "--abbrev-ref", "HEAD"])
    if out is None:
        return None
    name = out.stdout.strip()
    return _sanitize(name) if name and name != "HEAD" else None


def content_sha(revision: str | None, image_id: str) -> str:
    short_id = image_id.split(":")[-1][:12]
    if not revision or revision == "unknown":
        return f"nogit-{short_id}"
    if revision.endswith("-dirty"):
        return f"{revision}-{short_id}"
    return revision


def plan(settings: PushSettings, *, labels: dict[str, str], image_id: str, variant: str,
         flavor: str, content_override: str | None = None,
         moving_override: list[str] | None = None,
         branch: str | None = None) -> TagPlan:
    """Expand the templates for one image. content_override / moving_override come from
    --content-tag / --moving-tag (literal tags, not templates)."""
    version = labels.get(VERSION_LABEL)
    if content_override:
        content = validate_tag("--content-tag", content_override)
    else:
        if not version:
            raise UsageError(f"the image has no {VERSION_LABEL} label, so its content tag "
                             "cannot be named", "build it with `python build.py`, or name the "
                             "tag yourself: --content-tag TAG")
        fields = {"version": version, "variant": variant, "flavor": flavor,
                  "sha": content_sha(labels.get(REVISION_LABEL), image_id)}
        content = validate_tag("push.content_tag", settings.content_tag.format(**fields))
    if moving_override is not None:
        moving = tuple(validate_tag("--moving-tag", t) for t in moving_override)
        return TagPlan(content, moving)
    moving_list, skipped = [], []
    for template in settings.moving_tags:
        if "{branch}" in template:
            branch = branch if branch is not None else current_branch()
            if not branch:
                skipped.append(f"{template} (no branch: detached HEAD or not a git checkout)")
                continue
        fields = {"version": version or "unknown", "variant": variant, "flavor": flavor,
                  "branch": branch or ""}
        moving_list.append(validate_tag("push.moving_tags", template.format(**fields)))
    return TagPlan(content, tuple(dict.fromkeys(moving_list)), tuple(skipped))
