"""byoc.matrix: the CI matrix is images/images.yaml (no second list), the labels are the ones
`build.py` adds, the disk check, and the job summary of push records."""

from __future__ import annotations

import dataclasses
import json
from collections import namedtuple

import pytest

from byoc import builder, config, gitinfo, matrix, push, render, tags
from byoc.errors import ByocError, UsageError
from byoc.model.spec import ModelSpec


@pytest.fixture(scope="module")
def specs():
    return config.load()


def test_matrix_has_one_entry_per_image_of_the_config(specs):
    entries = matrix.matrix(specs)["include"]
    assert [e["name"] for e in entries] == sorted(specs)
    for e in entries:
        spec = specs[e["name"]]
        assert (e["flavor"], e["variant"], e["runtime"]) == \
            (spec.flavor, spec.variant, spec.runtime)
        # the reference `build.py FLAVOR` tags and `build.py push` reads the labels from
        assert e["image"] == builder.image_references(spec, None)[0]
        assert e["repository"] == spec.repository
        assert e["gpu"] is (spec.variant == "gpu")
        assert e["disk_gb"] == matrix.disk_gb(spec)
        assert e["free_disk"] is (e["disk_gb"] > matrix.HOSTED_RUNNER_FREE_GB)


def test_disk_needs(specs):
    """cpu 10 GB, gpu 25 GB (measured sizes, counted twice with headroom); a base as large as
    NGC's Triton counts twice on top. Every gpu image frees disk on a hosted runner first."""
    for spec in specs.values():
        expected = matrix.DISK_GB[spec.variant]
        if spec.base_image.startswith("nvcr.io/nvidia/tritonserver:"):
            expected += 2 * matrix.LARGE_BASES["nvcr.io/nvidia/tritonserver"]
        assert matrix.disk_gb(spec) == expected, spec.name
    assert matrix.DISK_GB == {"cpu": 10, "gpu": 25}
    gpu = [e for e in matrix.matrix(specs)["include"] if e["gpu"]]
    assert gpu and all(e["free_disk"] for e in gpu)


def test_matrix_covers_flavor_by_variant(specs):
    entries = matrix.matrix(specs)["include"]
    assert {(e["flavor"], e["variant"]) for e in entries} == \
        {(f, v) for f in config.FLAVORS for v in config.VARIANTS}


MINIMAL_CONFIG = """\
defaults:
  base_image: debian:bookworm-slim
  python: "3.11"
  source: https://example.com/byoc
  tags: ["{version}-{variant}"]
images:
  - flavor: triton
    variant: cpu
    repository: my-triton
    server_version: "2.51.0"
    torch: {version: "2.13.0"}
  - flavor: triton
    variant: gpu
    repository: my-triton
    server_version: "2.51.0"
    torch: {version: "2.14.1", cuda: "13.0"}
"""


def test_matrix_follows_the_config_file(tmp_path, capsys):
    """An entry in the config is a job, an entry removed is a job gone: nothing else lists
    the images."""
    path = tmp_path / "images.yaml"
    path.write_text(MINIMAL_CONFIG)
    assert matrix.main(["--config", str(path)]) == 0
    entries = json.loads(capsys.readouterr().out)["include"]
    assert [(e["name"], e["image"]) for e in entries] == \
        [("triton-cpu", "my-triton:0.1.0-cpu"), ("triton-gpu", "my-triton:0.1.0-gpu")]


def test_matrix_filters(specs):
    gpu = matrix.matrix(specs, variant="gpu")["include"]
    assert gpu and all(e["variant"] == "gpu" and e["gpu"] for e in gpu)
    cpu_triton = matrix.matrix(specs, flavor="triton", variant="cpu")["include"]
    assert {e["name"] for e in cpu_triton} == \
        {n for n, s in specs.items() if s.flavor == "triton" and s.variant == "cpu"}
    with pytest.raises(UsageError, match="no image"):
        matrix.matrix({}, variant="gpu")


def test_main_prints_compact_json_for_fromjson(capsys):
    assert matrix.main(["--variant", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one line: `echo "matrix=$(...)" >> $GITHUB_OUTPUT`
    data = json.loads(out)
    assert data["include"] and all(e["variant"] == "cpu" for e in data["include"])


def test_labels_are_the_ones_build_py_adds():
    revision = gitinfo.Revision("0123456789ab", "2026-01-02T03:04:05+00:00")
    lines = matrix.build_labels(revision)
    assert lines == [f"{k}={v}" for k, v in sorted(builder.dynamic_labels(revision).items())]
    keys = {line.split("=", 1)[0] for line in lines}
    # push names the content tag from these two
    assert {tags.VERSION_LABEL, tags.REVISION_LABEL} <= keys


def test_labels_command(capsys):
    assert matrix.main(["labels"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(tags.REVISION_LABEL + "=") for line in lines)


Usage = namedtuple("Usage", "total used free")


def test_disk_check(monkeypatch, specs, tmp_path):
    monkeypatch.setattr(matrix.shutil, "disk_usage", lambda p: Usage(100e9, 70e9, 30e9))
    assert "30.0 GB free" in matrix.check_disk("torchserve-gpu", specs, tmp_path)
    monkeypatch.setattr(matrix.shutil, "disk_usage", lambda p: Usage(100e9, 86e9, 14e9))
    with pytest.raises(ByocError, match="14.0 GB free .* needs 25 GB") as exc:
        matrix.check_disk("torchserve-gpu", specs, tmp_path)
    assert "free disk" in exc.value.tip
    assert "needs 10 GB" in matrix.check_disk("torchserve-cpu", specs, tmp_path)
    with pytest.raises(UsageError, match="no image nope"):
        matrix.check_disk("nope", specs, tmp_path)


def test_disk_command_exit_status(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(matrix.shutil, "disk_usage", lambda p: Usage(100e9, 90e9, 10e9))
    assert matrix.main(["disk", "triton-gpu", "--path", str(tmp_path)]) == 1
    assert "ERROR 10.0 GB free" in capsys.readouterr().err
    assert matrix.main(["disk", "triton-cpu", "--path", str(tmp_path)]) == 0


def _record(tmp_path, name="torchserve-cpu"):
    """A record as `build.py push` writes it (push.Published, so a renamed field shows)."""
    published = push.Published(
        uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/byoc-torchserve@sha256:" + "a" * 64,
        digest="sha256:" + "a" * 64,
        media_type="application/vnd.docker.distribution.manifest.v2+json",
        registry="123456789012.dkr.ecr.eu-west-1.amazonaws.com", repository="byoc-torchserve",
        tags=("0.1.0-cpu-0123456789ab", "latest-cpu"), image_id="sha256:" + "b" * 64,
        uploaded_layers=3, seconds=12.5)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(dataclasses.asdict(published)))
    return path


def test_summary_lists_uri_with_digest_and_tags(tmp_path, capsys):
    path = _record(tmp_path)
    text = matrix.summary([path])
    assert "| torchserve-cpu | `123456789012.dkr.ecr.eu-west-1.amazonaws.com/byoc-torchserve" \
           "@sha256:" + "a" * 64 + "`" in text
    assert "`latest-cpu`" in text and "manifest.v2+json" in text
    assert matrix.main(["summary", str(path)]) == 0
    assert capsys.readouterr().out == text


def test_summary_refuses_bad_records(tmp_path):
    with pytest.raises(UsageError):
        matrix.summary([])
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ByocError, match="lacks uri, digest, tags, media_type"):
        matrix.summary([bad])
    with pytest.raises(ByocError, match="cannot read"):
        matrix.summary([tmp_path / "missing.json"])


def test_images_of_one_repository_push_distinct_tags_and_are_told_apart(specs):
    """images.yml pushes every entry in parallel: two entries that share a repository must
    not claim the same immutable content tag or the same moving tag, and push (which picks
    the config entry from the image's labels) must find the right entry."""
    claimed: dict[tuple[str, str], str] = {}
    for name, spec in sorted(specs.items()):
        fields = {"version": "V", "variant": spec.variant, "flavor": spec.flavor,
                  "sha": "S", "branch": "B"}
        for template in (spec.push.content_tag, *spec.push.moving_tags):
            key = (spec.repository, template.format(**fields))
            assert key not in claimed, f"{name} and {claimed[key]} both push {key[1]} to {key[0]}"
            claimed[key] = name
        labels = dict(render.image_labels(spec, ModelSpec(name="m", origin="test"),
                                          {"kind": "mar"}))
        assert labels.get("dev.byoc.runtime") == spec.runtime, f"{name}: no runtime label"
