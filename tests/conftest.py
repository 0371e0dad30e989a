"""Shared test set-up. Docker-backed tests live in tests/docker and are marked `docker`."""

import logging

import pytest


@pytest.fixture(scope="module")
def moto_url():
    """moto's ECR API on a free loopback port, for the unit and Docker-backed push tests."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    reset_moto(url)
    yield url
    reset_moto(url)
    server.stop()


def reset_moto(url: str) -> None:
    """moto keeps its AWS state per process, not per server: without a reset, one test
    module's repositories and endpoints are another's starting point."""
    import requests

    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
