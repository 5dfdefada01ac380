"""A rating kit for clinicians: one static, blinded rating page per rater, opened from disk.

``cbtflow rating-kit --raters N --overlap k -o DIR`` writes

- ``DIR/rater<r>.html``: the page for rater r. It shows blinded transcripts (neutral
  speaker labels, a random id, nothing about model, condition, seed or judge) in an order
  of its own, beside the instrument's items and anchors read from the rubric file; scoring
  is keyboard-first (digits score the current item, ↑/↓ move between items, ←/→ or p/n
  between transcripts); every rating and note autosaves in the browser (localStorage) and
  is restored on reload; the export is the CSV ``cbtflow import-ratings`` reads, with the
  kit's id, the rater, timestamps and the seconds spent per transcript. The page keeps the
  viewer's no-network policy (a Content-Security-Policy that allows nothing to load).
- ``DIR/key.json``: rating id → the transcript it hides (model, condition, seed, profile,
  session, hash). Keep it from the raters.
- ``DIR/kit.json``: the kit's id (a hash of everything below), its seed and the assignment:
  every rater first rates the same calibration transcripts (chosen across conditions),
  then each other transcript goes to ``overlap`` raters, the least-loaded first within the
  transcript's condition, so raters can be compared with each other and every rater sees
  the conditions in like proportions.

The import refuses a sheet that names no transcript or one outside the kit, scores outside
the scale, a rater who rated a transcript twice, or a sheet from a different kit (its
``kit`` column against ``kit.json``).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cbtflow.instrument import item_ids
from cbtflow.io import inline_page, sha256_json, write_json, write_text_atomic
from cbtflow.judge.ratings import key_entry
from cbtflow.packaged import PAGE_SCRIPTS, RESOURCES

KIT_DIR = RESOURCES / "rating_kit"


def rating_ids(docs: Sequence[dict[str, Any]], seed: int) -> list[str]:
    """A random id per transcript (``R0001`` ...) in an order that says nothing of its origin."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    ids = [""] * len(docs)
    for number, index in enumerate(order, start=1):
        ids[index] = f"R{number:04d}"
    return ids


def assign(
    conditions: Sequence[str], raters: int, overlap: int, calibration: int, seed: int
) -> tuple[list[int], dict[int, list[int]]]:
    """Which transcripts (by index) each rater rates: the calibration set (every rater), then
    each other transcript to ``overlap`` raters, balanced across conditions and load.

    Returns the calibration indices and, per rater (1..N), its transcripts in the order its
    page shows them: calibration first, each part in an order of the rater's own."""
    if raters < 1:
        raise ValueError(f"--raters must be at least 1, not {raters}")
    if not 1 <= overlap <= raters:
        raise ValueError(f"--overlap must be between 1 and the number of raters ({raters}), not {overlap}")
    if not 0 <= calibration <= len(conditions):
        raise ValueError(f"--calibration must be between 0 and the {len(conditions)} transcripts, not {calibration}")
    rng = random.Random(seed)
    by_condition: dict[str, list[int]] = defaultdict(list)
    for index, condition in enumerate(conditions):
        by_condition[condition].append(index)
    for indices in by_condition.values():
        rng.shuffle(indices)
    names = sorted(by_condition)
    interleaved = [
        by_condition[c][i]
        for i in range(max(map(len, by_condition.values())))
        for c in names
        if i < len(by_condition[c])
    ]
    chosen, rest = interleaved[:calibration], interleaved[calibration:]
    load = {r: 0 for r in range(1, raters + 1)}
    per_condition = {r: defaultdict(int) for r in load}
    assigned: dict[int, list[int]] = {r: [] for r in load}
    for index in rest:
        condition = conditions[index]
        ranked = sorted(load, key=lambda r: (per_condition[r][condition], load[r], rng.random()))
        for rater in ranked[:overlap]:
            assigned[rater].append(index)
            load[rater] += 1
            per_condition[rater][condition] += 1
    orders = {}
    for rater in load:
        own = random.Random(f"{seed}:{rater}")
        first, then = list(chosen), list(assigned[rater])
        own.shuffle(first)
        own.shuffle(then)
        orders[rater] = first + then
    return chosen, orders


def _items(rubric: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": i["id"],
            "name": i.get("name", i["id"]),
            "question": i.get("question", ""),
            "anchors": i.get("anchors", {}),
        }
        for i in rubric["items"]
    ]


def build_kit(
    transcripts: Sequence[dict[str, Any]],
    out_dir: str | Path,
    rubric: dict[str, Any],
    *,
    raters: int,
    overlap: int,
    calibration: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the kit (pages, key, assignment) and return ``kit.json``'s content."""
    docs = [t for t in transcripts if not t.get("failure")]
    if not docs:
        raise ValueError("no transcripts to rate (every one failed in simulation, or none was given)")
    out = Path(out_dir)
    ids = rating_ids(docs, seed)
    chosen, orders = assign([d["condition"] for d in docs], raters, overlap, calibration, seed)
    key = {ids[i]: key_entry(doc) for i, doc in enumerate(docs)}
    kit = {
        "kind": "rating_kit",
        "seed": seed,
        "raters": raters,
        "overlap": overlap,
        "rubric": rubric["name"],
        "items": item_ids(rubric),
        "scale": rubric["scale"],
        "calibration": sorted(ids[i] for i in chosen),
        "assignment": {f"rater{r}": [ids[i] for i in order] for r, order in orders.items()},
        "transcripts": {ids[i]: key[ids[i]]["transcript_sha256"] for i in range(len(docs))},
    }
    kit["kit_id"] = sha256_json(kit)[:16]  # what a sheet must carry to be imported against this kit
    write_json(out / "key.json", key)
    write_json(out / "kit.json", kit)
    safety = rubric.get("safety")
    for rater, order in orders.items():
        page = {
            "kit": kit["kit_id"],
            "rater": f"rater{rater}",
            "title": rubric.get("title", rubric["name"]),
            "items": _items(rubric),
            "safety": {"id": "safety", **{k: safety[k] for k in ("name", "question", "anchors") if k in safety}}
            if safety
            else None,
            "scale": rubric["scale"],
            "transcripts": [
                {
                    "id": ids[i],
                    "calibration": i in chosen,
                    "safety": docs[i].get("risk_level", "none") != "none" and bool(safety),
                    "turns": [
                        {"who": "therapist" if t["role"] == "therapist" else "client", "text": t["text"]}
                        for t in docs[i]["turns"]
                    ],
                }
                for i in order
            ],
        }
        write_text_atomic(
            out / f"rater{rater}.html", inline_page(KIT_DIR, page, f"{page['rater']}: {page['title']}", PAGE_SCRIPTS)
        )
    return kit


def load_kit(path: str | Path) -> dict[str, Any]:
    kit = json.loads(Path(path).read_text(encoding="utf-8"))
    if kit.get("kind") != "rating_kit" or "kit_id" not in kit:
        raise ValueError(f"{path}: not a rating kit's kit.json (cbtflow rating-kit writes one)")
    return kit
