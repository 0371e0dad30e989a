"""What reaches a build without becoming a layer: the CA bundle and pip index
settings (BuildKit secrets) and a local wheelhouse (bind mount from the context)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .errors import UsageError
from .process import probe

CA_CANDIDATES = ("BYOC_CA_CERT", "PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclasses.dataclass(frozen=True)
class BuildInputs:
    ca_cert: Path | None
    pip_conf: str  # pip.conf text with index settings only (may be empty)
    wheelhouse: Path | None

    def secrets(self, scratch: Path) -> dict[str, Path]:
        """Secret files for `docker build --secret`; pipconf written 0600 to scratch."""
        found: dict[str, Path] = {}
        if self.ca_cert:
            found["cacert"] = self.ca_cert
        if self.pip_conf:
            path = scratch / "pip.conf"
            path.write_text(self.pip_conf)
            path.chmod(0o600)
            found["pipconf"] = path
        return found


def _pip_config(key: str) -> str:
    out = probe(["python3", "-m", "pip", "config", "get", key])
    return out.stdout.strip() if out is not None and out.returncode == 0 else ""


def find_ca_cert(explicit: str | None, env=os.environ) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"--ca-cert {explicit}: no such file",
                             "give the path of a PEM CA bundle")
        return path
    for name in CA_CANDIDATES:
        value = env.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return SYSTEM_CA if SYSTEM_CA.is_file() else None


def pip_index_conf(env=os.environ) -> str:
    """Only index settings travel: http(s) URLs, never local paths the build cannot see."""
    index = env.get("BYOC_PIP_INDEX_URL") or env.get("PIP_INDEX_URL") or \
        _pip_config("global.index-url")
    extra = env.get("BYOC_PIP_EXTRA_INDEX_URL") or env.get("PIP_EXTRA_INDEX_URL") or \
        _pip_config("global.extra-index-url")
    trusted = env.get("PIP_TRUSTED_HOST") or _pip_config("global.trusted-host")
    lines = []
    if index.startswith(("http://", "https://")):
        lines.append(f"index-url = {index}")
    extras = [u for u in extra.split() if u.startswith(("http://", "https://"))]
    if extras:
        lines.append("extra-index-url = " + " ".join(extras))
    if trusted:
        lines.append(f"trusted-host = {trusted}")
    return "[global]\n" + "\n".join(lines) + "\n" if lines else ""


def find_wheelhouse(explicit: str | None, env=os.environ) -> Path | None:
    """--wheelhouse, else BYOC_WHEELHOUSE, else a local find-links folder from pip's config."""
    chosen = explicit or env.get("BYOC_WHEELHOUSE")
    if chosen:
        path = Path(chosen)
        if not path.is_dir():
            raise UsageError(f"wheelhouse {chosen} is not a folder",
                             "give a folder of .whl files, or leave the option out")
        return path
    for entry in (env.get("PIP_FIND_LINKS") or _pip_config("global.find-links")).split():
        path = Path(entry.removeprefix("file://"))
        if path.is_dir() and any(path.glob("*.whl")):
            return path
    return None


def collect(ca_cert: str | None = None, wheelhouse: str | None = None) -> BuildInputs:
    return BuildInputs(find_ca_cert(ca_cert), pip_index_conf(), find_wheelhouse(wheelhouse))
