"""A local OCI registry for development, CI and tests: Debian's docker-registry
(CNCF distribution) on a loopback port, with an htpasswd that accepts moto's deterministic
ECR credentials (user AWS, password <account>-auth-token). So one registry serves both
`--registry 127.0.0.1:PORT` and, with BYOC_ECR_PROXY_ENDPOINT, a moto-backed "ECR".

    python -m byoc.localregistry start|stop|status   (scripts/local-registry.sh wraps it)

State lives in BYOC_LOCAL_REGISTRY_DIR (default ~/.cache/byoc/registry): config, htpasswd,
blobs, pid file and log."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from .process import spawn

BINARY = os.environ.get("BYOC_DOCKER_REGISTRY", "/usr/bin/docker-registry")
DEFAULT_PORT = 5050
USERNAME = "AWS"


def moto_password(account: str | None = None) -> str:
    """The password inside the ECR token moto's GetAuthorizationToken returns."""
    return f"{account or os.environ.get('MOTO_ACCOUNT_ID') or '123456789012'}-auth-token"


def htpasswd_line(user: str, password: str) -> str:
    import bcrypt  # distribution's htpasswd reads bcrypt hashes only

    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()}"


def write_config(folder: Path, port: int, users: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    htpasswd = folder / "htpasswd"
    htpasswd.write_text("".join(htpasswd_line(u, p) + "\n" for u, p in users.items()))
    htpasswd.chmod(0o600)
    config = folder / "config.yml"
    config.write_text(f"""\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {folder / "data"}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: {secrets.token_hex(16)}
auth:
  htpasswd:
    realm: byoc-local
    path: {htpasswd}
""")
    return config


def answers(port: int, timeout_s: float = 2) -> bool:
    """A registry (of any kind) answers the v2 API on the port."""
    try:
        reply = requests.get(f"http://127.0.0.1:{port}/v2/", timeout=timeout_s)
    except requests.RequestException:
        return False
    return "Docker-Distribution-Api-Version" in reply.headers


def start(folder: Path, port: int, users: dict[str, str], *,
          wait_s: float = 20) -> subprocess.Popen:
    """Start a registry in its own session (it outlives the caller unless stopped)."""
    if not Path(BINARY).exists():
        raise FileNotFoundError(f"{BINARY} is missing: apt-get install docker-registry")
    config = write_config(folder, port, users)
    proc = spawn([BINARY, "serve", str(config)], log_path=str(folder / "registry.log"),
                 error="cannot start the local registry")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}: "
                               f"{(folder / 'registry.log').read_text()[-2000:]}")
        if answers(port, timeout_s=1):
            return proc
        time.sleep(0.1)
    stop_process(proc.pid)
    raise RuntimeError(f"docker-registry did not answer on 127.0.0.1:{port} in {wait_s:.0f}s")


def stop_process(pid: int, timeout_s: float = 10) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- the long-running development registry ---------------------------------------------------

def _folder() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "byoc/registry"
    return Path(os.environ.get("BYOC_LOCAL_REGISTRY_DIR") or default)


def _port() -> int:
    return int(os.environ.get("BYOC_LOCAL_REGISTRY_PORT") or DEFAULT_PORT)


def _our_pid(folder: Path) -> int | None:
    """The pid in the pid file, if that process is still our docker-registry."""
    try:
        pid = int((folder / "registry.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if str(folder / "config.yml").encode() in cmdline else None


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    folder, port = _folder(), _port()
    where = f"127.0.0.1:{port}"
    if command == "start":
        if answers(port):
            print(f"==> a registry already answers on {where}: leaving it as it is")
            return 0
        proc = start(folder, port, {USERNAME: moto_password()})
        (folder / "registry.pid").write_text(f"{proc.pid}\n")
        print(f"==> local registry on {where} (pid {proc.pid}; data and log in {folder}); "
              f"user {USERNAME}, password moto's ECR token password")
        return 0
    if command == "stop":
        pid = _our_pid(folder)
        if pid is None:
            print(f"==> no local registry of ours is running (state in {folder})")
            return 0
        stop_process(pid)
        (folder / "registry.pid").unlink(missing_ok=True)
        print(f"==> stopped the local registry (pid {pid})")
        return 0
    if command == "status":
        up = answers(port)
        print(f"==> {where}: {'answers' if up else 'nothing answers'}")
        return 0 if up else 1
    print("usage: python -m byoc.localregistry start|stop|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
