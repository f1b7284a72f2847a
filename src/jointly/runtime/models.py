"""The parts of trained joint models that one party keeps, versioned by name and tied to the job that made them.

A vertical model is never in one place: the guest keeps its trees (or weights)
with opaque references to the hosts' splits, each host keeps only its own
splits (or weights).  Each party's node publishes its part inside the training
job's output directory (``jobs/<job_id>/output/model/``), so a part exists only
if the whole job succeeded.  :class:`ModelStore` indexes those parts:

* a model is identified by the id of the job that trained it, which is the
  same on every party, so every party resolves a reference to the same model;
* models with the same job name are versions 1, 2, ... in training order, and
  ``name`` (latest) or ``name@v2`` are accepted wherever a job id is.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jointly.data.io import atomic_write_json
from jointly.errors import ConfigError, DataError

MODEL_DIR = "model"
META_FILE = "meta.json"
PART_FILE = "part.json"
FORMAT = 1
_VERSIONED = re.compile(r"^(?P<name>.+)@v(?P<version>[0-9]+)$")


@dataclass(frozen=True)
class ModelInfo:
    """What a stored model part is: which job trained it, of what kind, and this party's role in it."""

    model_id: str  # the training job's id
    name: str  # the training job's name; versions count per name
    kind: str
    party: str
    role: str  # guest | host | arbiter
    guest: str
    parties: tuple[str, ...]
    features: tuple[str, ...]  # this party's feature columns, in the model's order
    created: float
    version: int = 0  # filled in by ModelStore from the training order

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model_id": self.model_id,
            "name": self.name,
            "kind": self.kind,
            "party": self.party,
            "role": self.role,
            "guest": self.guest,
            "parties": list(self.parties),
            "features": list(self.features),
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str) -> ModelInfo:
        try:
            if raw.get("format") != FORMAT:
                raise ValueError(f"unknown model format {raw.get('format')!r}")
            return cls(
                model_id=str(raw["model_id"]),
                name=str(raw["name"]),
                kind=str(raw["kind"]),
                party=str(raw["party"]),
                role=str(raw["role"]),
                guest=str(raw["guest"]),
                parties=tuple(str(p) for p in raw["parties"]),
                features=tuple(str(f) for f in raw["features"]),
                created=float(raw["created"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(source, f"not a model description: {exc}") from None


def write_model_part(output_dir: Path, info: ModelInfo, part: dict[str, Any]) -> None:
    """Write this party's model part into a job's (staging) output directory."""
    directory = output_dir / MODEL_DIR
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(directory / PART_FILE, part)
    atomic_write_json(directory / META_FILE, info.to_dict())


def new_model_info(**fields: Any) -> ModelInfo:
    return ModelInfo(created=time.time(), **fields)


class ModelStore:
    """This party's model parts, read from the outputs of the training jobs its node ran."""

    def __init__(self, jobs_dir: Path) -> None:
        self.jobs_dir = jobs_dir

    def list(self) -> list[ModelInfo]:
        """Every model part here, oldest first, with versions numbered per name."""
        found: list[ModelInfo] = []
        if not self.jobs_dir.is_dir():
            return found
        for meta in self.jobs_dir.glob(f"*/output/{MODEL_DIR}/{META_FILE}"):
            try:
                raw = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # an unreadable part is not offered; load() by id reports it
            if isinstance(raw, dict):
                try:
                    found.append(ModelInfo.from_dict(raw, source=str(meta)))
                except DataError:
                    continue
        found.sort(key=lambda m: (m.created, m.model_id))
        counts: dict[str, int] = {}
        numbered = []
        for info in found:
            counts[info.name] = counts.get(info.name, 0) + 1
            numbered.append(ModelInfo(**{**info.__dict__, "version": counts[info.name]}))
        return numbered

    def resolve(self, ref: str) -> ModelInfo:
        """The model a reference names: a training job id, ``name`` (its latest version) or ``name@vN``."""
        models = self.list()
        by_id = [m for m in models if m.model_id == ref]
        if by_id:
            return by_id[0]
        match = _VERSIONED.match(ref)
        if match:
            name, version = match["name"], int(match["version"])
            hits = [m for m in models if m.name == name and m.version == version]
        else:
            hits = [m for m in models if m.name == ref][-1:]
        if not hits:
            known = ", ".join(sorted({f"{m.name}@v{m.version} ({m.model_id})" for m in models})) or "none"
            raise ConfigError(f"no model {ref!r} here (models: {known})")
        return hits[0]

    def load(self, ref: str) -> tuple[ModelInfo, dict[str, Any]]:
        """This party's part of the model ``ref`` names, with its description."""
        info = self.resolve(ref)
        path = self.jobs_dir / info.model_id / "output" / MODEL_DIR / PART_FILE
        try:
            part = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(str(path), f"cannot read model part: {exc}") from None
        if not isinstance(part, dict):
            raise DataError(str(path), "a model part must be a JSON object")
        return info, part
