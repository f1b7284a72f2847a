"""Typed job specifications: what a joint job computes, on whose data, for whom.

A job spec is YAML or JSON::

    name: customer-overlap
    kind: psi
    parties:
      bank:  {data: bank_customers.csv, id_column: customer_id}
      telco: {data: telco_subscribers.csv, id_column: customer_id}
    psi:
      mode: intersection          # or: cardinality
      receivers: [bank, telco]    # who learns the result

Data paths are resolved by each party's own node (relative to its data
directory), so a spec never carries a party's data, only a reference to it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jointly.errors import ConfigError

PARTY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
JOB_KINDS = ("psi",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataRef(_Strict):
    """A party's input table, as a path on that party's machine."""

    data: str = Field(min_length=1)
    id_column: str = Field(default="id", min_length=1)


class PsiSpec(_Strict):
    """Parameters of a private set intersection job."""

    protocol: Literal["ecdh"] = "ecdh"
    mode: Literal["intersection", "cardinality"] = "intersection"
    receivers: tuple[str, ...] = ()
    batch_size: int = Field(default=1 << 16, ge=1, le=1 << 22)


class JobSpec(_Strict):
    """A joint job: its kind, the parties with their data references, and kind-specific parameters."""

    name: str = Field(min_length=1, max_length=128)
    kind: Literal["psi"]
    parties: dict[str, DataRef]
    psi: PsiSpec | None = None
    timeout_s: float = Field(default=6 * 3600.0, gt=0)

    @field_validator("parties")
    @classmethod
    def _check_parties(cls, parties: dict[str, DataRef]) -> dict[str, DataRef]:
        if len(parties) < 2:
            raise ValueError("a joint job needs at least two parties")
        bad = [p for p in parties if not PARTY_NAME.match(p)]
        if bad:
            raise ValueError(f"invalid party names {bad}: use lowercase letters, digits, '-' or '_'")
        return parties

    @model_validator(mode="after")
    def _check_kind(self) -> JobSpec:
        if self.kind == "psi":
            psi = self.psi or PsiSpec()
            unknown = [r for r in psi.receivers if r not in self.parties]
            if unknown:
                raise ValueError(f"psi.receivers {unknown} are not parties of the job")
        return self

    @property
    def party_names(self) -> tuple[str, ...]:
        return tuple(self.parties)

    @property
    def psi_params(self) -> PsiSpec:
        """The PSI section, defaulting receivers to the first party."""
        psi = self.psi or PsiSpec()
        if not psi.receivers:
            psi = psi.model_copy(update={"receivers": (self.party_names[0],)})
        return psi

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, raw: object, *, source: str = "job spec") -> JobSpec:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"{source}: {problems}") from None

    @classmethod
    def load(cls, path: str | Path) -> JobSpec:
        """Read a YAML or JSON job spec; every problem is a :class:`ConfigError` naming the file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: job spec not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read job spec: {exc}") from None
        try:
            raw = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}") from None
        return cls.from_dict(raw, source=str(p))
