"""`docker push` through the Docker SDK: per-layer progress, the push stream's error events
turned into exceptions with a tip (docker-py does not raise them), retries for what is
transient, and the registry-qualified local tags undone when a push fails.

The credentials go to the daemon in memory, in the SDK's X-Registry-Auth header
(`auth_config`): never to disk, never on a command line."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable

import docker
import requests
from docker.errors import DockerException, ImageNotFound

from .console import Console
from .registry import (
    Credentials,
    Endpoint,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
    RepositoryMissing,
    TagImmutable,
    TransientPushError,
    reason,
    unreachable_tip,
)

# Stream messages we can explain. Order matters: the first match wins.
_IMMUTABLE = ("cannot be overwritten", "tag invalid", "immutable")
_AUTH = ("unauthorized", "authentication required", "no basic auth credentials", "denied",
         "authorization token has expired", "access forbidden", "403 forbidden")
_MISSING = ("name unknown", "name_unknown", "repository does not exist",
            "does not exist in the registry", "repository_not_found")
_TRANSIENT = ("connection refused", "no such host", "i/o timeout", "timeout", "connection reset",
              "eof", "broken pipe", "tls handshake", "502", "503", "504", "toomanyrequests",
              "too many requests", "server misbehaving", "network is unreachable",
              "dial tcp", "service unavailable", "internal server error")


def classify(message: str, *, target: str, auth_tip: str, endpoint: Endpoint) -> RegistryError:
    low = message.lower()
    if any(n in low for n in _IMMUTABLE):
        return TagImmutable(f"{target}: the tag already exists and cannot be overwritten: "
                            f"{message}", IMMUTABLE_TIP)
    if any(n in low for n in _MISSING):
        return RepositoryMissing(f"{target}: the repository does not exist: {message}",
                                 "create it (ECR: let byoc create it, push.create_repository: "
                                 "true), or check the repository name")
    if any(n in low for n in _AUTH):
        return RegistryAuthError(f"{target}: the registry refused the push: {message}",
                                 auth_tip)
    if any(n in low for n in _TRANSIENT):
        return TransientPushError(f"{target}: {message}", unreachable_tip(endpoint))
    return RegistryError(f"{target}: docker push failed: {message}")


IMMUTABLE_TIP = ("an immutable tag names one build forever: rebuild from a new commit (the "
                 "content tag carries the git sha), or push under another --content-tag")


@dataclasses.dataclass
class PushResult:
    tag: str
    digest: str
    uploaded: list[str] = dataclasses.field(default_factory=list)
    existed: list[str] = dataclasses.field(default_factory=list)
    bytes_uploaded: int = 0
    seconds: float = 0.0


class _Layers:
    """Turns the daemon's event stream into a few plain lines per layer: progress every
    25% for big layers, one line when a layer is done, a summary of those already there."""

    STEP = 25  # percent between progress lines
    PROGRESS_MIN_BYTES = 16_000_000  # smaller layers only report when done

    def __init__(self, console: Console):
        self.console = console
        self.totals: dict[str, int] = {}
        self.reported: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.retry_in: dict[str, int] = {}
        self.announced: set[int] = set()
        self.uploaded: list[str] = []
        self.existed: list[str] = []

    def event(self, ev: dict) -> None:
        status, layer = ev.get("status", ""), ev.get("id", "")
        if not layer:
            return
        if status == "Pushing":
            detail = ev.get("progressDetail") or {}
            total, current = detail.get("total") or 0, detail.get("current") or 0
            self.started.setdefault(layer, time.monotonic())
            if total:
                self.totals[layer] = total
            if total >= self.PROGRESS_MIN_BYTES:
                step = min(100, int(100 * current / total)) // self.STEP * self.STEP
                if step > self.reported.get(layer, 0):
                    self.reported[layer] = step
                    self.console.progress(f"{layer}  {step:3d}%  {_mb(min(current, total))} "
                                          f"of {_mb(total)}")
        elif status == "Pushed":
            took = time.monotonic() - self.started.get(layer, time.monotonic())
            self.uploaded.append(layer)
            self.console.progress(f"{layer}  pushed {_mb(self.totals.get(layer, 0))} "
                                  f"in {took:.1f}s")
        elif status == "Layer already exists" or status.startswith("Mounted from"):
            self.existed.append(layer)
        elif status.startswith("Retrying in"):
            seconds = int(re.sub(r"\D", "", status) or 0)
            # one line per countdown (not per tick), shared by the layers that wait together
            if seconds > self.retry_in.get(layer, 0) and seconds not in self.announced:
                self.announced.add(seconds)
                self.console.progress(f"{layer}  upload interrupted; the daemon retries in "
                                      f"{seconds}s")
            self.retry_in[layer] = seconds

    def summary(self) -> None:
        if self.existed:
            self.console.progress(f"{len(self.existed)} layer(s) already in the registry: "
                                  "not uploaded")


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def push_tag(dock: docker.DockerClient, ref: str, tag: str, credentials: Credentials | None, *,
             console: Console, endpoint: Endpoint, auth_tip: str,
             deadline: float) -> PushResult:
    """One `docker push REF:TAG`, streamed. Raises on the stream's error event."""
    t0 = time.monotonic()
    layers = _Layers(console)
    digest = None
    target = f"{ref}:{tag}"
    try:
        stream: Iterable[dict] = dock.api.push(
            ref, tag=tag, stream=True, decode=True,
            auth_config=credentials.auth_config() if credentials else None)
        for ev in stream:
            if time.monotonic() > deadline:
                raise RegistryError(f"{target}: the push did not finish in time",
                                    "raise --push-timeout for large images or slow links")
            if ev.get("error") or ev.get("errorDetail"):
                message = (ev.get("errorDetail") or {}).get("message") or ev.get("error")
                raise classify(str(message), target=target, auth_tip=auth_tip,
                               endpoint=endpoint)
            if "aux" in ev and isinstance(ev["aux"], dict) and ev["aux"].get("Digest"):
                digest = ev["aux"]["Digest"]
            layers.event(ev)
    except requests.RequestException as exc:
        raise TransientPushError(f"{target}: lost the Docker engine's push stream: "
                                 f"{reason(exc)}", unreachable_tip(endpoint)) from None
    except DockerException as exc:
        raise classify(str(exc), target=target, auth_tip=auth_tip, endpoint=endpoint) from None
    if not digest:
        raise RegistryError(f"{target}: the push stream ended without a digest")
    layers.summary()
    return PushResult(tag, digest, layers.uploaded, layers.existed,
                      sum(layers.totals.get(x, 0) for x in layers.uploaded),
                      time.monotonic() - t0)


def push_with_retries(push_once: Callable[[], PushResult], probe: Callable[[], None], *,
                      attempts: int, console: Console, backoff_s: float = 2.0) -> PushResult:
    """Retry only transient failures, with exponential backoff, and only while the registry
    answers: one that is down stays an error (the daemon already retried each layer)."""
    for attempt in range(1, attempts + 1):
        try:
            return push_once()
        except TransientPushError as exc:
            try:
                probe()
            except RegistryUnreachable as down:
                raise RegistryUnreachable(f"{exc.message}; the registry no longer answers, so "
                                          "the push was not retried", down.tip) from None
            if attempt == attempts:
                raise RegistryUnreachable(f"{exc.message} (tried {attempts} times)",
                                          exc.tip) from None
            delay = backoff_s * 2 ** (attempt - 1)
            console.warn(f"{exc.message}; pushing again in {delay:.0f}s "
                         f"(attempt {attempt + 1} of {attempts})")
            time.sleep(delay)
    raise AssertionError("unreachable")


# -- local tags -------------------------------------------------------------------------------

class LocalTags:
    """The registry-qualified tags a push needs, undone if the push fails: nothing is left
    tagged as if pushed."""

    def __init__(self, dock: docker.DockerClient, image_id: str):
        self.dock, self.image_id = dock, image_id
        self.changed: list[tuple[str, str, str | None]] = []  # (repo, tag, previous image id)

    def add(self, repo: str, tag: str) -> None:
        try:
            previous = self.dock.api.inspect_image(f"{repo}:{tag}")["Id"]
        except ImageNotFound:
            previous = None
        if previous == self.image_id:
            return
        self.dock.api.tag(self.image_id, repository=repo, tag=tag, force=True)
        self.changed.append((repo, tag, previous))

    def undo(self) -> None:
        for repo, tag, previous in reversed(self.changed):
            try:
                if previous:
                    self.dock.api.tag(previous, repository=repo, tag=tag, force=True)
                else:
                    self.dock.api.remove_image(f"{repo}:{tag}", noprune=True)
            except DockerException:
                pass
        self.changed.clear()
