"""The serving settings an image really runs with, read from the image (not the config).

TorchServe: workers, batch_size and max_batch_delay from the environment the build baked
in (what byoc_runtime passes to TorchServe), overridden, as TorchServe itself does, by the
archive's own model-config.yaml (batchSize, maxBatchDelay, minWorkers/maxWorkers).
Triton: per model of the repository in the image, instances, max_batch_size and the
dynamic batcher, from each config.pbtxt parsed with Triton's own protobuf."""

from __future__ import annotations

from pathlib import Path

from ..model import mar, repository

DEFAULT_SOURCE = "image environment"
ARCHIVE_SOURCE = "archive model-config.yaml"


def torchserve_settings(env: dict[str, str], archive_config: dict | None = None) -> dict:
    """What TorchServe serves the model with. archive_config: the .mar's model-config.yaml."""
    settings = {"workers": int(env.get("BYOC_DEFAULT_WORKERS", "1")),
                "batch_size": int(env.get("BYOC_BATCH_SIZE", "1")),
                "max_batch_delay_ms": int(env.get("BYOC_MAX_BATCH_DELAY_MS", "5"))}
    source = dict.fromkeys(settings, DEFAULT_SOURCE)
    config = archive_config or {}
    for key, value in mar.batch_settings(config).items():
        if key in ("batch_size", "max_batch_delay_ms"):
            settings[key], source[key] = value, ARCHIVE_SOURCE
    low, high = config.get("minWorkers"), config.get("maxWorkers")
    # TorchServe takes the archive's workers only as a consistent pair (else it warns)
    if isinstance(low, int) and low > 0 and isinstance(high, int) and high >= low:
        settings["workers"], source["workers"] = low, ARCHIVE_SOURCE
    return {**settings, "source": source}


def triton_settings(store: Path) -> dict[str, dict]:
    """Per model folder of a model repository on disk: what Triton runs it with."""
    out = {}
    for config_path in sorted(Path(store).glob(f"*/{repository.CONFIG}")):
        folder = config_path.parent.name
        config = repository.parse_config(config_path, folder)
        out[folder] = model_settings(config)
    return out


def model_settings(config) -> dict:
    """One parsed model_config_pb2.ModelConfig, as the report shows it."""
    ensemble = config.platform == "ensemble"
    batching = config.HasField("dynamic_batching")
    settings = {"backend": config.backend or config.platform or "unknown",
                "max_batch_size": int(config.max_batch_size),
                "dynamic_batching": batching,
                "max_queue_delay_us": int(config.dynamic_batching.max_queue_delay_microseconds)
                if batching else None,
                "preferred_batch_size": list(config.dynamic_batching.preferred_batch_size)
                if batching else [],
                "instances": None, "instance_kind": None}
    if not ensemble:  # an ensemble runs no instances of its own
        groups = list(config.instance_group)
        # Triton's defaults: one group of count 1 when none is given, count 1 when unset
        settings["instances"] = sum(g.count or 1 for g in groups) if groups else 1
        kinds = sorted({_kind_name(g.kind) for g in groups}) if groups else ["KIND_AUTO"]
        settings["instance_kind"] = ",".join(kinds)
    return settings


def _kind_name(kind: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.ModelInstanceGroup.Kind.Name(kind)


def settings_line(server: str, settings: dict) -> str:
    """The serving settings in one line for the report."""
    if server == "torchserve":
        source = settings.get("source") or {}
        from_archive = sorted(k for k, v in source.items() if v == ARCHIVE_SOURCE)
        line = (f"workers {settings['workers']}, batch_size {settings['batch_size']}, "
                f"max_batch_delay {settings['max_batch_delay_ms']} ms")
        return line + (f" ({', '.join(from_archive)} from the archive)" if from_archive else "")
    parts = []
    for model, s in settings.items():
        if s.get("instances") is None:
            parts.append(f"{model}: {s['backend']}")
            continue
        text = f"{model}: {s['instances']} instance(s)"
        if s.get("dynamic_batching"):
            text += (f", dynamic batching (max_batch_size {s['max_batch_size']}, delay "
                     f"{s.get('max_queue_delay_us') or 0} us)")
        else:
            text += f", max_batch_size {s['max_batch_size']}, no dynamic batching"
        parts.append(text)
    return "; ".join(parts)


def largest_batch(server: str, settings: dict) -> int:
    """The most requests one model call can see on this server (for the baseline)."""
    if server == "torchserve":
        return int(settings.get("batch_size", 1))
    sizes = [s["max_batch_size"] for s in settings.values()
             if s.get("instances") is not None and s.get("dynamic_batching")]
    return max(sizes, default=1)
