"""What one image is, read from the image itself: its labels, the settings it serves with,
its sizes, and the TorchServe archive inside it (for the in-process baseline).

The model store is copied out of the image (`docker create` + get_archive, as verify does):
TorchServe's holds NAME.mar; the Triton host of an archive holds NAME/1/archive/, the
.mar unpacked; a native Triton repository holds model folders."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

from ..console import Console
from ..errors import ByocError
from ..model import mar
from ..render import BAKED_MODEL_DIR, SAMPLES_DIR
from ..verify.inputs import export_folder
from . import settings as settings_mod
from . import sizes


@dataclasses.dataclass
class ImageFacts:
    server: str  # torchserve, triton or triton-mar
    reference: str
    image_id: str
    labels: dict
    env: dict
    settings: dict
    size: dict
    archive: Path | None  # the TorchServe archive, unpacked, when the image serves one

    @property
    def model_kind(self) -> str | None:
        return self.labels.get("dev.byoc.model-kind")

    def archive_files(self) -> dict[str, str] | None:
        return archive_files(self.archive) if self.archive else None


def untar(data: bytes, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(into, filter="data")
    return into


def model_store(reference: str, into: Path) -> Path:
    data = export_folder(reference, BAKED_MODEL_DIR)
    if data is None:
        raise ByocError(f"{reference} bakes no model ({BAKED_MODEL_DIR} is missing)",
                        "compare images built with their model (not --no-model)")
    return untar(data, into)


def baked_samples(reference: str, into: Path) -> Path | None:
    data = export_folder(reference, SAMPLES_DIR)
    return untar(data, into) if data else None


def unpack_mar(path: Path, into: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(into)
    return into


def find_archive(store: Path, scratch: Path) -> Path | None:
    """The unpacked archive in a model store: a .mar (TorchServe) or the host's folder."""
    mars = sorted(store.glob("*.mar"))
    if mars:
        return unpack_mar(mars[0], scratch / "unpacked")
    hosted = sorted(store.glob(f"*/1/archive/{mar.MANIFEST}"))
    return hosted[0].parent.parent if hosted else None


def archive_files(folder: Path) -> dict[str, str]:
    """sha256 of every file of an unpacked archive, by name, so the same archive compares
    equal whether it came zipped (.mar) or unpacked (the Triton host). The manifest's
    createdOn is left out: torch-model-archiver stamps each archiving with the time."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()
                       and "__pycache__" not in p.parts and p.suffix != ".pyc"):
        name = str(path.relative_to(folder))
        data = path.read_bytes()
        if name == mar.MANIFEST:
            manifest = json.loads(data)
            manifest.pop("createdOn", None)
            data = json.dumps(manifest, sort_keys=True).encode()
        out[name] = hashlib.sha256(data).hexdigest()
    return out


def archive_differences(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """The files two archives do not share byte for byte (or at all), by name."""
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))


def archive_config(archive: Path | None) -> dict:
    """The unpacked archive's model-config.yaml, as TorchServe reads it ({} when none)."""
    if archive is None:
        return {}
    manifest = json.loads((archive / mar.MANIFEST).read_text())
    name = (manifest.get("model") or {}).get("configFile")
    if not name or not (archive / name).is_file():
        return {}
    return mar.read_config(archive / name)


def image_facts(dock, server: str, reference: str, scratch: Path,
                console: Console) -> ImageFacts:
    image = dock.images.get(reference)
    config = image.attrs.get("Config") or {}
    env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
    store = model_store(reference, scratch / "store")
    archive = find_archive(store, scratch) if server in ("torchserve", "triton-mar") else None
    if server == "torchserve":
        settings = settings_mod.torchserve_settings(env, archive_config(archive))
    else:
        settings = settings_mod.triton_settings(store)
    size = sizes.image_sizes(image, console, name=reference)
    return ImageFacts(server, reference, image.id, config.get("Labels") or {}, env, settings,
                      size, archive)
