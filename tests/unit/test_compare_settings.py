"""Settings compare reads from an image: TorchServe's environment and the archive's
model-config.yaml, Triton's config.pbtxt files through Triton's own protobuf."""

from __future__ import annotations

from byoc.compare import settings

ENV = {"BYOC_DEFAULT_WORKERS": "2", "BYOC_BATCH_SIZE": "8", "BYOC_MAX_BATCH_DELAY_MS": "3"}


def test_torchserve_from_the_environment():
    ts = settings.torchserve_settings(ENV)
    assert {k: ts[k] for k in ("workers", "batch_size", "max_batch_delay_ms")} == \
        {"workers": 2, "batch_size": 8, "max_batch_delay_ms": 3}
    assert settings.settings_line("torchserve", ts) == \
        "workers 2, batch_size 8, max_batch_delay 3 ms"
    assert settings.largest_batch("torchserve", ts) == 8


def test_the_archive_config_wins_as_in_torchserve():
    ts = settings.torchserve_settings(ENV, {"batchSize": 16, "maxBatchDelay": 20,
                                            "minWorkers": 3, "maxWorkers": 3})
    assert (ts["batch_size"], ts["max_batch_delay_ms"], ts["workers"]) == (16, 20, 3)
    assert settings.settings_line("torchserve", ts).endswith(
        "(batch_size, max_batch_delay_ms, workers from the archive)")
    # TorchServe ignores (and warns about) workers whose max is below their min
    odd = settings.torchserve_settings(ENV, {"minWorkers": 4, "maxWorkers": 1})
    assert odd["workers"] == 2 and odd["source"]["workers"] == settings.DEFAULT_SOURCE


def test_triton_from_each_config_pbtxt(tmp_path):
    def model(name: str, text: str) -> None:
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "config.pbtxt").write_text(text)

    model("classifier", 'name: "classifier"\nbackend: "python"\nmax_batch_size: 32\n'
          "dynamic_batching { max_queue_delay_microseconds: 1000 preferred_batch_size: [8] }\n"
          "instance_group [ { count: 2 kind: KIND_CPU }, { kind: KIND_CPU } ]\n")
    model("plain", 'backend: "python"\nmax_batch_size: 0\n')
    model("pipeline", 'platform: "ensemble"\nmax_batch_size: 0\n')
    found = settings.triton_settings(tmp_path)
    assert found["classifier"] == {"backend": "python", "max_batch_size": 32,
                                   "dynamic_batching": True, "max_queue_delay_us": 1000,
                                   "preferred_batch_size": [8], "instances": 3,
                                   "instance_kind": "KIND_CPU"}
    assert found["plain"]["instances"] == 1 and found["plain"]["instance_kind"] == "KIND_AUTO"
    assert found["pipeline"]["instances"] is None
    line = settings.settings_line("triton", found)
    assert line == ("classifier: 3 instance(s), dynamic batching (max_batch_size 32, delay "
                    "1000 us); pipeline: ensemble; plain: 1 instance(s), max_batch_size 0, "
                    "no dynamic batching")
    assert settings.largest_batch("triton-mar", found) == 32
