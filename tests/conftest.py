"""Shared test set-up. Docker-backed tests live in tests/docker and are marked `docker`."""
