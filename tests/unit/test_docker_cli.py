"""byoc.docker_cli: the build command line for buildx and classic clients, client detection
with fake docker executables, and the hints for known daemon messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from byoc import docker_cli
from byoc.docker_cli import DockerCLI
from byoc.errors import ConfigError, DockerError, ExitStatus

CONTEXT = Path("/work/build/torchserve-cpu")
SECRETS = {"pipconf": Path("/tmp/s/pip.conf"), "cacert": Path("/etc/ssl/ca.pem")}


def argv_for(cli: DockerCLI, **changes) -> list[str]:
    kwargs = dict(tags=["byoc-torchserve:0.1.0-cpu", "byoc-torchserve:latest"], target="image",
                  labels={"org.opencontainers.image.revision": "abc", "dev.byoc.x": "1 2"},
                  secrets=SECRETS, progress="plain")
    return cli.build_argv(CONTEXT, **{**kwargs, **changes})


def values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == option]


def fake_docker(tmp_path: Path, version: str, buildx: bool, output: str = "") -> Path:
    """A docker that answers `version --format ...` and `buildx version`, and whose
    build prints `output` and fails."""
    path = tmp_path / "docker"
    path.write_text(f"""#!/bin/sh
if [ "$1" = version ] && [ "$2" = --format ]; then echo '{version}'; exit 0; fi
if [ "$1" = buildx ] && [ "$2" = version ]; then exit {0 if buildx else 1}; fi
echo '{output}'
exit 1
""")
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def fresh_detect():
    docker_cli.detect.cache_clear()
    yield
    docker_cli.detect.cache_clear()


# -- build_argv -----------------------------------------------------------------------------

def test_c19_buildx_build_turns_attestations_off_and_loads():
    argv = argv_for(DockerCLI("/usr/bin/docker", buildx=True))
    assert argv[:3] == ["/usr/bin/docker", "buildx", "build"]
    assert {"--provenance=false", "--sbom=false", "--load"} <= set(argv)
    assert argv[-1] == str(CONTEXT)


def test_buildx_argv_carries_tags_target_labels_and_secrets():
    argv = argv_for(DockerCLI("docker", buildx=True))
    assert values(argv, "--tag") == ["byoc-torchserve:0.1.0-cpu", "byoc-torchserve:latest"]
    assert values(argv, "--target") == ["image"]
    assert values(argv, "--progress") == ["plain"]
    assert values(argv, "--label") == ["dev.byoc.x=1 2", "org.opencontainers.image.revision=abc"]
    assert values(argv, "--secret") == ["id=cacert,src=/etc/ssl/ca.pem",
                                        "id=pipconf,src=/tmp/s/pip.conf"]


def test_secrets_never_travel_as_build_args():
    for cli in (DockerCLI("docker", buildx=True), DockerCLI("docker", buildx=False)):
        argv = argv_for(cli)
        assert "--build-arg" not in argv
        assert not [w for w in argv if "pip.conf" in w and not w.startswith("id=pipconf,src=")]


def test_classic_build_has_no_buildx_flags_and_enables_buildkit(monkeypatch):
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    cli = DockerCLI("/usr/bin/docker", buildx=False)
    argv = argv_for(cli)
    assert argv[:2] == ["/usr/bin/docker", "build"]
    assert not {"buildx", "--provenance=false", "--sbom=false", "--load"} & set(argv)
    assert len(values(argv, "--secret")) == 2
    assert cli.env()["DOCKER_BUILDKIT"] == "1"


def test_buildx_env_does_not_force_buildkit_variable(monkeypatch):
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    assert "DOCKER_BUILDKIT" not in DockerCLI("docker", buildx=True).env()


def test_output_replaces_load():
    argv = argv_for(DockerCLI("docker", buildx=True), output="type=local,dest=/tmp/out")
    assert "--load" not in argv
    assert values(argv, "--output") == ["type=local,dest=/tmp/out"]
    assert argv[-1] == str(CONTEXT)


# -- detect ---------------------------------------------------------------------------------

def test_detect_prefers_buildx(tmp_path, monkeypatch):
    docker = fake_docker(tmp_path, "27.3.1", buildx=True)
    monkeypatch.setenv("BYOC_DOCKER", str(docker))
    assert docker_cli.detect() == DockerCLI(str(docker), buildx=True)


def test_detect_accepts_an_old_classic_client(tmp_path, monkeypatch):
    docker = fake_docker(tmp_path, "20.10.24+dfsg1", buildx=False)
    monkeypatch.setenv("BYOC_DOCKER", str(docker))
    assert docker_cli.detect() == DockerCLI(str(docker), buildx=False)


def test_detect_refuses_a_new_client_without_buildx(tmp_path, monkeypatch):
    docker = fake_docker(tmp_path, "27.3.1", buildx=False)
    monkeypatch.setenv("BYOC_DOCKER", str(docker))
    with pytest.raises(DockerError) as caught:
        docker_cli.detect()
    assert f"{docker} (client 27.3.1 without buildx)" in caught.value.message
    assert "buildx" in caught.value.tip


def test_detect_reports_a_binary_that_does_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_DOCKER", str(tmp_path / "no-docker"))
    with pytest.raises(DockerError, match="no-docker \\(not runnable\\)"):
        docker_cli.detect()


# -- hints ----------------------------------------------------------------------------------

@pytest.mark.parametrize("output, hint", [
    ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
     "Is the docker daemon running?", "start Docker"),
    ("ERROR: BuildKit is enabled but the buildx component is missing or broken.",
     "install docker-buildx"),
    ("ERROR: failed to solve: pull access denied for byoc-base, repository does not exist",
     "cannot be pulled"),
    ("write /var/lib/docker/tmp/x: no space left on device", "docker builder prune"),
    ("SSL: CERTIFICATE_VERIFY_FAILED certificate verify failed", "--ca-cert"),
])
def test_hint_for_known_daemon_messages(output, hint):
    assert hint in docker_cli.hint_for(f"#12 0.3 step 4/9\n{output}\n")


def test_hint_for_unknown_message_is_none():
    assert docker_cli.hint_for("ERROR: failed to solve: process did not complete") is None


def test_failed_build_raises_with_the_output_tail_and_hint(tmp_path):
    docker = fake_docker(tmp_path, "27.3.1", buildx=True, output="no space left on device")
    seen = []
    with pytest.raises(DockerError) as caught:
        DockerCLI(str(docker), buildx=True).build(tmp_path, on_line=seen.append, tags=["t"],
                                                  target="image", labels={}, secrets={},
                                                  progress="plain")
    assert seen == ["no space left on device"]
    assert caught.value.message.startswith("docker build failed (exit 1)")
    assert "    no space left on device" in caught.value.message
    assert "docker builder prune" in caught.value.tip


def test_build_argv_asks_buildkit_for_the_image_id():
    for cli in (DockerCLI("docker", buildx=True), DockerCLI("docker", buildx=False)):
        argv = argv_for(cli, tags=[], iidfile=Path("/tmp/s/image-id"))
        assert values(argv, "--iidfile") == ["/tmp/s/image-id"]
        assert "--tag" not in argv  # built by id, tagged only after the checks


# -- checks inside the build speak as BYOC-ERROR / BYOC-TIP lines ---------------------------

# What BuildKit's plain progress shows when the model stage's artifact check fails: the
# step (with the Dockerfile's echo commands), the script's own output lines, the failure
# and the Dockerfile excerpt, as in images/base.Dockerfile.j2.
ARTIFACT_FAILURE = r'''#15 [model-build 6/6] RUN mkdir -p /artifacts  && ARTIFACTS=/artifacts sh -ec 'python train.py' && for artifact in w.pt; do         test -e "/artifacts/$artifact" || { echo "BYOC-ERROR the build step wrote no artifact $artifact";         echo "BYOC-TIP write it to \$ARTIFACTS/$artifact in build.run"; exit 1; }; done
#15 0.311 training
#15 0.402 BYOC-ERROR the build step wrote no artifact w.pt
#15 0.402 BYOC-TIP write it to $ARTIFACTS/w.pt in build.run
#15 ERROR: process "/bin/sh -c mkdir -p /artifacts  && ... echo \"BYOC-ERROR the build step wrote no artifact $artifact\"; ..." did not complete successfully: exit code: 1
------
 > [model-build 6/6] RUN mkdir -p /artifacts ...:
0.402 BYOC-ERROR the build step wrote no artifact w.pt
0.402 BYOC-TIP write it to $ARTIFACTS/w.pt in build.run
------
  68 | >>>         test -e "/artifacts/$artifact" || { echo "BYOC-ERROR the build step wrote no artifact $artifact"; \
  69 | >>>         echo 'BYOC-TIP write it to \$ARTIFACTS/$artifact in build.run'; exit 1; }; done
ERROR: failed to solve: process "/bin/sh -c mkdir -p /artifacts ..." did not complete successfully: exit code: 1'''  # noqa: E501


def test_in_build_error_reads_the_markers_buildkit_shows():
    assert docker_cli.in_build_error(ARTIFACT_FAILURE.splitlines()) == (
        "the build step wrote no artifact w.pt", "write it to $ARTIFACTS/w.pt in build.run")


def test_in_build_error_ignores_the_dockerfiles_own_echo_lines():
    echoes = [line for line in ARTIFACT_FAILURE.splitlines()
              if '"BYOC-' in line or "'BYOC-" in line]
    assert len(echoes) == 4  # the step, the failed process, two excerpt lines
    assert docker_cli.in_build_error(echoes) is None


def test_in_build_error_needs_an_error_line_and_keeps_the_last():
    assert docker_cli.in_build_error(["#3 0.1 BYOC-TIP a tip alone", "#3 0.2 done"]) is None
    assert docker_cli.in_build_error([]) is None
    lines = ["#9 1.0 BYOC-ERROR first", "#9 1.1 BYOC-ERROR model requirements do not install: "
             "ERROR: No matching distribution found for nope==9"]
    assert docker_cli.in_build_error(lines) == (
        "model requirements do not install: ERROR: No matching distribution found for nope==9",
        None)


def test_a_failed_build_with_a_byoc_check_is_a_config_error_not_a_docker_error(tmp_path):
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\n"
                      "echo '#21 0.52 BYOC-ERROR the handler of m.mar does not import in the "
                      "image: ModuleNotFoundError: No module named x'\n"
                      "echo '#21 0.52 BYOC-TIP declare the package'\n"
                      "echo 'ERROR: failed to solve: exit code: 1'\nexit 1\n")
    docker.chmod(0o755)
    with pytest.raises(ConfigError) as caught:
        DockerCLI(str(docker), buildx=True).build(tmp_path, tags=[], target="image",
                                                  labels={}, secrets={}, progress="plain")
    assert caught.value.message == ("the handler of m.mar does not import in the image: "
                                    "ModuleNotFoundError: No module named x")
    assert caught.value.tip == "declare the package"
    assert caught.value.exit_status == ExitStatus.USAGE


def test_the_rendered_dockerfile_speaks_the_markers_in_docker_cli(tmp_path):
    """The template's echo lines and pip-install-model.sh use the markers docker_cli reads."""
    from byoc import IMAGES_DIR

    script = (IMAGES_DIR / "build" / "pip-install-model.sh").read_text()
    template = (IMAGES_DIR / "base.Dockerfile.j2").read_text()
    for text in (script, template):
        assert 'echo "BYOC-ERROR ' in text and 'echo "BYOC-TIP ' in text
