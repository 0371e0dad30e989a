"""What deploy created for an endpoint, in build/deployed/NAME.json: the endpoint, its
model and configuration, the S3 objects and buckets it wrote, and the history of deploys.
undeploy reads it (and the SageMaker tags, for what another machine deployed)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclasses.dataclass
class Record:
    endpoint: str
    region: str
    endpoint_created: bool = False
    models: list[str] = dataclasses.field(default_factory=list)
    configs: list[str] = dataclasses.field(default_factory=list)
    s3_objects: list[str] = dataclasses.field(default_factory=list)
    buckets: list[str] = dataclasses.field(default_factory=list)
    history: list[dict] = dataclasses.field(default_factory=list)

    @staticmethod
    def path(folder: Path, endpoint: str) -> Path:
        return Path(folder) / f"{endpoint}.json"

    @classmethod
    def load(cls, folder: Path, endpoint: str, region: str) -> Record:
        path = cls.path(folder, endpoint)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(endpoint, region)
        if data.get("region") != region:  # the same name in another region is another one
            return cls(endpoint, region)
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def add(self, what: str, name: str) -> None:
        items = getattr(self, what)
        if name not in items:
            items.append(name)

    def drop(self, what: str, name: str) -> None:
        items = getattr(self, what)
        if name in items:
            items.remove(name)

    def event(self, action: str, **details) -> None:
        self.history.append({"at": _now(), "action": action, **details})

    def save(self, folder: Path) -> Path:
        path = self.path(folder, self.endpoint)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        partial.replace(path)
        return path

    def remove(self, folder: Path) -> None:
        self.path(folder, self.endpoint).unlink(missing_ok=True)
