"""The one markdown-table helper every section writes its tables with."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A header, its rule and one line per row (cells as given, already formatted)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def per_model_condition(
    header: Sequence[str], by_model: dict[str, dict[str, Any]], cells: Callable[[dict[str, Any]], list[Any]]
) -> list[str]:
    """One row per model × condition: ``model | condition | cells(v)``, then a blank line."""
    rows = ([m, c, *cells(v)] for m, per in by_model.items() for c, v in per.items())
    return markdown_table(["model", "condition", *header], rows) + [""]
