"""config/cases.json (DTSEN_CASES_CONFIG): which origins open a verification case, how urgent each is,
when a family counts as stale, and the share of a region's overdue cases that alerts data ops.

A case is one family to visit; every origin that flags the family adds a reason to its one open case.
A case's priority is its most urgent reason's (1 is the most urgent) and its due date the earliest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dtsen.errors import DataError

ORIGINS = ("implausible", "split_surge", "stale", "sanggah", "usul")
Origin = Literal["implausible", "split_surge", "stale", "sanggah", "usul"]


class CasesConfigError(DataError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OriginConfig(_Strict):
    enabled: bool = True
    priority: int = Field(ge=1, le=5)  # 1: visit first
    due_days: int = Field(ge=1, le=730)  # days from the round's reference date to the visit's deadline


class StaleConfig(OriginConfig):
    rounds: int = Field(ge=1, le=400)  # not updated nor verified for this many rounds (8: two years)
    max_per_round: int = Field(ge=0)  # at most this many stale families a round, the longest-stale first


class Origins(_Strict):
    implausible: OriginConfig  # the implausible-recipient rules of the published version
    split_surge: OriginConfig  # families behind the round's split-surge flags
    stale: StaleConfig
    sanggah: OriginConfig  # a household's objection: this family should not receive a program
    usul: OriginConfig  # a household's proposal: this family should be registered or ranked again


class CasesConfig(_Strict):
    version: str
    origins: Origins
    overdue_alert_share: float = Field(gt=0, le=1)  # a region's overdue share of its cases that alerts

    def origin(self, name: str) -> OriginConfig:
        return getattr(self.origins, name)

    def enabled(self) -> list[str]:
        return [name for name in ORIGINS if self.origin(name).enabled]


def load_cases_config(path: Path) -> CasesConfig:
    """The parsed file; a missing, unreadable or invalid one is a DataError naming the path and field."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CasesConfigError(f"{path}: cannot read the cases configuration ({e})") from e
    try:
        return CasesConfig.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise CasesConfigError(f"{path}: {problems}") from e
