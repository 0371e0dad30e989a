"""An image's facts from its registry, for a deploy where Docker does not hold the image
(GitHub Actions deploys what another job pushed): the manifest by tag or digest, the config
blob (labels, architecture) and the compressed layer sizes. ECR hosts get a fresh
GetAuthorizationToken; BYOC_ECR_PROXY_ENDPOINT names a registry standing in for ECR's."""

from __future__ import annotations

import dataclasses
import json
import os

from .. import registry
from ..errors import ByocError
from ..registry import ACCEPT, Endpoint, RegistryClient, RegistryError


@dataclasses.dataclass(frozen=True)
class RemoteImage:
    digest: str
    image_id: str
    labels: dict
    architecture: str
    size_bytes: int  # compressed layers and config: a lower bound of the image's size


def _client(host: str, profile: str | None) -> RegistryClient:
    from .image import ECR_HOST

    match = ECR_HOST.match(host)
    if match:
        from .. import ecr

        auth = ecr.Ecr(region=match.group(2), profile=profile).authorization()
        stand_in = os.environ.get("BYOC_ECR_PROXY_ENDPOINT")
        endpoint = Endpoint.parse(stand_in, "BYOC_ECR_PROXY_ENDPOINT")[0] if stand_in \
            else Endpoint(host, "https")
        return RegistryClient(endpoint, auth.credentials,
                              auth_tip="the caller needs ecr:GetAuthorizationToken and "
                                       "ecr:BatchGetImage on the repository")
    endpoint = Endpoint.parse(host)[0]
    return RegistryClient(endpoint, registry.credentials_for(host),
                          auth_tip=f"log in with `docker login {host}`")


def fetch(repository_uri: str, reference: str, profile: str | None) -> RemoteImage:
    host, _, repository = repository_uri.partition("/")
    reg = _client(host, profile)
    scope = f"repository:{repository}:pull"
    try:
        reply = reg.request("GET", f"/v2/{repository}/manifests/{reference}", scope=scope,
                            headers={"Accept": ACCEPT})
        if reply.status_code == 404:
            raise ByocError(f"{repository_uri}:{reference} is not in the registry",
                            "push it first (python build.py push IMAGE), or check the URI")
        if reply.status_code != 200:
            raise RegistryError(f"GET manifest {repository}:{reference} answered "
                                f"{reply.status_code}")
        manifest = json.loads(reply.content)
        digest = reply.headers.get("Docker-Content-Digest") or reference
        config = manifest.get("config") or {}
        if "layers" not in manifest or "digest" not in config:
            raise ByocError(f"{repository_uri}:{reference} is a {manifest.get('mediaType')}, "
                            "not a single-image Docker v2 manifest (C19)",
                            "push with byoc, which builds without attestations")
        blob = reg.request("GET", f"/v2/{repository}/blobs/{config['digest']}", scope=scope)
        if blob.status_code != 200:
            raise RegistryError(f"GET config blob of {repository}:{reference} answered "
                                f"{blob.status_code}")
        doc = json.loads(blob.content)
    finally:
        reg.close()
    size = sum(int(layer.get("size", 0)) for layer in manifest["layers"])
    return RemoteImage(digest, config["digest"], (doc.get("config") or {}).get("Labels") or {},
                       doc.get("architecture", "amd64"), size + int(config.get("size", 0)))
