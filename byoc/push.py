"""Push an image to Amazon ECR (default) or any OCI registry (--registry).

    image -> tags (content + moving) -> destination (ECR: STS account, repository ensured
    with the configured settings, fresh token) -> registry ping -> pre-check per tag
    (identical: nothing to do; immutable and different: refuse) -> docker push with
    per-layer progress and retries for what is transient -> manifest check (digest, Docker
    v2 schema 2, C19) -> URI@digest printed and recorded.

`python build.py FLAVOR --push` calls publish() after a passing verify;
`python build.py push IMAGE` pushes an image already built (verifying it first)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from docker.errors import ImageNotFound

from . import builder, config, dockerpush, launcher, registry, sbom, tags
from . import ecr as ecr_api
from .console import Console
from .errors import ByocError
from .registry import (
    DOCKER_V2,
    Credentials,
    Endpoint,
    RegistryClient,
    RegistryError,
    RegistryUnreachable,
    TagImmutable,
    TransientPushError,
)

PROXY_ENV = "BYOC_ECR_PROXY_ENDPOINT"  # a registry standing in for ECR's proxy endpoint
DEFAULT_PUSH_TIMEOUT_S = 3600
PUSH_ATTEMPTS = 3
RECORD_DIR = builder.DEFAULT_WORK_DIR / "pushed"


@dataclasses.dataclass(frozen=True)
class PushOptions:
    """Where and how to push, beyond the image's push: settings (cli/parser.py)."""

    registry: str | None = None  # HOST[:PORT][/NAMESPACE]; None: ECR
    repository: str | None = None  # default: the config's
    region: str | None = None
    profile: str | None = None
    create_repository: bool = True
    content_tag: str | None = None
    moving_tags: tuple[str, ...] | None = None  # None: the config's; (): none at all
    push_timeout_s: float = DEFAULT_PUSH_TIMEOUT_S
    record: Path | None = None


# -- the push ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Destination:
    endpoint: Endpoint  # what docker pushes to
    repository: str  # path inside the registry
    uri_host: str  # host of the printed URI (ECR's own, even through a stand-in)
    credentials: Credentials | None
    tag_is_immutable: Callable[[str], bool]
    auth_tip: str

    @property
    def ref(self) -> str:
        return f"{self.endpoint.host}/{self.repository}"


@dataclasses.dataclass(frozen=True)
class Published:
    uri: str  # HOST/REPOSITORY@sha256:..., for SageMaker's CreateModel
    digest: str
    media_type: str
    registry: str
    repository: str
    tags: tuple[str, ...]
    image_id: str
    uploaded_layers: int
    seconds: float


def _local_image(reference: str):
    try:
        return launcher.client().images.get(reference)
    except ImageNotFound:
        raise ByocError(f"image {reference} not found locally",
                        "build it first: python build.py torchserve --variant cpu") from None


def _settings(spec: config.ImageSpec, options: PushOptions) -> config.PushSettings:
    push = spec.push
    return dataclasses.replace(push, region=options.region or push.region,
                               create_repository=push.create_repository
                               and options.create_repository)


def _moving_override(options: PushOptions) -> list[str] | None:
    return None if options.moving_tags is None else list(options.moving_tags)


def _registry_destination(options: PushOptions, settings: config.PushSettings, repository: str,
                          plan: tags.TagPlan) -> Destination:
    endpoint, namespace = Endpoint.parse(options.registry)
    path = f"{namespace}/{repository}" if namespace else repository
    creds = registry.credentials_for(endpoint.host)
    return Destination(
        endpoint, path, endpoint.host, creds,
        lambda tag: settings.tag_mutability == "IMMUTABLE" and tag == plan.content,
        f"log in with `docker login {endpoint.host}` (byoc reads the docker config and its "
        f"credential helpers), or set {registry.USERNAME_ENV} and {registry.PASSWORD_ENV}")


def _ecr_destination(options: PushOptions, settings: config.PushSettings, repository: str,
                     plan: tags.TagPlan, console: Console) -> Destination:
    api = ecr_api.Ecr(region=settings.region, profile=options.profile)
    account = api.account()
    console.info(f"AWS account {account}, region {api.region}, ECR API {api.endpoint}")
    override = _moving_override(options)
    movable = tuple(override) if override is not None else settings.moving_tags
    want = ecr_api.Settings.from_push(settings, movable)
    repo = api.ensure_repository(repository, want, create=settings.create_repository,
                                 console=console)
    auth = api.authorization()  # fresh, right before the registry is touched
    stand_in = os.environ.get(PROXY_ENV)
    if stand_in:
        endpoint, _ = Endpoint.parse(stand_in, PROXY_ENV)
        console.info(f"registry: {endpoint.host} standing in for {auth.registry} ({PROXY_ENV})")
    else:
        endpoint = Endpoint(auth.registry, "https")
    return Destination(
        endpoint, repository, auth.registry, auth.credentials, repo.tag_is_immutable,
        f"the token from ECR GetAuthorizationToken (account {account}) was refused: the "
        f"credentials must belong to the registry's account and allow {ecr_api.IAM_ACTIONS}")


def _precheck(reg: RegistryClient, dest: Destination, plan: tags.TagPlan, image_id: str,
              console: Console) -> tuple[list[str], dict[str, str]]:
    """Which tags need a push, and the digests of those already holding this image.
    An immutable tag holding another image is refused here, before anything is uploaded."""
    todo: list[str] = []
    same: dict[str, str] = {}
    for tag in plan.all:
        remote = reg.manifest(dest.repository, tag)
        if remote is None:
            todo.append(tag)
        elif remote.config_digest == image_id:
            same[tag] = remote.digest
        elif dest.tag_is_immutable(tag):
            what = "the content tag" if tag == plan.content else "moving tag"
            raise TagImmutable(
                f"{dest.ref}:{tag} already exists with another image ({remote.digest}), and "
                f"{what} {tag} is immutable there: refusing to push",
                dockerpush.IMMUTABLE_TIP if tag == plan.content else
                "let the tag move (ECR: an IMMUTABLE_WITH_EXCLUSION filter for it), or push "
                "without it: --no-moving-tags")
        else:
            console.info(f"{tag} moves from {remote.digest[:19]} to this image")
            todo.append(tag)
    return todo, same


def _verify_pushed(reg: RegistryClient, dest: Destination, tag: str, digest: str | None,
                   image_id: str):
    """C19: the registry holds a Docker v2 schema 2 manifest for the tag, with the digest
    the push reported, describing the local image (its config digest is the image id)."""
    remote = reg.manifest(dest.repository, tag)
    target = f"{dest.ref}:{tag}"
    if remote is None:
        raise RegistryError(f"{target} was pushed, but the registry does not list it")
    if remote.media_type != DOCKER_V2:
        raise registry.ManifestNotDockerV2(
            f"{target} is stored as {remote.media_type or 'an unknown type'}, not a Docker v2 "
            "schema 2 manifest (C19): SageMaker CreateModel rejects it",
            "build without attestations (buildx --provenance=false --sbom=false, as byoc "
            "does), then push again under a new tag")
    if digest and remote.digest != digest:
        raise RegistryError(f"{target}: the registry reports {remote.digest}, the push "
                            f"reported {digest}")
    if remote.config_digest != image_id:
        raise RegistryError(f"{target} holds image {remote.config_digest}, not the local "
                            f"image {image_id}")
    return remote


def _record(path: Path, published: Published) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    data = {**dataclasses.asdict(published),
            "pushed_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()}
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


def publish(image_ref: str, spec: config.ImageSpec, options: PushOptions,
            console: Console) -> Published:
    t0 = time.monotonic()
    image = _local_image(image_ref)
    settings = _settings(spec, options)
    plan = tags.plan(settings, labels=image.labels or {}, image_id=image.id,
                     variant=spec.variant, flavor=spec.flavor,
                     content_override=options.content_tag,
                     moving_override=_moving_override(options))
    repository = options.repository or spec.repository
    where = options.registry or "ECR"
    console.step(f"push {image_ref} -> {where} {repository}")
    for skipped in plan.skipped:
        console.info(f"moving tag {skipped}: skipped")
    if options.registry:
        dest = _registry_destination(options, settings, repository, plan)
    else:
        dest = _ecr_destination(options, settings, repository, plan, console)
    console.info("tags: " + ", ".join(
        f"{t} ({'immutable' if dest.tag_is_immutable(t) else 'moving'})" for t in plan.all))
    reg = RegistryClient(dest.endpoint, dest.credentials, auth_tip=dest.auth_tip)
    try:
        return _push(reg, dest, plan, image, spec, options, console, t0)
    except TransientPushError as exc:  # a transient fault outside the retried push itself
        raise RegistryUnreachable(exc.message, exc.tip) from None
    finally:
        reg.close()


def _push(reg: RegistryClient, dest: Destination, plan: tags.TagPlan, image,
          spec: config.ImageSpec, options: PushOptions, console: Console,
          t0: float) -> Published:
    reg.ping(console=console)
    todo, same = _precheck(reg, dest, plan, image.id, console)
    dock = launcher.client()
    local = dockerpush.LocalTags(dock, image.id)
    digests = dict(same)
    uploaded = existed = 0
    uploaded_bytes = 0
    deadline = time.monotonic() + options.push_timeout_s
    try:
        for tag in todo:
            local.add(dest.ref, tag)
            console.info(f"docker push {dest.ref}:{tag}")

            def once(tag=tag):
                return dockerpush.push_tag(dock, dest.ref, tag, dest.credentials,
                                         console=console, endpoint=dest.endpoint,
                                         auth_tip=dest.auth_tip, deadline=deadline)

            result = dockerpush.push_with_retries(
                once, lambda: reg.ping(attempts=2, backoff_s=1.0), attempts=PUSH_ATTEMPTS,
                console=console)
            digests[tag] = result.digest
            uploaded += len(result.uploaded)
            existed += len(result.existed) if tag == todo[0] else 0
            uploaded_bytes += result.bytes_uploaded
        checked = {tag: _verify_pushed(reg, dest, tag, digests.get(tag), image.id)
                   for tag in plan.all}
        if len({m.digest for m in checked.values()}) != 1:
            raise RegistryError(f"the tags of {dest.ref} point at different manifests: "
                                + ", ".join(f"{t}={m.digest}" for t, m in checked.items()))
    except BaseException:
        local.undo()
        raise
    manifest = checked[plan.content]
    seconds = time.monotonic() - t0
    if todo:
        console.ok(f"pushed {dest.ref}: {', '.join(todo)} in {seconds:.1f}s; "
                   f"{uploaded} layers uploaded ({uploaded_bytes / 1e9:.2f} GB), "
                   f"{existed} already in the registry")
    else:
        console.ok(f"already pushed: {dest.ref} holds this exact image under "
                   f"{', '.join(plan.all)} (config {image.id[:19]}); nothing uploaded "
                   f"({seconds:.1f}s)")
    console.info(f"verified: {manifest.media_type} (Docker v2 schema 2, C19); digest "
                 f"{manifest.digest} {'as pushed' if todo else 'for every tag'}; config "
                 f"{manifest.config_digest[:19]} is the local image")
    published = Published(f"{dest.uri_host}/{dest.repository}@{manifest.digest}",
                          manifest.digest, manifest.media_type, dest.endpoint.host,
                          dest.repository, plan.all, image.id, uploaded, round(seconds, 3))
    name = (options.repository or spec.repository).replace("/", "_")
    record = Path(options.record or RECORD_DIR / f"{name}-{spec.variant}.json")
    _record(record, published)
    console.ok(f"image URI: {published.uri}")
    console.info(f"(for SageMaker CreateModel's PrimaryContainer.Image; recorded in {record})")
    _attach_sbom(reg, dest, manifest, image.id, record, console)
    return published


def _attach_sbom(reg: RegistryClient, dest: Destination, manifest, image_id: str,
                 record: Path, console: Console) -> None:
    """The image's SBOM beside the push record, and pushed with the image as an OCI
    artifact where the registry takes one; a failure here is a warning, never a failed
    push (the image is already there and verified)."""
    try:
        made, vulns = sbom.write_beside(image_id, record)
        console.info(f"SBOM {made.path} ({made.components} components); known "
                     f"vulnerabilities: {vulns.status}: {vulns.detail}")
        body = reg.request("GET", f"/v2/{dest.repository}/manifests/{manifest.digest}",
                           scope=f"repository:{dest.repository}:pull,push",
                           headers={"Accept": manifest.media_type}).content
        attached = sbom.push_sbom(reg, dest.repository, made, manifest.digest,
                                  manifest.media_type, len(body))
        console.info(f"SBOM pushed as {dest.ref}:{sbom.artifact_tag(manifest.digest)}"
                     if attached else "the registry takes no OCI artifacts: the SBOM stays "
                     "beside the push record")
    except sbom.SbomError as exc:
        console.warn(f"SBOM: {exc.message}")
