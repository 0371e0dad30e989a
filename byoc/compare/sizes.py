"""Image sizes: uncompressed (what `docker images` shows) and compressed (what a registry
stores, and what ECR bills and pulls), estimated without compressing every byte.

Compressed is the sum over layers of gzip level 6 (what `docker push` writes) of each
layer tarball, streamed from `docker save`: layers under SAMPLE_EXACT_BELOW exactly, larger
ones from a seeded random 1 in SAMPLE_EVERY of their 1 MiB blocks, scaled up. Results are
cached per layer digest, so images sharing base layers cost nothing the second time."""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
import time
import zlib
from pathlib import Path

from ..builder import DEFAULT_WORK_DIR
from ..console import Console
from ..errors import ByocError

SIZE_CACHE = DEFAULT_WORK_DIR / "compare-layer-sizes.json"
GZIP_LEVEL = 6
BLOCK = 1 << 20
SAMPLE_EVERY = 4
SAMPLE_EXACT_BELOW = 8 * BLOCK
SIZE_METHOD = (f"sum over layers of gzip -{GZIP_LEVEL} of the layer tarball (as a registry "
               f"stores it); layers over {SAMPLE_EXACT_BELOW >> 20} MiB estimated from a "
               f"random 1 in {SAMPLE_EVERY} of their 1 MiB blocks, smaller ones exact; cached "
               "per layer digest")


def _load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(path: Path, entries: dict) -> None:
    merged = {**_load_cache(path), **entries}  # another run may have added layers meanwhile
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(merged, indent=1, sort_keys=True))
    partial.replace(path)


class _Chunks(io.RawIOBase):
    """A file over the chunks `image.save()` yields, for tarfile's streaming mode."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def gzip_estimate(stream, size: int) -> int:
    """gzip -6 size of a layer tarball read from stream: exact for small ones, else from a
    random (seeded, so repeatable) 1 in SAMPLE_EVERY of its blocks, scaled up."""
    pick = random.Random(size)
    exact = size < SAMPLE_EXACT_BELOW
    raw = packed = 0
    while block := stream.read(BLOCK):
        if exact or not raw or pick.random() * SAMPLE_EVERY < 1:
            raw += len(block)
            packed += len(zlib.compress(block, GZIP_LEVEL))
    return round(size * packed / raw) + 18 if raw else 20  # + gzip header and trailer


def image_sizes(image, console: Console, cache_path: Path = SIZE_CACHE,
                name: str | None = None) -> dict:
    """Uncompressed and compressed (per SIZE_METHOD) sizes of a docker-py image."""
    diff_ids = image.attrs.get("RootFS", {}).get("Layers", [])
    cache = _load_cache(cache_path)
    t0 = time.monotonic()
    missing = [d for d in diff_ids if d not in cache]
    if missing:
        console.info(f"compressed size of {name or image.short_id}: "
                     f"streaming docker save through gzip -{GZIP_LEVEL} "
                     f"({len(missing)} new layers)")
        by_path: dict[str, int] = {}
        manifest = None
        with tarfile.open(fileobj=io.BufferedReader(_Chunks(image.save(chunk_size=BLOCK)),
                                                    BLOCK), mode="r|") as archive:
            for member in archive:
                # Docker < 25 saves ID/layer.tar; newer engines an OCI layout (blobs/)
                if member.isfile() and (member.name.endswith("layer.tar")
                                        or member.name.startswith("blobs/")):
                    by_path[member.name] = gzip_estimate(archive.extractfile(member),
                                                         member.size)
                elif member.name == "manifest.json":
                    manifest = json.load(archive.extractfile(member))
        if not manifest:
            raise ByocError("docker save gave no manifest.json; cannot size the layers")
        layer_paths = manifest[0]["Layers"]
        fresh = {diff_id: by_path[p] for diff_id, p in zip(diff_ids, layer_paths, strict=True)
                 if p in by_path}
        _save_cache(cache_path, fresh)
        cache.update(fresh)
    return {"uncompressed_bytes": image.attrs["Size"],
            "compressed_bytes": sum(cache[d] for d in diff_ids),
            "layers": len(diff_ids), "method": SIZE_METHOD,
            "seconds": round(time.monotonic() - t0, 1)}
