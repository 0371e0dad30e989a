"""byoc.push, byoc.tags, byoc.registry without Docker: tag naming, the push stream's error
messages turned into exceptions with tips, what is retried and what is not, progress
lines, credentials, and the Registry API client against small real HTTP servers."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import threading

import pytest

from byoc import cli, config, dockerpush, push, registry, tags
from byoc.cli import options
from byoc.console import Console
from byoc.registry import Credentials, Endpoint

IMAGE_ID = "sha256:5b4808a8cfc24aed89c901560ac8055b463c51d01e4d1919d9a44cfb805e3687"
LABELS = {tags.VERSION_LABEL: "0.1.0", tags.REVISION_LABEL: "2502a1c4fe7f"}
SETTINGS = config.PushSettings(moving_tags=("latest-{variant}", "branch-{branch}"))


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(out), out


# -- tags -------------------------------------------------------------------------------------

def test_content_tag_is_version_variant_and_git_sha():
    plan = tags.plan(SETTINGS, labels=LABELS, image_id=IMAGE_ID, variant="cpu",
                     flavor="torchserve", branch="main")
    assert plan.content == "0.1.0-cpu-2502a1c4fe7f"
    assert plan.moving == ("latest-cpu", "branch-main")
    assert plan.all == ("0.1.0-cpu-2502a1c4fe7f", "latest-cpu", "branch-main")


def test_dirty_tree_is_marked_and_the_image_id_keeps_the_tag_unique():
    labels = {**LABELS, tags.REVISION_LABEL: "2502a1c4fe7f-dirty"}
    plan = tags.plan(SETTINGS, labels=labels, image_id=IMAGE_ID, variant="gpu",
                     flavor="torchserve", branch="main")
    assert plan.content == "0.1.0-gpu-2502a1c4fe7f-dirty-5b4808a8cfc2"


def test_outside_git_the_image_id_names_the_content():
    labels = {**LABELS, tags.REVISION_LABEL: "unknown"}
    plan = tags.plan(SETTINGS, labels=labels, image_id=IMAGE_ID, variant="cpu",
                     flavor="torchserve", branch="main")
    assert plan.content == "0.1.0-cpu-nogit-5b4808a8cfc2"


def test_branch_tags_are_skipped_with_a_reason_on_a_detached_head(monkeypatch):
    monkeypatch.setattr(tags, "current_branch", lambda: None)
    plan = tags.plan(SETTINGS, labels=LABELS, image_id=IMAGE_ID, variant="cpu",
                     flavor="torchserve")
    assert plan.moving == ("latest-cpu",)
    assert "detached HEAD" in plan.skipped[0]


def test_branch_names_become_valid_tags(monkeypatch):
    monkeypatch.setenv("GITHUB_HEAD_REF", "feature/New thing!")
    assert tags.current_branch() == "feature-new-thing"


def test_command_line_tags_replace_the_templates():
    plan = tags.plan(SETTINGS, labels=LABELS, image_id=IMAGE_ID, variant="cpu",
                     flavor="torchserve", content_override="rc1", moving_override=[])
    assert plan.all == ("rc1",)


def test_image_without_byoc_labels_needs_a_content_tag():
    with pytest.raises(push.ByocError, match="has no org.opencontainers.image.version"):
        tags.plan(SETTINGS, labels={}, image_id=IMAGE_ID, variant="cpu", flavor="torchserve")


def test_bad_content_tag_override_is_refused():
    with pytest.raises(push.ByocError, match="--content-tag"):
        tags.plan(SETTINGS, labels=LABELS, image_id=IMAGE_ID, variant="cpu",
                  flavor="torchserve", content_override="a:b")


# -- endpoints --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, host, scheme, namespace", [
    ("127.0.0.1:5050", "127.0.0.1:5050", "http", ""),
    ("localhost:5000/team", "localhost:5000", "http", "team"),
    ("[::1]:5000", "[::1]:5000", "http", ""),
    ("ghcr.io/my-org", "ghcr.io", "https", "my-org"),
    ("http://10.0.0.5:5000", "10.0.0.5:5000", "http", ""),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "123456789012.dkr.ecr.eu-west-1"
     ".amazonaws.com", "https", ""),
])
def test_registry_endpoints_parse(text, host, scheme, namespace):
    endpoint, ns = Endpoint.parse(text)
    assert (endpoint.host, endpoint.scheme, ns) == (host, scheme, namespace)


@pytest.mark.parametrize("text", ["", "a b", "host:port", "ghcr.io/My Org", "-rf"])
def test_bad_registry_is_a_clear_error(text):
    with pytest.raises(push.ByocError, match="HOST\\[:PORT\\]|namespace"):
        Endpoint.parse(text)


# -- the push stream's errors -----------------------------------------------------------------

ENDPOINT = Endpoint("127.0.0.1:5050", "http")


def classify(message: str) -> registry.RegistryError:
    return dockerpush.classify(message, target="r/x:t", auth_tip="log in", endpoint=ENDPOINT)


@pytest.mark.parametrize("message, kind", [
    # real ECR, pushing an existing tag to an IMMUTABLE repository
    ("tag invalid: The image tag '0.1.0-cpu-abc' already exists in the 'byoc-torchserve' "
     "repository and cannot be overwritten because the repository is immutable.",
     registry.TagImmutable),
    ("unauthorized: authentication required", registry.RegistryAuthError),
    ("no basic auth credentials", registry.RegistryAuthError),
    ("denied: Your authorization token has expired. Reauthenticate and try again.",
     registry.RegistryAuthError),
    ("name unknown: The repository with name 'x' does not exist in the registry with id '1'",
     registry.RepositoryMissing),
    ("dial tcp 127.0.0.1:5092: connect: connection refused", registry.TransientPushError),
    ("received unexpected HTTP status: 503 Service Unavailable", registry.TransientPushError),
    ("toomanyrequests: Rate exceeded", registry.TransientPushError),
    ("blob upload invalid", registry.RegistryError),
])
def test_push_stream_errors_become_exceptions_with_a_tip(message, kind):
    error = classify(message)
    assert type(error) is kind
    assert message in error.message
    if kind is not registry.RegistryError:
        assert error.tip


def test_immutable_tag_error_tip_says_what_to_do():
    assert "new commit" in classify("tag invalid: ... cannot be overwritten").tip


def test_unreachable_tip_for_a_loopback_registry_names_the_local_registry():
    assert "local-registry.sh start" in registry.unreachable_tip(ENDPOINT)


class FakeDocker:
    """Stands in for the SDK's low-level push stream: replays recorded events."""

    def __init__(self, *streams):
        self.streams = list(streams)
        self.api = self
        self.pushes = 0

    def push(self, ref, tag, stream, decode, auth_config):
        assert stream and decode and auth_config == {"username": "AWS", "password": "pw"}
        self.pushes += 1
        return iter(self.streams.pop(0))


OK_STREAM = [
    {"status": "The push refers to repository [127.0.0.1:5050/r]"},
    {"status": "Preparing", "progressDetail": {}, "id": "aaa"},
    {"status": "Pushing", "progressDetail": {"current": 10_000_000, "total": 40_000_000},
     "id": "aaa"},
    {"status": "Pushing", "progressDetail": {"current": 20_000_000, "total": 40_000_000},
     "id": "aaa"},
    {"status": "Pushing", "progressDetail": {"current": 21_000_000, "total": 40_000_000},
     "id": "aaa"},
    {"status": "Pushed", "progressDetail": {}, "id": "aaa"},
    {"status": "Layer already exists", "progressDetail": {}, "id": "bbb"},
    {"status": "t: digest: sha256:abc size: 528"},
    {"progressDetail": {}, "aux": {"Tag": "t", "Digest": "sha256:abc", "Size": 528}},
]
CREDS = Credentials("AWS", "pw", "test")


def push_tag(dock, con=None):
    return dockerpush.push_tag(dock, "127.0.0.1:5050/r", "t", CREDS,
                             console=con or console()[0], endpoint=ENDPOINT,
                             auth_tip="log in", deadline=float("inf"))


def test_push_stream_gives_the_digest_and_per_layer_lines():
    con, out = console()
    result = push_tag(FakeDocker(OK_STREAM), con)
    assert (result.digest, result.uploaded, result.existed) == ("sha256:abc", ["aaa"], ["bbb"])
    assert result.bytes_uploaded == 40_000_000
    lines = out.getvalue().splitlines()
    assert [line for line in lines if "%" in line] == [
        "  | aaa   25%  10.0 MB of 40.0 MB", "  | aaa   50%  20.0 MB of 40.0 MB"]
    assert any("aaa  pushed 40.0 MB" in line for line in lines)
    assert lines[-1] == "  | 1 layer(s) already in the registry: not uploaded"


def test_error_event_in_the_stream_raises():
    stream = OK_STREAM[:3] + [{"errorDetail": {"message": "unauthorized: authentication "
                                                          "required"},
                               "error": "unauthorized: authentication required"}]
    with pytest.raises(registry.RegistryAuthError, match="refused the push") as caught:
        push_tag(FakeDocker(stream))
    assert caught.value.tip == "log in"


def test_stream_without_a_digest_is_an_error():
    with pytest.raises(registry.RegistryError, match="without a digest"):
        push_tag(FakeDocker(OK_STREAM[:-1]))


def test_daemon_retries_are_shown_once_per_countdown():
    con, out = console()
    stream = [{"status": f"Retrying in {n} second{'s' * (n > 1)}", "id": layer}
              for n in (5, 4, 3, 2, 1, 10, 9) for layer in ("aaa", "bbb")] + OK_STREAM[-1:]
    push_tag(FakeDocker(stream), con)
    retries = [line for line in out.getvalue().splitlines() if "retries in" in line]
    assert retries == ["  | aaa  upload interrupted; the daemon retries in 5s",
                       "  | aaa  upload interrupted; the daemon retries in 10s"]


# -- retries: only what is transient, only while the registry answers ------------------------

def test_transient_failure_is_retried_with_backoff(monkeypatch):
    monkeypatch.setattr(dockerpush.time, "sleep", lambda s: None)
    dock = FakeDocker([{"error": "received unexpected HTTP status: 503 Service Unavailable"}],
                      OK_STREAM)
    con, out = console()
    result = dockerpush.push_with_retries(lambda: push_tag(dock), lambda: None, attempts=3,
                                        console=con)
    assert result.digest == "sha256:abc" and dock.pushes == 2
    assert "pushing again in 2s (attempt 2 of 3)" in out.getvalue()


@pytest.mark.parametrize("message", ["unauthorized: authentication required",
                                     "tag invalid: cannot be overwritten",
                                     "name unknown: repository"])
def test_permanent_failures_are_never_retried(message):
    dock = FakeDocker([{"error": message}], OK_STREAM)
    with pytest.raises(registry.RegistryError):
        dockerpush.push_with_retries(lambda: push_tag(dock), lambda: None, attempts=3,
                                   console=console()[0])
    assert dock.pushes == 1


def test_registry_that_stays_down_is_not_retried():
    dock = FakeDocker([{"error": "dial tcp 127.0.0.1:5050: connect: connection refused"}],
                      OK_STREAM)

    def probe():
        raise registry.RegistryUnreachable("registry 127.0.0.1:5050 unreachable", "start it")

    with pytest.raises(registry.RegistryUnreachable,
                       match="no longer answers, so the push was not retried") as caught:
        dockerpush.push_with_retries(lambda: push_tag(dock), probe, attempts=3,
                                   console=console()[0])
    assert dock.pushes == 1 and caught.value.tip == "start it"


def test_transient_failures_stop_after_the_last_attempt(monkeypatch):
    monkeypatch.setattr(dockerpush.time, "sleep", lambda s: None)
    dock = FakeDocker(*[[{"error": "toomanyrequests: slow down"}]] * 3)
    with pytest.raises(registry.RegistryUnreachable, match="tried 3 times"):
        dockerpush.push_with_retries(lambda: push_tag(dock), lambda: None, attempts=3,
                                   console=console()[0])
    assert dock.pushes == 3


# -- credentials ------------------------------------------------------------------------------

def test_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv(registry.USERNAME_ENV, "u")
    monkeypatch.setenv(registry.PASSWORD_ENV, "p")
    creds = registry.credentials_for("127.0.0.1:5050")
    assert (creds.username, creds.password) == ("u", "p")
    assert "p" not in repr(creds)


def test_half_the_credentials_is_an_error(monkeypatch):
    monkeypatch.setenv(registry.USERNAME_ENV, "u")
    monkeypatch.delenv(registry.PASSWORD_ENV, raising=False)
    with pytest.raises(push.ByocError, match="set both"):
        registry.credentials_for("127.0.0.1:5050")


def test_credentials_from_the_docker_config(monkeypatch, tmp_path):
    for var in (registry.USERNAME_ENV, registry.PASSWORD_ENV):
        monkeypatch.delenv(var, raising=False)
    auth = base64.b64encode(b"alice:s3cret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"reg.example:5000":
                                                                {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    creds = registry.credentials_for("reg.example:5000")
    assert (creds.username, creds.password, creds.source) == ("alice", "s3cret",
                                                              "docker config")
    assert registry.credentials_for("other.example") is None


# -- the Registry API client against small real servers --------------------------------------

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": registry.DOCKER_V2,
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                  "digest": IMAGE_ID, "size": 1}, "layers": []}).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
INDEX = json.dumps({"schemaVersion": 2, "mediaType": registry.OCI_INDEX, "manifests": [
    {"mediaType": registry.OCI_MANIFEST, "digest": DIGEST, "size": len(MANIFEST)}]}).encode()


class TokenRegistry(http.server.BaseHTTPRequestHandler):
    """A registry that wants Bearer tokens from its token service (like Docker Hub, GHCR)."""

    seen: list = []

    def log_message(self, *args):
        pass

    def _reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        TokenRegistry.seen.append((self.path, auth))
        port = self.server.server_address[1]
        if self.path.startswith("/token"):
            good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
            if auth != good:
                return self._reply(401)
            return self._reply(200, json.dumps({"token": "tok"}).encode())
        if auth != "Bearer tok":
            challenge = (f'Bearer realm="http://127.0.0.1:{port}/token",service="reg",'
                         f'scope="repository:r:pull"')
            return self._reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}',
                               [("WWW-Authenticate", challenge)])
        if self.path == "/v2/":
            return self._reply(200, b"{}")
        if self.path in ("/v2/r/manifests/t", "/v2/r/manifests/latest-cpu"):
            return self._reply(200, MANIFEST, [("Content-Type", registry.DOCKER_V2),
                                               ("Docker-Content-Digest", DIGEST)])
        if self.path == "/v2/r/manifests/idx":  # what BuildKit pushes with attestations on
            return self._reply(200, INDEX, [("Content-Type", registry.OCI_INDEX)])
        return self._reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')


@pytest.fixture
def token_registry():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    TokenRegistry.seen = []
    yield Endpoint(f"127.0.0.1:{server.server_address[1]}", "http")
    server.shutdown()
    server.server_close()


def test_bearer_token_dance_reads_manifests(token_registry):
    client = registry.RegistryClient(token_registry, Credentials("alice", "s3cret"),
                                     auth_tip="log in")
    client.ping()
    remote = client.manifest("r", "t")
    assert remote == registry.RemoteManifest(DIGEST, registry.DOCKER_V2, IMAGE_ID)
    assert client.manifest("r", "missing") is None
    scopes = [path for path, _ in TokenRegistry.seen if path.startswith("/token")]
    assert any("scope=repository%3Ar%3Apull%2Cpush" in s for s in scopes)


def test_wrong_password_is_an_auth_error_at_once(token_registry):
    client = registry.RegistryClient(token_registry, Credentials("alice", "nope", "env"),
                                     auth_tip="log in")
    with pytest.raises(registry.RegistryAuthError, match="refused the login as alice") as caught:
        client.ping()
    assert caught.value.tip == "log in"
    assert len([p for p, _ in TokenRegistry.seen if p == "/v2/"]) == 1  # not retried


def test_nothing_listening_is_unreachable_after_bounded_retries(monkeypatch):
    monkeypatch.setattr(registry.time, "sleep", lambda s: None)
    with __import__("socket").socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = registry.RegistryClient(Endpoint(f"127.0.0.1:{port}", "http"), None,
                                     auth_tip="log in")
    with pytest.raises(registry.RegistryUnreachable, match="tried 3 times") as caught:
        client.ping()
    assert "local-registry.sh start" in caught.value.tip


# -- before and after the push: pre-check and the C19 manifest check --------------------------

def destination(endpoint: Endpoint, content: str) -> push.Destination:
    return push.Destination(endpoint, "r", "ecr.example", None, lambda t: t == content, "tip")


@pytest.fixture
def client(token_registry):
    return registry.RegistryClient(token_registry, Credentials("alice", "s3cret"),
                                   auth_tip="log in")


def test_precheck_skips_tags_that_hold_this_image_and_pushes_the_rest(client, token_registry):
    plan = tags.TagPlan("t", ("latest-cpu", "new"))
    todo, same = push._precheck(client, destination(token_registry, "t"), plan, IMAGE_ID,
                                console()[0])
    assert todo == ["new"] and same == {"t": DIGEST, "latest-cpu": DIGEST}


def test_precheck_refuses_an_immutable_tag_holding_another_image(client, token_registry):
    plan = tags.TagPlan("t", ())
    with pytest.raises(registry.TagImmutable, match="already exists with another image") as e:
        push._precheck(client, destination(token_registry, "t"), plan, "sha256:other",
                       console()[0])
    assert e.value.exit_status == 1 and "new commit" in e.value.tip


def test_precheck_moves_a_moving_tag(client, token_registry):
    con, out = console()
    plan = tags.TagPlan("content", ("latest-cpu",))
    todo, _ = push._precheck(client, destination(token_registry, "content"), plan,
                             "sha256:other", con)
    assert todo == ["content", "latest-cpu"] and "latest-cpu moves from" in out.getvalue()


def test_c19_oci_index_after_the_push_fails_the_contract(client, token_registry):
    with pytest.raises(registry.ManifestNotDockerV2, match="not a Docker v2 schema 2") as e:
        push._verify_pushed(client, destination(token_registry, "idx"), "idx", None, IMAGE_ID)
    assert e.value.exit_status == 3 and "--provenance=false" in e.value.tip


def test_c19_docker_v2_manifest_with_the_pushed_digest_passes(client, token_registry):
    remote = push._verify_pushed(client, destination(token_registry, "t"), "t", DIGEST,
                                 IMAGE_ID)
    assert remote.media_type == registry.DOCKER_V2


@pytest.mark.parametrize("digest, image_id, needle", [
    ("sha256:" + "0" * 64, IMAGE_ID, "the push reported"),
    (DIGEST, "sha256:other", "not the local image"),
])
def test_manifest_check_catches_a_different_image(client, token_registry, digest, image_id,
                                                  needle):
    with pytest.raises(registry.RegistryError, match=needle):
        push._verify_pushed(client, destination(token_registry, "t"), "t", digest, image_id)


# -- command line -----------------------------------------------------------------------------

def test_push_command_parses_with_its_options():
    args = cli.parse(["push", "byoc-torchserve:0.1.0-cpu", "--registry", "127.0.0.1:5050",
                      "--moving-tag", "a", "--moving-tag", "b", "--no-create-repository",
                      "--skip-verify"])
    assert (args.command, args.image, args.registry) == ("push", "byoc-torchserve:0.1.0-cpu",
                                                         "127.0.0.1:5050")
    assert args.moving_tag == ["a", "b"] and args.no_create_repository and args.skip_verify


def test_build_command_takes_the_push_options():
    args = cli.parse(["torchserve", "--variant", "cpu", "--push", "--registry", "h:1",
                      "--region", "eu-west-1", "--content-tag", "x"])
    assert args.push and args.registry == "h:1" and args.region == "eu-west-1"


def test_settings_take_command_line_overrides():
    spec = config.load()["torchserve-cpu"]
    args = cli.parse(["torchserve", "--region", "eu-west-3", "--no-create-repository"])
    settings = push._settings(spec, options.push_options(args))
    assert settings.region == "eu-west-3" and settings.create_repository is False
