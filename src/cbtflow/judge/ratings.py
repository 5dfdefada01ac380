"""Human CTRS ratings: export blinded transcripts and a rating sheet, import the sheet.

Raters see each transcript under a random id with neutral speaker labels; the key that
maps ids back to model, condition and seed is written apart and must not be shown to
them. The imported sheet becomes a scores table (judge ``human:<rater>``) that the report
compares with each judge apart (ICC on the total, weighted κ per item); the key carries
each transcript's hash so that human and judge scores meet on the same transcript.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import polars as pl

from cbtflow.dialogue import render_transcript
from cbtflow.instrument import item_ids, summarise
from cbtflow.io import write_json, write_text_atomic
from cbtflow.judge.run import transcript_hash
from cbtflow.judge.scores import scores_table
from cbtflow.session_key import SessionKey

SHEET_FIXED = ["rating_id", "rater"]


def export_ratings(transcript_paths: list[Path], out_dir: str | Path, rubric: dict[str, Any], seed: int = 0) -> int:
    out = Path(out_dir)
    docs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in transcript_paths]
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)  # raters must not infer the condition from the order
    key, rows = {}, []
    for number, index in enumerate(order, start=1):
        doc, rating_id = docs[index], f"R{number:04d}"
        write_text_atomic(out / "transcripts" / f"{rating_id}.txt", render_transcript(doc["turns"]) + "\n")
        key[rating_id] = {
            **{k: doc[k] for k in ("model", "condition", "seed", "profile_id", "risk_level")},
            "transcript_sha256": transcript_hash(doc),  # so human and judge scores meet on the same transcript
        }
        rows.append(
            {
                "rating_id": rating_id,
                "rater": "",
                **dict.fromkeys(item_ids(rubric), ""),
                "safety": "" if doc.get("risk_level", "none") != "none" else "n/a",
            }
        )
    write_json(out / "key.json", key)
    header = SHEET_FIXED + item_ids(rubric) + ["safety"]
    lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in rows]
    write_text_atomic(out / "sheet.csv", "\n".join(lines) + "\n")
    return len(rows)


def import_ratings(sheet: str | Path, key_path: str | Path, rubric: dict[str, Any]) -> pl.DataFrame:
    """Read a filled sheet into a scores table; every bad cell is named by row and column."""
    key = json.loads(Path(key_path).read_text(encoding="utf-8"))
    lo, hi = int(rubric["scale"]["min"]), int(rubric["scale"]["max"])
    documents, problems = [], []
    with open(sheet, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            where = f"{sheet}, line {line}"
            if not row.get("rater"):
                continue  # not rated yet
            if row["rating_id"] not in key:
                problems.append(f"{where}: unknown rating_id {row['rating_id']!r}")
                continue
            items = {}
            for item in item_ids(rubric):
                value = (row.get(item) or "").strip()
                if not value.isdigit() or not lo <= int(value) <= hi:
                    problems.append(f"{where}, column {item}: {value!r} is not an integer {lo}-{hi}")
                    continue
                items[item] = {"score": int(value)}
            if len(items) != len(item_ids(rubric)):
                continue
            origin = key[row["rating_id"]]
            safety_cell = (row.get("safety") or "").strip()
            documents.append(
                {
                    "judge": f"human:{row['rater']}",
                    "heuristic": False,
                    **SessionKey.of(origin).fields(),
                    "transcript_sha256": origin.get("transcript_sha256"),
                    "items": items,
                    "safety": {"score": int(safety_cell)} if safety_cell.isdigit() else None,
                    **summarise(rubric, {k: v["score"] for k, v in items.items()}),
                }
            )
    if problems:
        raise ValueError("rating sheet has problems:\n  " + "\n  ".join(problems))
    if not documents:
        raise ValueError(f"{sheet}: no rated rows (fill in the rater column and every item)")
    return scores_table(documents)
