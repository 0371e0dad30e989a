"""byoc.model.samples: a model's samples folder (NAME.EXT bodies, optional NAME.EXT.yaml
sidecars), how an answer is judged against a sample (C07), and the requests derived from
samples: grown to the payload limit (C09) and broken on purpose (C11)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import yaml

from byoc import IMAGES_DIR
from byoc.errors import ConfigError
from byoc.model import samples
from byoc.model.samples import Sample

SIX_MIB = 6 * 1024 * 1024


def folder_of(tmp_path, files: dict[str, bytes | str | dict]):
    """Write files (dict values become YAML sidecars) into tmp_path/samples."""
    folder = tmp_path / "samples"
    folder.mkdir()
    for name, content in files.items():
        path = folder / name
        if isinstance(content, dict):
            path.write_text(yaml.safe_dump(content))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return folder


def load_error(tmp_path, files) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        samples.load(folder_of(tmp_path, files))
    assert "docs/models.md" in caught.value.tip or "content_type" in caught.value.tip
    return caught.value


# -- loading ------------------------------------------------------------------------------

def test_the_example_samples_load():
    found = samples.load(IMAGES_DIR / "samples" / "digits")
    assert len(found) == 11
    kinds = {s.content_type for s in found}
    assert kinds == {"image/png", "image/jpeg", "application/json", "application/x-npy"}
    assert all(s.has_expectation and s.status == 200 for s in found)


@pytest.mark.parametrize("name, content_type", [
    ("a.json", "application/json"), ("a.png", "image/png"), ("a.JPG", "image/jpeg"),
    ("a.jpeg", "image/jpeg"), ("a.npy", "application/x-npy"), ("a.txt", "text/plain"),
    ("a.csv", "text/csv"), ("a.bin", "application/octet-stream"),
    ("a.jsonl", "application/jsonlines"), ("a.wav", "audio/wav"), ("a.tiff", "image/tiff"),
])
def test_the_extension_gives_the_content_type(tmp_path, name, content_type):
    (sample,) = samples.load(folder_of(tmp_path, {name: b"body"}))
    assert (sample.name, sample.body, sample.content_type) == (name, b"body", content_type)
    assert sample.request_headers() == {"Content-Type": content_type}
    assert (sample.status, sample.expect, sample.expect_text, sample.tolerance) == (
        200, None, None, 0.0)
    assert not sample.has_expectation


def test_a_sidecar_gives_the_request_and_the_expected_answer(tmp_path):
    found = samples.load(folder_of(tmp_path, {
        "review.txt": "great film",
        "review.txt.yaml": {"content_type": "text/plain; charset=utf-8", "accept": "text/*",
                            "headers": {"X-Amzn-SageMaker-Custom-Attributes": "k=v", "X-N": 3},
                            "status": 200, "expect": {"label": "positive", "score": 0.9},
                            "tolerance": 0.05},
        "bad.json": "{",
        "bad.json.yaml": {"status": 400, "expect_text": "bad JSON"},
    }))
    assert [s.name for s in found] == ["bad.json", "review.txt"]  # sorted, sidecars not bodies
    bad, review = found
    assert (bad.status, bad.expect_text, bad.has_expectation) == (400, "bad JSON", True)
    assert review.request_headers() == {"X-Amzn-SageMaker-Custom-Attributes": "k=v",
                                        "X-N": "3", "Content-Type": "text/plain; charset=utf-8",
                                        "Accept": "text/*"}
    assert (review.expect, review.tolerance) == ({"label": "positive", "score": 0.9}, 0.05)


def test_a_sidecar_content_type_admits_any_extension(tmp_path):
    (sample,) = samples.load(folder_of(tmp_path, {"audio.flac": b"fLaC",
                                                  "audio.flac.yaml": {"content_type":
                                                                      "audio/flac"}}))
    assert sample.content_type == "audio/flac"


def test_an_unknown_extension_says_what_to_do(tmp_path):
    error = load_error(tmp_path, {"audio.flac": b"fLaC"})
    assert "audio.flac: unknown sample extension '.flac'" in error.message
    assert ".json" in error.tip and "content_type in audio.flac.yaml" in error.tip


def test_a_file_without_extension_is_named(tmp_path):
    assert "unknown sample extension '(none)'" in load_error(tmp_path, {"README": "x"}).message


def test_a_yaml_without_its_body_is_not_a_sidecar(tmp_path):
    """gone.png.yaml whose gone.png is missing is a stray file, not silently skipped."""
    assert "gone.png.yaml: unknown sample extension '.yaml'" in load_error(
        tmp_path, {"a.json": "[1]", "gone.png.yaml": {"status": 200}}).message


def test_hidden_files_are_not_samples(tmp_path):
    found = samples.load(folder_of(tmp_path, {"a.json": "[1]", ".DS_Store": b"\x00"}))
    assert [s.name for s in found] == ["a.json"]


def test_an_empty_folder_or_no_folder(tmp_path):
    assert "holds no request bodies" in load_error(tmp_path, {}).message
    with pytest.raises(ConfigError, match="is not a folder"):
        samples.load(tmp_path / "missing")


@pytest.mark.parametrize("sidecar, problem", [
    ("status: [1", "not valid YAML"),
    ("- 1\n- 2\n", "must be a mapping"),
    ({"expected": [1]}, "unknown field 'expected'; allowed: accept, content_type, expect"),
    ({"status": "ok"}, "status: 'ok' is not an HTTP status"),
    ({"status": 99}, "is not an HTTP status"),
    ({"status": 600}, "is not an HTTP status"),
    ({"tolerance": -0.1}, "tolerance: -0.1 must be a number >= 0"),
    ({"tolerance": "loose"}, "must be a number >= 0"),
    ({"headers": ["X-A: 1"]}, "headers: must map header names to values"),
])
def test_sidecar_mistakes_name_the_sidecar(tmp_path, sidecar, problem):
    error = load_error(tmp_path, {"a.json": "[1]", "a.json.yaml": sidecar})
    assert "a.json.yaml" in error.message and problem in error.message


# -- judging answers ----------------------------------------------------------------------

def sample(**fields) -> Sample:
    return Sample(name="s.json", body=b"{}", content_type="application/json", **fields)


def test_no_expectation_judges_the_status_only():
    assert samples.mismatch(sample(), 200, b"anything") is None
    assert samples.mismatch(sample(), 500, b"") == "status 500, expected 200"


def test_an_expected_error_status_is_a_match():
    assert samples.mismatch(sample(status=415), 415, b'{"error": "x"}') is None
    assert samples.mismatch(sample(status=415), 200, b"{}") == "status 200, expected 415"


def test_expect_text_ignores_surrounding_whitespace():
    s = sample(expect_text="seven")
    assert samples.mismatch(s, 200, b"  seven\n") is None
    assert samples.mismatch(s, 200, b"eight") == "answer 'eight', expected 'seven'"


def test_expect_json_within_tolerance():
    s = sample(expect={"predictions": [{"label": 7, "p": 0.93}]}, tolerance=0.01)
    assert samples.mismatch(s, 200, b'{"predictions": [{"label": 7, "p": 0.935}]}') is None
    assert samples.mismatch(s, 200, b'{"predictions": [{"label": 7, "p": 0.95}]}') == \
        "answer differs at $.predictions[0].p: 0.95 != 0.93 (tolerance 0.01)"


def test_expect_json_exactly_without_tolerance():
    s = sample(expect=[1, 2.5])
    assert samples.mismatch(s, 200, b"[1.0, 2.5]") is None
    assert samples.mismatch(s, 200, b"[1, 2.5000001]").startswith("answer differs at $[1]")


def test_an_answer_that_is_not_json():
    assert samples.mismatch(sample(expect=[1]), 200, b"<html>") == \
        "answer is not JSON: '<html>'"


@pytest.mark.parametrize("got, want, where", [
    ({"a": 1}, {"a": 1, "b": 2}, "$: keys ['a'] != ['a', 'b']"),
    ([1, 2], [1, 2, 3], "$: 2 items != 3"),
    ({"a": [{"b": "x"}]}, {"a": [{"b": "y"}]}, "$.a[0].b: 'x' != 'y'"),
    (True, 1, "$: True != 1"),  # a boolean is not a number, whatever Python says
    (1, True, "$: 1 != True"),
    ("7", 7, "$: '7' != 7"),
    (None, 0, "$: None != 0"),
])
def test_json_difference_names_the_first_place(got, want, where):
    assert samples.json_difference(got, want, 0.5) == where


def test_json_difference_long_values_are_shortened():
    where = samples.json_difference("x" * 500, "y", 0)
    assert where.startswith("$: 'xxx") and "..." in where and len(where) < 200


# -- grown requests (C09) -----------------------------------------------------------------

def typed(content_type: str, body: bytes) -> Sample:
    return Sample(name="s", body=body, content_type=content_type)


@pytest.mark.parametrize("body", [b"[[0.0, 1.0, 2.0]]", b'[{"text": "hello"}, {"text": "x"}]'])
def test_c09_a_json_list_grows_by_repeating_its_rows(body):
    target = SIX_MIB // 6  # grow() is size-agnostic; 1 MiB keeps the test fast
    grown = samples.grow(typed("application/json", body), target)
    rows = json.loads(grown)
    # about the target (row sizes are estimated from the first row), never over it
    assert target * 0.8 < len(grown) <= target
    original = json.loads(body)
    assert rows[:len(original)] == original and all(r in original for r in rows)


def test_c09_a_dict_with_one_list_grows_that_list_and_keeps_the_rest():
    body = json.dumps({"instances": [[1, 2, 3]], "params": {"k": 1}}).encode()
    grown = samples.grow(typed("application/json; charset=utf-8", body), 1_000_000)
    data = json.loads(grown)
    assert data["params"] == {"k": 1} and len(data["instances"]) > 10_000
    assert len(grown) <= 1_000_000


@pytest.mark.parametrize("content_type, body", [
    ("application/json", b'{"a": [1], "b": [2]}'),  # two lists: which one?
    ("application/json", b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32",'
                         b' "data": [1]}]}'),  # KServe v2: shapes would break
    ("application/json", b'{"a": 1}'),
    ("application/json", b"[]"),
    ("application/json", b"not json"),
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("application/octet-stream", b"\x00\x01"),
    ("application/vnd.sagemaker-triton.binary+json;json-header-size=2", b"{}"),
    ("text/plain", b"  \n"),
    ("application/x-npy", b"not npy"),
])
def test_c09_types_that_cannot_grow_give_none(content_type, body):
    assert samples.grow(typed(content_type, body), SIX_MIB) is None


def npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_c09_an_npy_grows_its_first_axis():
    row = np.arange(64, dtype=np.float32).reshape(1, 64)
    grown = samples.grow(typed("application/x-npy", npy(row)), SIX_MIB)
    array = np.load(io.BytesIO(grown))
    assert array.shape[1:] == (64,) and array.shape[0] > 20_000
    assert SIX_MIB * 0.95 < len(grown) <= SIX_MIB
    assert (array == row[0]).all()


def test_c09_a_scalar_or_empty_npy_cannot_grow():
    assert samples.grow(typed("application/x-npy", npy(np.float32(1))), SIX_MIB) is None
    assert samples.grow(typed("application/x-npy", npy(np.zeros((0, 3)))), SIX_MIB) is None


def test_c09_text_grows_by_repeating_lines():
    grown = samples.grow(typed("text/csv", b"1,2,3"), 1000)
    assert 1000 - 6 < len(grown) <= 1000 and grown == b"1,2,3\n" * (len(grown) // 6)


@pytest.mark.parametrize("target", [1000, 4097, 123_457, 1_048_575])
def test_c09_grown_requests_are_never_over_the_target(target):
    for s in (typed("application/json", b'[{"text": "a longer row of text here"}, {"t": 1}]'),
              typed("application/json", b'{"instances": [[1.5, 2.25]], "k": "v"}'),
              typed("text/plain", b"one line of text\n"),
              typed("application/x-npy", npy(np.ones((2, 8), dtype=np.float64)))):
        grown = samples.grow(s, target)
        assert grown is not None and target / 2 < len(grown) <= target, s.content_type


# -- malformed requests (C11) -------------------------------------------------------------

def test_c11_malformed_json_cases():
    cases = dict(samples.malformed("application/json", b'{"instances": [[1, 2]]}'))
    assert list(cases) == ["empty body", "truncated JSON", "not JSON"]
    assert cases["empty body"] == b""
    for name in ("truncated JSON", "not JSON"):
        with pytest.raises(ValueError):
            json.loads(cases[name])


def test_c11_malformed_cases_follow_the_type():
    assert [n for n, _ in samples.malformed("application/vnd.x+json", b"{}")][1] == \
        "truncated JSON"
    image = dict(samples.malformed("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32))
    assert image["undecodable image"].startswith(b"\x89PNG")
    assert dict(samples.malformed("application/x-npy", b""))["bad npy"].startswith(b"\x93NUMPY")
    text = dict(samples.malformed("text/plain; charset=utf-8", b"hi"))["invalid UTF-8"]
    with pytest.raises(UnicodeDecodeError):
        text.decode("utf-8")
    other = dict(samples.malformed("application/octet-stream", b"12345678"))
    assert other["truncated body"] == b"12"


def test_c11_every_malformed_case_differs_from_the_body():
    body = b'{"instances": [[0, 1]]}'
    for content_type in ("application/json", "image/png", "application/x-npy", "text/plain",
                         "audio/wav"):
        for name, broken in samples.malformed(content_type, body):
            assert broken != body, (content_type, name)
