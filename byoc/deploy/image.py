"""Which image deploy puts behind the endpoint, by digest, and what byoc knows about it.

The user names a registry URI (by tag or digest), a local image that `push` recorded, or
the push record itself (build/pushed/NAME.json, as the images workflow uploads it). The
facts come from the local image when Docker has it (uncompressed size, labels), else from
the registry (manifest and config blob: labels, architecture, compressed size). The
measured cold start comes from verify's report for the same image id (build/verified/)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from .. import REPO_ROOT, compat
from ..console import Console
from ..errors import ByocError, UsageError

PUSHED_DIR = REPO_ROOT / "build" / "pushed"
VERIFIED_DIR = REPO_ROOT / "build" / "verified"
ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class DeployImage:
    reference: str  # as the user named it
    uri: str  # HOST/REPOSITORY@sha256:..., what CreateModel gets
    labels: dict
    architecture: str
    size_bytes: int
    size_compressed: bool  # True: the registry's layer sizes, a lower bound
    image_id: str | None = None  # the config digest: the local image id
    local: str | None = None  # a local reference samples can be read from
    ready_s: float | None = None  # verify's measured cold start (C05, C32)
    verified: Path | None = None  # the report it came from
    verify_passed: bool | None = None

    @property
    def host(self) -> str:
        return self.uri.split("/", 1)[0]

    @property
    def digest(self) -> str:
        return self.uri.rsplit("@", 1)[1]

    @property
    def flavor(self) -> str:
        return self.labels.get("dev.byoc.flavor", "unknown")

    @property
    def bakes_model(self) -> bool:
        """The build says where the model comes from: "NAME (baked)" or "(from /opt/ml/model)"."""
        return self.labels.get("dev.byoc.model", "").endswith("(baked)")

    @property
    def facts(self) -> compat.ImageFacts:
        return compat.facts_from_labels(self.uri, self.labels, self.architecture)

    def ecr_region(self) -> str | None:
        match = ECR_HOST.match(self.host)
        return match.group(2) if match else None


@dataclasses.dataclass(frozen=True)
class Named:
    """What the user's IMAGE argument names, before any lookup."""

    repository_uri: str | None  # HOST/REPOSITORY
    reference: str | None  # tag or digest in that repository
    image_id: str | None  # a local image id, from a push record
    local: str | None  # a local reference


def split_uri(uri: str) -> tuple[str, str]:
    """HOST/REPO:TAG or HOST/REPO@DIGEST -> (HOST/REPO, TAG or DIGEST)."""
    if "@" in uri:
        repo, digest = uri.split("@", 1)
        return repo, digest
    head, _, last = uri.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return f"{head}/{name}", tag
    return uri, "latest"


def _is_registry_uri(text: str) -> bool:
    first = text.split("/", 1)[0]
    return "/" in text and ("." in first or ":" in first or first == "localhost")


def read_record(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable push record: {exc}",
                         "pass the JSON that `build.py push --record` wrote") from None
    if not isinstance(data, dict) or "uri" not in data:
        raise UsageError(f"{path}: a push record has a \"uri\" field; this one has none",
                         "pass the JSON that `build.py push --record` wrote")
    return data


def pushed_record_for(image_id: str, pushed_dir: Path = PUSHED_DIR) -> dict | None:
    """The newest push record of a local image."""
    found = []
    for path in pushed_dir.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("image_id") == image_id:
            found.append((data.get("pushed_at", ""), data))
    return max(found, key=lambda pair: pair[0])[1] if found else None


def name(reference: str, pushed_dir: Path = PUSHED_DIR) -> Named:
    if reference.endswith(".json") and Path(reference).is_file():
        record = read_record(Path(reference))
        repo, ref = split_uri(record["uri"])
        return Named(repo, ref, record.get("image_id"), None)
    if _is_registry_uri(reference):
        repo, ref = split_uri(reference)
        return Named(repo, ref, None, None)
    local = _local_attrs(reference)
    if local is None:
        raise UsageError(f"{reference} is neither a registry URI nor a local image",
                         "pass the URI `build.py push` printed (HOST/REPO@sha256:...), or "
                         "its record build/pushed/NAME.json")
    record = pushed_record_for(local["Id"], pushed_dir)
    if record is None:
        raise UsageError(f"{reference} is a local image that byoc has not pushed "
                         f"(no record in {pushed_dir} for {local['Id'][:19]})",
                         f"push it first: python build.py push {reference}")
    repo, ref = split_uri(record["uri"])
    return Named(repo, ref, local["Id"], reference)


# -- where facts come from ---------------------------------------------------------------------

def _local_attrs(reference: str) -> dict | None:
    """docker inspect of a local image, or None (no such image, or no Docker at all)."""
    try:
        from docker.errors import DockerException, ImageNotFound

        from .. import launcher

        return launcher.client().images.get(reference).attrs
    except ImageNotFound:
        return None
    except (ByocError, DockerException):
        return None


def _from_local(named: Named, attrs: dict) -> tuple[str, dict, str, int, str]:
    """(uri by digest, labels, architecture, uncompressed size, image id)."""
    repo = named.repository_uri
    digest = named.reference if _DIGEST.match(named.reference or "") else None
    if digest is None:
        for repo_digest in attrs.get("RepoDigests") or []:
            found_repo, found = repo_digest.split("@", 1)
            if found_repo.split("/", 1)[-1] == repo.split("/", 1)[-1]:
                digest = found
                break
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return (f"{repo}@{digest}" if digest else "", labels,
            attrs.get("Architecture", "amd64"), int(attrs.get("Size") or 0), attrs["Id"])


def _verify_report(image_id: str | None, verified_dir: Path) -> tuple[Path | None, dict]:
    if not image_id:
        return None, {}
    path = verified_dir / f"{image_id.replace('sha256:', '')}.json"
    try:
        return path, json.loads(path.read_text())
    except (OSError, ValueError):
        return None, {}


def resolve(reference: str, console: Console, *, profile: str | None = None,
            pushed_dir: Path = PUSHED_DIR, verified_dir: Path = VERIFIED_DIR,
            remote=None) -> DeployImage:
    """remote(repository_uri, reference, profile) -> RemoteImage, for images Docker lacks."""
    named = name(reference, pushed_dir)
    by_ref = (f"{named.repository_uri}@{named.reference}" if _DIGEST.match(named.reference or "")
              else f"{named.repository_uri}:{named.reference}")
    attrs = _local_attrs(named.local or named.image_id or by_ref)
    uri = ""
    if attrs is not None:
        uri, labels, arch, size, image_id = _from_local(named, attrs)
        compressed, local = False, named.local or attrs["Id"]
    if not uri:  # not local, or local without the digest: ask the registry
        from .registry_facts import fetch

        found = (remote or fetch)(named.repository_uri, named.reference, profile)
        if attrs is None:
            labels, arch, size, image_id = (found.labels, found.architecture,
                                            found.size_bytes, found.image_id)
            compressed, local = True, None
        uri = f"{named.repository_uri}@{found.digest}"
    if named.image_id and image_id and named.image_id != image_id:
        raise UsageError(f"{reference}: the push record names image {named.image_id[:19]}, "
                         f"the registry holds {image_id[:19]}",
                         "push again, or deploy the URI by digest")
    if "dev.byoc.flavor" not in labels:
        raise UsageError(f"{uri} is not a byoc image (no dev.byoc.flavor label)",
                         "deploy images built by `python build.py torchserve|triton`")
    path, report = _verify_report(image_id, verified_dir)
    image = DeployImage(reference, uri, dict(labels), arch, size, compressed, image_id, local,
                        report.get("ready_s"), path, report.get("passed"))
    what = "uncompressed" if not compressed else "compressed, from the registry"
    console.info(f"image {image.uri}")
    console.info(f"  {labels.get('dev.byoc.flavor')} {labels.get('dev.byoc.variant', '')}, "
                 f"{image.facts.describe()}, {size / 1e9:.2f} GB ({what}); model "
                 f"{labels.get('dev.byoc.model', 'unknown')}")
    return image
