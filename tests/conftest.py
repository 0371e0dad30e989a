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
    yield f"http://{host}:{port}"
    server.stop()
