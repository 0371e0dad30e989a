"""Start one front candidate inside a running byoc container, beside the server that serve
already started, on another port: bench/front_overhead.py measures them side by side.

    PYTHONPATH=RUNTIME:SITE python run_front.py KIND PORT

KIND: aiohttp (the aiohttp front serve ran before issue 15: RUNTIME is then that commit's
images/runtime, which bench/front_overhead.py extracts), aiohttp-uvloop (the same on
uvloop), fast (front_fast.py: uvloop + httptools, from this checkout's runtime). The
adapter is built from this process's environment
as serve builds it (SAGEMAKER_TRITON_DEFAULT_MODEL_NAME picks the model the front sends
to); nothing is started but the front."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys

from byoc_runtime import settings as settings_mod
from byoc_runtime.serve import make_backend


async def aiohttp_front(settings, backend) -> None:
    from aiohttp import web
    from byoc_runtime.front import Front

    runner = web.AppRunner(Front(settings, backend).app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port, reuse_address=True).start()
    await asyncio.Event().wait()


async def fast_front(settings, backend) -> None:
    from byoc_runtime.front_fast import FastFront

    front = FastFront(settings, backend)
    await front.start("127.0.0.1")
    await asyncio.Event().wait()


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    settings = dataclasses.replace(settings_mod.from_env(), port=port)
    backend = make_backend(os.environ["BYOC_FLAVOR"], settings)
    if kind == "aiohttp":
        asyncio.run(aiohttp_front(settings, backend))
        return
    import uvloop

    uvloop.install()
    asyncio.run(aiohttp_front(settings, backend) if kind == "aiohttp-uvloop"
                else fast_front(settings, backend))


if __name__ == "__main__":
    main()
