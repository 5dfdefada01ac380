"""What the report is written from: every section reads these and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReportInputs:
    stats: dict[str, Any]  # stats.json: every number in the report comes from here
    primary_judge: str
    figures: dict[str, str]  # figure name -> PNG path
    usage: dict[str, dict[str, Any]]  # calls, tokens, cost and local replies' runs_as per stage
    train_logs: dict[str, dict[str, Any]]  # adapter -> train_log.json
    config_summary: str
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)  # judge cards by judge
    run_perturbations: dict[str, dict[str, Any]] = field(default_factory=dict)  # by judge

    @property
    def item_order(self) -> list[str]:
        return self.stats.get("item_order", [])
