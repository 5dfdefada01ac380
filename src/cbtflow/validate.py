"""Validate any artifact against its JSON Schema in ``workflow/schemas/``, by its kind.

The kind is read from the document's ``kind`` field, or inferred from the path for files
that have none (profiles, dataset rows, the scores table).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cbtflow.config import load_schema, schema_errors

# Files that transformers, peft and datasets write beside ours; their formats are theirs.
FOREIGN_FILES = {
    "adapter_config.json",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "dataset_dict.json",
    "dataset_info.json",
    "state.json",
    "special_tokens_map.json",
}
KIND_BY_NAME = {
    "train_log.json": "train_log",
    "provenance.json": "provenance",
    "stats.json": "stats",
    "base.json": "base",
}


def infer_kind(path: Path, document: Any) -> str:
    if isinstance(document, dict) and "kind" in document:
        return document["kind"]
    if path.name in KIND_BY_NAME:
        return KIND_BY_NAME[path.name]
    if path.name.endswith(".stats.json"):
        return "dataset_stats"
    if "usage" in path.parts:
        return "usage"
    raise ValueError(f"{path}: cannot tell what kind of artifact this is")


def _load_rows(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def validate_path(path: str | Path) -> list[str]:
    """Problems found in ``path`` (empty when valid). Directories validate their known files."""
    path = Path(path)
    if path.is_dir():
        problems = []
        for child in sorted(path.rglob("*")):
            ours = child.suffix in {".json", ".jsonl", ".parquet"} and child.name not in FOREIGN_FILES
            if child.is_file() and ours and ".partial" not in str(child):
                problems += validate_path(child)
        return problems
    if path.suffix == ".parquet":
        from cbtflow.judge.scores import SCHEMA, read_scores

        try:
            frame = read_scores(str(path))
        except ValueError as err:
            return [str(err)]
        return [f"{path}: column {c} missing" for c in SCHEMA if c not in frame.columns]
    if path.suffix == ".jsonl":
        kind = "profile" if "profiles" in path.parts else "dataset_row"
        schema = load_schema(kind)
        problems = []
        for number, row in enumerate(_load_rows(path), start=1):
            problems += schema_errors(row, schema, root=f"{path}:{number}")
        return problems
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return [f"{path}: not valid JSON ({err})"]
    try:
        kind = infer_kind(path, document)
    except ValueError as err:
        return [str(err)]
    return schema_errors(document, load_schema(kind), root=str(path))
