"""Which image deploy deploys, by digest, and where its facts come from: a push record, a
registry URI, the registry's manifest and config (for a runner without the local image),
verify's report for the cold start."""

from __future__ import annotations

import io
import json

import pytest

from byoc.console import Console
from byoc.deploy import image as images
from byoc.deploy.registry_facts import RemoteImage
from byoc.errors import UsageError

HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
DIGEST = "sha256:" + "12" * 32
IMAGE_ID = "sha256:" + "9f" * 32
LABELS = {"dev.byoc.flavor": "triton", "dev.byoc.variant": "cpu", "dev.byoc.cuda": "none",
          "dev.byoc.model": "digits (baked)"}


def remote(labels=LABELS, image_id=IMAGE_ID):
    calls = []

    def fetch(repository, reference, profile):
        calls.append((repository, reference))
        return RemoteImage(DIGEST, image_id, dict(labels), "amd64", 456_000_000)
    fetch.calls = calls
    return fetch


def test_a_registry_uri_by_tag_is_resolved_to_its_digest_by_the_registry(tmp_path):
    fetch = remote()
    found = images.resolve(f"{HOST}/byoc-triton:0.1.0-cpu", Console(io.StringIO()),
                           remote=fetch, pushed_dir=tmp_path, verified_dir=tmp_path)
    assert fetch.calls == [(f"{HOST}/byoc-triton", "0.1.0-cpu")]
    assert found.uri == f"{HOST}/byoc-triton@{DIGEST}" and found.digest == DIGEST
    assert found.size_compressed and found.size_bytes == 456_000_000
    assert found.ecr_region() == "eu-west-1" and found.flavor == "triton"
    assert found.ready_s is None  # never verified here


def test_a_push_record_names_the_uri_and_the_image_id_and_finds_the_verify_report(tmp_path):
    record = tmp_path / "triton-cpu.json"
    record.write_text(json.dumps({"uri": f"{HOST}/byoc-triton@{DIGEST}", "digest": DIGEST,
                                  "image_id": IMAGE_ID}))
    (tmp_path / f"{IMAGE_ID[7:]}.json").write_text(json.dumps({"ready_s": 8.7,
                                                               "passed": True}))
    found = images.resolve(str(record), Console(io.StringIO()), remote=remote(),
                           pushed_dir=tmp_path, verified_dir=tmp_path)
    assert found.uri == f"{HOST}/byoc-triton@{DIGEST}"
    assert found.ready_s == 8.7 and found.verify_passed is True
    assert found.image_id == IMAGE_ID


def test_a_registry_holding_another_image_than_the_record_is_refused(tmp_path):
    record = tmp_path / "r.json"
    record.write_text(json.dumps({"uri": f"{HOST}/byoc-triton@{DIGEST}",
                                  "image_id": "sha256:" + "00" * 32}))
    with pytest.raises(UsageError, match="push record names image"):
        images.resolve(str(record), Console(io.StringIO()), remote=remote(),
                       pushed_dir=tmp_path, verified_dir=tmp_path)


def test_an_image_without_byoc_labels_is_refused(tmp_path):
    with pytest.raises(UsageError, match="not a byoc image"):
        images.resolve(f"{HOST}/other@{DIGEST}", Console(io.StringIO()),
                       remote=remote(labels={}), pushed_dir=tmp_path, verified_dir=tmp_path)


def test_a_name_that_is_neither_a_uri_nor_a_local_image_is_refused(tmp_path):
    with pytest.raises(UsageError, match="neither a registry URI nor a local image"):
        images.name("no-such-image-here:never", tmp_path)


def test_a_record_without_a_uri_is_refused(tmp_path):
    record = tmp_path / "bad.json"
    record.write_text("{}")
    with pytest.raises(UsageError, match="has no"):
        images.name(str(record), tmp_path)


def test_the_newest_push_record_of_an_image_wins(tmp_path):
    for name, when in (("old", "2026-01-01T00:00:00+00:00"), ("new", "2026-06-01T00:00:00+00:00")):
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "uri": f"{HOST}/byoc-triton@sha256:{name}", "image_id": IMAGE_ID, "pushed_at": when}))
    assert images.pushed_record_for(IMAGE_ID, tmp_path)["uri"].endswith("@sha256:new")
    assert images.pushed_record_for("sha256:other", tmp_path) is None


@pytest.mark.parametrize("uri, split", [
    (f"{HOST}/byoc-triton:0.1.0-cpu", (f"{HOST}/byoc-triton", "0.1.0-cpu")),
    (f"{HOST}/byoc-triton@{DIGEST}", (f"{HOST}/byoc-triton", DIGEST)),
    ("127.0.0.1:5050/ns/byoc-triton", ("127.0.0.1:5050/ns/byoc-triton", "latest")),
])
def test_split_uri(uri, split):
    assert images.split_uri(uri) == split
