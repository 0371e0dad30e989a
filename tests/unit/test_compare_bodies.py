"""compare's request bodies: the model's samples, chosen by --body, checked with
samples.mismatch. No Docker."""

from __future__ import annotations

import json

import pytest

from byoc.compare import bodies
from byoc.errors import UsageError
from byoc.model import samples


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a.txt").write_text("hello there")
    (tmp_path / "a.txt.yaml").write_text("expect: {label: 1}\naccept: application/json\n")
    (tmp_path / "b.json").write_text(json.dumps({"text": "more"}))
    (tmp_path / "b.json.yaml").write_text("expect: {label: 2, p: [0.5]}\ntolerance: 0.01\n")
    (tmp_path / "c.json").write_text("{}")  # no expectation: any 200
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "broken.json.yaml").write_text("status: 400\n")
    return tmp_path


def test_mix_sends_every_sample_that_expects_an_answer(folder):
    chosen, left_out = bodies.choose(samples.load(folder), "mix", "x")
    assert [s.name for s in chosen] == ["a.txt", "b.json", "c.json"]
    assert left_out == ["broken.json (expects status 400)"]


def test_one_extension(folder):
    chosen, _ = bodies.choose(samples.load(folder), "json", "x")
    assert [s.name for s in chosen] == ["b.json", "c.json"]
    with pytest.raises(UsageError, match=r"no sample of x ends in \.png \(they end in: json, "
                                         r"txt\)"):
        bodies.choose(samples.load(folder), "png", "x")


def test_payloads_carry_headers_and_the_sample(folder):
    chosen, _ = bodies.choose(samples.load(folder), "mix", "x")
    payload = bodies.payloads(chosen)[0]
    assert payload.content_type == "text/plain" and payload.body == b"hello there"
    assert payload.request_headers() == {"Accept": "application/json",
                                         "Content-Type": "text/plain"}
    assert payload.expected.name == "a.txt"


def test_check_is_samples_mismatch(folder):
    a, b, c = bodies.payloads(bodies.choose(samples.load(folder), "mix", "x")[0])
    assert bodies.check(a, 200, b'{"label": 1}') is None
    assert bodies.check(a, 200, b'{"label": 3}') == "wrong answer (a.txt)"
    assert bodies.check(a, 200, b"not json") == "wrong answer (a.txt)"
    assert bodies.check(b, 200, b'{"label": 2, "p": [0.505]}') is None  # within tolerance
    assert bodies.check(c, 200, b"anything") is None
    assert bodies.check(c, 503, b"") == "status 503"


def test_describe_mix(folder):
    chosen, _ = bodies.choose(samples.load(folder), "mix", "x")
    assert bodies.describe_mix(chosen) == [
        {"content_type": "application/json", "samples": 2, "min_bytes": 2, "max_bytes": 16,
         "total_bytes": 18},
        {"content_type": "text/plain", "samples": 1, "min_bytes": 11, "max_bytes": 11,
         "total_bytes": 11}]


def test_nothing_to_send(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "bad.json.yaml").write_text("status: 415\n")
    with pytest.raises(UsageError, match="expects a 200 answer"):
        bodies.choose(samples.load(tmp_path), "mix", "x")
