"""compare's options: the CLI's parse, the bounds compare refuses, the command the report
writes to repeat a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from byoc import cli
from byoc.cli import options as cli_options
from byoc.compare import options
from byoc.errors import UsageError


def parsed(*argv: str) -> options.CompareOptions:
    return cli_options.compare_options(cli.parse(["compare", *argv]))


def test_defaults():
    o = parsed()
    assert (o.servers, o.body, o.concurrency, o.duration_s) == ("auto", "mix", (1, 8, 32), 10)
    assert (o.max_requests, o.warmup, o.no_build, o.images) == (20000, 100, False, ())
    assert options.command_line(o) == (
        "python build.py compare --servers auto --concurrency 1,8,32 --duration 10 "
        "--max-requests 20000 --warmup 100 --body mix")


def test_the_command_repeats_the_run():
    o = parsed("--mar", "m.mar", "--samples", "s", "--servers", "torchserve,triton-mar",
               "--concurrency", "8,1", "--body", "json", "--config", "tuned.yaml",
               "--no-build", "--triton-mar-image", "x:1")
    assert o.image_for("triton-mar") == "x:1" and o.image_for("triton") is None
    assert options.command_line(o) == (
        "python build.py compare --mar m.mar --samples s --servers torchserve,triton-mar "
        "--concurrency 1,8 --duration 10 --max-requests 20000 --warmup 100 --body json "
        "--config tuned.yaml --no-build --triton-mar-image x:1")


@pytest.mark.parametrize("argv", [("--duration", "0"), ("--max-requests", "0"),
                                  ("--warmup", "-1"), ("--timeout", "0")])
def test_unbounded_or_empty_steps_are_refused(argv):
    with pytest.raises(UsageError):
        options.check(parsed(*argv))


def test_bad_concurrency_is_a_usage_error():
    with pytest.raises(UsageError):
        cli.parse(["compare", "--concurrency", "0,8"])
    assert parsed("--concurrency", "32,1,8,8").concurrency == (1, 8, 32)
    assert parsed().config == Path(cli.parse(["compare"]).config)
