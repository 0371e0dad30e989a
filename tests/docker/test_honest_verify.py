"""verify reports only what it measured (issue 13, item 8).

One `build.py verify` of the TorchServe image, as a user runs it; then per point:
C08 is measured (a request slower than a short deadline gets 504 JSON in time), not read
from the image's environment; C12, C14 and C26 are measured or "not checked" (C26 on a CPU
image: n/a or a scan for bundled libcuda / libnvidia-*), never a constant PASS; C16 counts
every log line during 20 pings, not only lines that contain "/ping" (the backends never
see a /ping: the front answers it). The CUDA gate says "will not start" for an image
without compatibility libraries on a driver older than its CUDA.

Each assertion was run against the code before the change (a worktree at d73ad8b for the
verify table, at 2bc5d6d for the gate) and fails there; see the report of issue 13."""

from __future__ import annotations

import re
import types

import pytest

from byoc import compat
from byoc.verify import contract
from byoc.verify.report import NOT_CHECKED

ROW = re.compile(r"^(C\d\d)\s+(PASS|FAIL|n/a|not checked)\s+(.*)$")


def table_rows(text: str) -> dict[str, list[tuple[str, str]]]:
    rows: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        match = ROW.match(line.strip())
        if match:
            rows.setdefault(match.group(1), []).append((match.group(2), match.group(3)))
    return rows


@pytest.fixture(scope="module")
def verified(torchserve_image, request):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, str(repo / "build.py"), "verify",
                             torchserve_image], cwd=repo, capture_output=True, text=True,
                            timeout=1200)
    rows = table_rows(result.stdout)
    print(result.stdout[-4000:])
    assert rows, f"no verify table:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return rows


def test_c08_deadline_is_measured_not_read_from_the_image(verified):
    [(result, detail)] = verified["C08"]
    assert result == "PASS" and "504" in detail, (result, detail)


MEASURED = {"C12": ("507",), "C14": ("1024",), "C26": ("libcuda", "libnvidia")}


def measured_or_not_checked(cid: str, result: str, detail: str) -> bool:
    """PASS only with its measurement in the detail; never n/a (these apply to every
    image: before, C12 and C26 were always n/a and C14 a constant PASS)."""
    if result == "PASS":
        return any(word in detail for word in MEASURED[cid])
    return result in (NOT_CHECKED, "FAIL")


@pytest.mark.parametrize("cid", sorted(MEASURED))
def test_c12_c14_c26_are_measured_or_not_checked(verified, cid):
    for result, detail in verified[cid]:
        assert measured_or_not_checked(cid, result, detail), (cid, result, detail)


def test_c16_detail_counts_all_lines(verified):
    [(result, detail)] = verified["C16"]
    assert re.search(r"\d+ log lines during 20 pings", detail), detail


class _FakeHttp:
    def __init__(self, running):
        self.running = running

    def get(self, url, timeout):
        self.running.lines.append("2026-12-01 INFO byoc.front: something every ping")


class _FakeRunning:
    url = "http://127.0.0.1:1"

    def __init__(self):
        self.lines = ["started"]

    def logs(self) -> str:
        return "\n".join(self.lines) + "\n"


def test_c16_fails_on_a_log_line_per_ping_without_ping_in_it(monkeypatch):
    """The backends never see /ping: a line per ping that does not say "/ping" (the front's
    own chatter, a backend's health check) is what C16 forbids at INFO."""
    monkeypatch.setattr(contract.time, "sleep", lambda _s: None)
    running = _FakeRunning()
    recorded = []
    session = types.SimpleNamespace(
        http=_FakeHttp(running),
        check=lambda cid, title, fn: recorded.append((cid, *fn())))
    contract.quiet_ping(session, running)
    [(cid, ok, detail)] = recorded
    assert cid == "C16" and ok is False and "20 log lines" in detail, recorded


def _facts(compat_libs: str | None) -> compat.ImageFacts:
    return compat.facts_from_labels("byoc-torchserve:0.1.0-gpu", {
        "dev.byoc.cuda": "13.0", "dev.byoc.torch": "2.14.1",
        "dev.byoc.instance-types": "ml.g6.xlarge",
        **({compat.COMPAT_LABEL: compat_libs} if compat_libs else {})})


def test_c26_gate_says_will_not_start_without_compat_libraries():
    """CUDA 13.0 on ml.g6 (default driver 535): only the forward-compat libraries would
    start it; an image without them, or that does not say it has them, will not start
    (before: "starts with forward compatibility" when the label was absent)."""
    for libs in (None, "none"):  # not said (images built before the label), or none
        verdict = compat.decide(compat.default_table(), _facts(libs), "ml.g6.xlarge")
        assert verdict.outcome is compat.Outcome.WILL_NOT_START, (libs, verdict.line())
        assert "compat" in verdict.reason
    with_libs = compat.decide(compat.default_table(), _facts("13.0"), "ml.g6.xlarge")
    assert with_libs.outcome is compat.Outcome.FORWARD_COMPAT, with_libs.line()
