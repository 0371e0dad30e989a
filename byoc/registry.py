"""Any OCI registry: where it is (Endpoint), who we are (Credentials: the environment or the
docker config), and the Registry HTTP API byoc needs (ping, manifests), with Basic auth or
the Bearer token dance. The errors a push can end in live here too; byoc/dockerpush.py
raises most of them from the push stream.

The password travels only in memory, in an Authorization header: never to disk, never in
argv."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import time

import docker
import requests
from docker.errors import DockerException

from .console import Console
from .errors import ByocError, VerifyFailed

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join((DOCKER_V2, OCI_MANIFEST, DOCKER_LIST, OCI_INDEX))

USERNAME_ENV, PASSWORD_ENV = "BYOC_REGISTRY_USERNAME", "BYOC_REGISTRY_PASSWORD"


class RegistryError(ByocError):
    """A push failed for a reason that retrying will not fix."""


class RegistryAuthError(RegistryError):
    pass


class RegistryUnreachable(RegistryError):
    pass


class RepositoryMissing(RegistryError):
    pass


class TagImmutable(RegistryError):
    pass


class TransientPushError(RegistryError):
    """Worth another try (network, 5xx, rate limit); push_with_retries decides."""


class ManifestNotDockerV2(VerifyFailed):
    pass


@dataclasses.dataclass(frozen=True)
class Credentials:
    username: str
    password: str = dataclasses.field(repr=False)
    source: str = ""  # where they came from, for messages: never the secret itself

    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


# -- where: host, scheme --------------------------------------------------------------------

def _hostname(host: str) -> str:
    """'127.0.0.1:5050' -> '127.0.0.1'; '[::1]:5050' -> '::1'."""
    if host.startswith("["):
        return host[1:host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """Docker allows plain HTTP to loopback registries (127.0.0.0/8, localhost, ::1)."""
    name = _hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A registry as docker names it (host[:port]) and as HTTP reaches it."""

    host: str
    scheme: str

    @classmethod
    def parse(cls, text: str, where: str = "--registry") -> tuple[Endpoint, str]:
        """'HOST[:PORT][/NAMESPACE]', optionally with http:// or https://.
        Returns the endpoint and the namespace ('' when none)."""
        scheme = None
        match = re.match(r"^(https?)://", text)
        if match:
            scheme, text = match.group(1), text[match.end():]
        host, _, namespace = text.strip("/").partition("/")
        if not re.fullmatch(r"([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9a-fA-F:]+\])"
                            r"(:[0-9]{1,5})?", host or ""):
            raise ByocError(f"{where} {text!r} is not HOST[:PORT][/NAMESPACE]",
                            "for example --registry 127.0.0.1:5050 or ghcr.io/my-org")
        if namespace and not re.fullmatch(r"[a-z0-9]+([._/-][a-z0-9]+)*", namespace):
            raise ByocError(f"{where}: namespace {namespace!r} must be lowercase path parts")
        return cls(host, scheme or ("http" if is_loopback(host) else "https")), namespace

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"


# -- credentials for a non-ECR registry ------------------------------------------------------

def credentials_for(host: str) -> Credentials | None:
    """BYOC_REGISTRY_USERNAME/PASSWORD, else the docker config (auths, credsStore and
    credHelpers, as `docker login` left them), else None (anonymous)."""
    user, password = os.environ.get(USERNAME_ENV), os.environ.get(PASSWORD_ENV)
    if user and password:
        return Credentials(user, password, f"{USERNAME_ENV}/{PASSWORD_ENV}")
    if user or password:
        raise ByocError(f"set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither")
    try:
        found = docker.auth.load_config().resolve_authconfig(host) or {}
    except (DockerException, OSError, ValueError) as exc:
        raise RegistryAuthError(f"cannot read the docker credentials for {host}: {exc}",
                                "fix ~/.docker/config.json or its credential helper") from None
    # plain auths entries come back lower-case, credential helpers' capitalised
    user = found.get("username") or found.get("Username")
    password = found.get("password") or found.get("Password")
    return Credentials(user, password, "docker config") if user and password else None


# -- the Registry HTTP API -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RemoteManifest:
    digest: str
    media_type: str
    config_digest: str | None  # the image id, for single-image manifests


_TRANSIENT_STATUS = {429, 500, 502, 503, 504}


class RegistryClient:
    """Basic auth (ECR, htpasswd registries), or the Bearer token dance when the registry
    challenges for it (Docker Hub, GHCR, Harbor ...)."""

    def __init__(self, endpoint: Endpoint, credentials: Credentials | None, *,
                 auth_tip: str, timeout_s: float = 15):
        self.endpoint = endpoint
        self.credentials = credentials
        self.auth_tip = auth_tip
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.http.trust_env = not is_loopback(endpoint.host)  # no proxy for loopback
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    def _basic(self) -> str | None:
        if not self.credentials:
            return None
        raw = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _bearer(self, challenge: str, scope: str) -> str:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not realm:
            raise RegistryError(f"registry {self.endpoint.host} sent a Bearer challenge "
                                f"without a realm: {challenge}")
        if scope:
            params["scope"] = scope
        headers = {"Authorization": self._basic()} if self.credentials else {}
        reply = self._send("GET", realm, headers, params=params)
        if reply.status_code in (401, 403):
            raise self._auth_failed(reply)
        if reply.status_code != 200:
            raise RegistryError(f"token service {realm} answered {reply.status_code}")
        body = reply.json()
        return body.get("token") or body.get("access_token") or ""

    def _send(self, method: str, url: str, headers: dict, **kwargs) -> requests.Response:
        try:
            return self.http.request(method, url, headers=headers, timeout=self.timeout_s,
                                     allow_redirects=True, **kwargs)
        except requests.RequestException as exc:
            raise TransientPushError(f"registry {self.endpoint.host} unreachable: "
                                     f"{reason(exc)}") from None

    def _auth_failed(self, reply: requests.Response) -> RegistryAuthError:
        who = f"as {self.credentials.username} ({self.credentials.source})" \
            if self.credentials else "without credentials"
        return RegistryAuthError(
            f"registry {self.endpoint.host} refused the login {who}: "
            f"{reply.status_code} {_registry_message(reply)}", self.auth_tip)

    def request(self, method: str, path: str, *, scope: str = "",
                headers: dict | None = None, data: bytes | None = None) -> requests.Response:
        headers = dict(headers or {})
        url = f"{self.endpoint.url}{path}"
        token = self._tokens.get(scope)
        auth = f"Bearer {token}" if token else self._basic()
        reply = self._send(method, url, {**headers, **({"Authorization": auth} if auth else {})},
                           data=data)
        if reply.status_code == 401:
            challenge = reply.headers.get("WWW-Authenticate", "")
            if challenge.lower().startswith("bearer"):  # none yet, or it expired: once more
                self._tokens[scope] = self._bearer(challenge, scope)
                reply = self._send(method, url, {**headers,
                                                 "Authorization": f"Bearer {self._tokens[scope]}"},
                                   data=data)
            if reply.status_code == 401:
                raise self._auth_failed(reply)
        if reply.status_code in _TRANSIENT_STATUS:
            raise TransientPushError(f"registry {self.endpoint.host} answered "
                                     f"{reply.status_code} to {method} {path}")
        return reply

    def ping(self, *, attempts: int = 3, backoff_s: float = 1.0,
             console: Console | None = None) -> None:
        """GET /v2/ with the credentials: reachable, speaks the registry API, accepts us.
        Retries only what is transient; a refused login fails at once."""
        for attempt in range(1, attempts + 1):
            try:
                reply = self.request("GET", "/v2/")
                if reply.status_code == 403:
                    raise self._auth_failed(reply)
                if reply.status_code != 200:
                    raise RegistryError(f"{self.endpoint.url}/v2/ answered {reply.status_code}: "
                                        "not a Docker registry?")
                return
            except TransientPushError as exc:
                if attempt == attempts:
                    raise RegistryUnreachable(
                        f"{exc.message} (tried {attempts} times)", unreachable_tip(self.endpoint)
                    ) from None
                delay = backoff_s * 2 ** (attempt - 1)
                if console:
                    console.info(f"{exc.message}; trying again in {delay:.0f}s")
                time.sleep(delay)

    def manifest(self, repository: str, reference: str) -> RemoteManifest | None:
        """The manifest a tag points at, as stored; None when the tag (or repository) is
        not there."""
        reply = self.request("GET", f"/v2/{repository}/manifests/{reference}",
                             scope=f"repository:{repository}:pull,push",
                             headers={"Accept": ACCEPT})
        if reply.status_code == 404:
            return None
        if reply.status_code != 200:
            raise RegistryError(f"GET manifest {repository}:{reference} answered "
                                f"{reply.status_code}: {_registry_message(reply)}")
        body = reply.content
        digest = reply.headers.get("Docker-Content-Digest") or \
            "sha256:" + hashlib.sha256(body).hexdigest()
        if digest.startswith("sha256:") and digest != "sha256:" + hashlib.sha256(body).hexdigest():
            raise RegistryError(f"the manifest of {repository}:{reference} does not hash to the "
                                f"digest the registry reports ({digest})")
        media_type = reply.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        media_type = media_type or doc.get("mediaType", "")
        config = doc.get("config") if isinstance(doc, dict) else None
        return RemoteManifest(digest, media_type,
                              config.get("digest") if isinstance(config, dict) else None)


def reason(exc: Exception) -> str:
    text = str(exc)
    for needle in ("Connection refused", "Name or service not known", "timed out",
                   "Connection reset", "Temporary failure in name resolution",
                   "CERTIFICATE_VERIFY_FAILED", "Network is unreachable"):
        if needle in text:
            return needle.lower()
    return text[:200]


def _registry_message(reply: requests.Response) -> str:
    try:
        errors = reply.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or reply.reason
    except ValueError:
        return reply.reason or ""


def unreachable_tip(endpoint: Endpoint) -> str:
    if is_loopback(endpoint.host):
        return (f"nothing answers at {endpoint.url}: start the local registry "
                "(`scripts/local-registry.sh start`, or `make setup`)")
    return (f"check that {endpoint.host} resolves and answers on HTTPS from here "
            "(proxy settings, VPN, security groups); the push can be re-run safely")
