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
from collections.abc import Sequence
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


def key_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """What the key (kept from raters) records of one blinded transcript."""
    return {
        **SessionKey.of(doc).fields(),
        "risk_level": doc.get("risk_level", "none"),
        "transcript_sha256": transcript_hash(doc),  # so human and judge scores meet on the same transcript
    }


def export_ratings(transcript_paths: list[Path], out_dir: str | Path, rubric: dict[str, Any], seed: int = 0) -> int:
    out = Path(out_dir)
    docs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in transcript_paths]
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)  # raters must not infer the condition from the order
    key, rows = {}, []
    for number, index in enumerate(order, start=1):
        doc, rating_id = docs[index], f"R{number:04d}"
        write_text_atomic(out / "transcripts" / f"{rating_id}.txt", render_transcript(doc["turns"]) + "\n")
        key[rating_id] = key_entry(doc)
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


def import_ratings(
    sheets: str | Path | Sequence[str | Path],
    key_path: str | Path,
    rubric: dict[str, Any],
    kit: dict[str, Any] | None = None,
) -> pl.DataFrame:
    """Read filled sheets (one, or a rating kit's one per rater) into one scores table; every
    bad cell is named by sheet, row and column.

    Refused, naming the line: a row with no rating id or one the key does not hold, a score
    that is not an integer on the rubric's scale, and a rater who rated one transcript
    twice (within a sheet or across the sheets given), and a sheet with no rated row (an
    import that silently left a rater out would shrink every agreement). With a rating kit (``kit``, its
    ``kit.json``) a sheet must also carry that kit's id in its ``kit`` column: a sheet
    exported from another kit is refused."""
    key = json.loads(Path(key_path).read_text(encoding="utf-8"))
    paths = [sheets] if isinstance(sheets, (str, Path)) else list(sheets)
    documents: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for sheet in paths:
        before = len(problems)
        rated = _read_sheet(Path(sheet), key, rubric, kit, seen, problems)
        if not rated and len(problems) == before:  # a sheet given is a sheet expected to hold ratings
            problems.append(f"{sheet}: no rated rows (fill in the rater column and every item)")
        documents += rated
    if problems:
        raise ValueError("rating sheet has problems:\n  " + "\n  ".join(problems))
    return scores_table(documents)


def _read_sheet(
    sheet: Path,
    key: dict[str, Any],
    rubric: dict[str, Any],
    kit: dict[str, Any] | None,
    seen: dict[tuple[str, str], str],
    problems: list[str],
) -> list[dict[str, Any]]:
    """One sheet's rated rows as score documents; its problems are appended to ``problems``
    and ``seen`` (rater, rating id) -> where, across every sheet of the import."""
    lo, hi = int(rubric["scale"]["min"]), int(rubric["scale"]["max"])
    documents = []
    with open(sheet, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            where = f"{sheet}, line {line}"
            if not row.get("rater"):
                continue  # not rated yet
            if kit is not None and (row.get("kit") or "").strip() != kit["kit_id"]:
                problems.append(
                    f"{where}: kit {row.get('kit')!r} is not this kit's {kit['kit_id']!r} "
                    "(rule: a sheet is imported with the key and kit.json of the kit it was exported from)"
                )
                continue
            rating_id = (row.get("rating_id") or "").strip()
            if not rating_id:
                problems.append(f"{where}: no rating_id (rule: every rated row names its transcript)")
                continue
            if rating_id not in key:
                problems.append(f"{where}: unknown rating_id {rating_id!r} (rule: the key holds every transcript)")
                continue
            if (row["rater"], rating_id) in seen:
                problems.append(
                    f"{where}: rater {row['rater']!r} rated {rating_id} twice (first at "
                    f"{seen[(row['rater'], rating_id)]}; rule: one rating per rater and transcript)"
                )
                continue
            seen[(row["rater"], rating_id)] = where
            items = {}
            for item in item_ids(rubric):
                value = (row.get(item) or "").strip()
                if not value.isdigit() or not lo <= int(value) <= hi:
                    problems.append(f"{where}, column {item}: {value!r} is not an integer {lo}-{hi}")
                    continue
                items[item] = {"score": int(value)}
            if len(items) != len(item_ids(rubric)):
                continue
            origin = key[rating_id]
            safety_cell = (row.get("safety") or "").strip()
            if safety_cell.isdigit() and not lo <= int(safety_cell) <= hi:
                problems.append(f"{where}, column safety: {safety_cell!r} is not an integer {lo}-{hi}")
                continue
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
    return documents
