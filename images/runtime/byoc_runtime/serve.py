"""`serve`: what SageMaker runs (`docker run IMAGE serve`).

Starts the model server in its own process group, runs the front (front_fast: uvloop and
httptools) on the public port, and ties their lives together: when the server dies the
container exits non-zero so SageMaker replaces it (C06); on SIGTERM both stop within the
30 s SageMaker allows and the container exits 0 (C02)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import uvloop

from . import settings as settings_mod
from .cuda_compat import apply_forward_compat
from .front_fast import FastFront
from .placement import write_state

log = logging.getLogger("byoc.serve")

STOP_GRACE_S = 20  # backend's share of SageMaker's 30 s between SIGTERM and SIGKILL
FRONT_DRAIN_S = 5


def make_backend(flavor: str, settings):
    """The adapter named after the flavor (byoc_runtime/adapters/NAME.py)."""
    import importlib

    try:
        adapter = importlib.import_module(f"byoc_runtime.adapters.{flavor}")
    except ModuleNotFoundError:
        raise SystemExit(f"serve: BYOC_FLAVOR={flavor!r} names no adapter in "
                         "byoc_runtime/adapters") from None
    return adapter.Backend(settings)


def _stop_process_group(proc: subprocess.Popen, grace_s: float) -> int:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("server ignored SIGTERM for %.0f s; killing it", grace_s)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


async def supervise(flavor: str) -> int:
    started = time.monotonic()
    settings = settings_mod.from_env()
    backend = make_backend(flavor, settings)
    argv = backend.command()
    write_state(flavor, backend.state())  # for `python -m byoc_runtime.placement` (C27)
    # CUDA forward-compatibility libraries go on the library path only when the host
    # driver is older than the image's CUDA needs (C26); serve itself never loads CUDA.
    env, compat_line = apply_forward_compat(os.environ, os.environ.get("BYOC_CUDA", "none"))
    log.info("cuda compat: %s", compat_line)
    env = {**env, **backend.env()}
    shown = " ".join(argv)
    for secret in getattr(backend, "secrets", ()):  # never in the logs (CloudWatch)
        shown = shown.replace(secret, "***")
    log.info("starting %s: %s", backend.name, shown)
    if getattr(backend, "native", False):
        # The server owns the public port itself (Triton's own SageMaker endpoint):
        # nothing to supervise, so it replaces this process and gets signals from tini.
        os.execvpe(argv[0], argv, env)
    proc = subprocess.Popen(argv, env=env, start_new_session=True)

    front = FastFront(settings, backend)
    await front.start("0.0.0.0", settings.port)
    log.info("front listening on 0.0.0.0:%d (%.2f s after start)", settings.port,
             time.monotonic() - started)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    server_exit = loop.run_in_executor(None, proc.wait)
    stop_wait = asyncio.ensure_future(stop.wait())
    fatal_wait = asyncio.ensure_future(front.fatal.wait())
    done, _ = await asyncio.wait({server_exit, stop_wait, fatal_wait},
                                 return_when=asyncio.FIRST_COMPLETED)

    if fatal_wait in done and server_exit not in done:
        log.error("%s: %s; stopping the container so SageMaker replaces it", backend.name,
                  front.fatal_reason)
        await front.stop(0)
        await loop.run_in_executor(None, _stop_process_group, proc, STOP_GRACE_S)
        return 1

    if server_exit in done:
        front.backend_alive = False
        code = proc.returncode
        log.error("%s exited with code %s; stopping the container so SageMaker replaces it",
                  backend.name, code)
        await front.stop(0)
        return code if code else 1

    log.info("SIGTERM: draining requests and stopping %s", backend.name)
    signalled = time.monotonic()
    await front.stop(FRONT_DRAIN_S)  # stops accepting, lets in-flight requests finish
    code = await loop.run_in_executor(None, _stop_process_group, proc, STOP_GRACE_S)
    log.info("%s stopped (code %s) %.1f s after SIGTERM", backend.name, code,
             time.monotonic() - signalled)
    return 0


def main() -> int:
    flavor = os.environ.get("BYOC_FLAVOR", "")
    try:
        level = settings_mod.from_env().log_level
    except settings_mod.SettingsError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # no per-/ping lines (C16)
    try:
        return uvloop.run(supervise(flavor))
    except settings_mod.SettingsError as exc:
        log.error("%s", exc)
        return 2
    except RuntimeError as exc:  # model layout problems and the like: say what and exit 1
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
