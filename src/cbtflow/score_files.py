"""``cbtflow score``: any transcript file, scored by a configured judge.

Researchers use it on sessions that were not made here, so it accepts a full transcript
document or the minimal ``{"turns": [{"role": "therapist"|"patient", "text": "..."}]}``
and writes one score document per input, naming the source file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from cbtflow.config import run_facts, validate_config
from cbtflow.io import read_json, write_json
from cbtflow.layout import judge_settings

ROLES = ("therapist", "patient")


def load_transcript_file(path: str | Path) -> dict[str, Any]:
    """A transcript a judge can read, from a full document or the minimal form."""
    try:
        doc = read_json(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("turns"), list) or not doc["turns"]:
        raise ValueError(
            f'{path}: needs a non-empty "turns" list: {{"turns": [{{"role": "therapist", "text": "..."}}]}}'
        )
    for number, turn in enumerate(doc["turns"]):
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("text"), str):
            raise ValueError(f'{path}: turns[{number}] needs "role" (therapist or patient) and a string "text"')
    return {
        "profile_id": str(doc.get("profile_id", Path(path).stem)),
        "model": str(doc.get("model", "unknown")),
        "condition": str(doc.get("condition", "unknown")),
        "seed": int(doc.get("seed", 0)),
        "risk_level": doc.get("risk_level", "none"),
        "n_tokens": int(doc.get("n_tokens", 0)),
        "eval_split": doc.get("eval_split"),
        "style": doc.get("style"),
        "turns": [{"role": t["role"], "text": t["text"]} for t in doc["turns"]],
    }


def score_files(
    files: Sequence[str], judge_name: str, configfile: str, out_dir: str, seed: int = 0, overwrite: bool = False
) -> list[Path]:
    """Score every file with the named judge; refuses to overwrite an existing score unless told."""
    from cbtflow.judge.run import check_transcript, judge_transcripts, load_job, packaged_files
    from cbtflow.runtime import client

    config = yaml.safe_load(Path(configfile).read_text(encoding="utf-8"))
    validate_config(config)
    judge = judge_settings(config, judge_name)
    transcripts = [load_transcript_file(f) for f in files]
    for path, transcript in zip(files, transcripts):
        check_transcript(transcript, str(path))
    outputs = [Path(out_dir) / f"{Path(f).stem}.json" for f in files]
    clashes = sorted({str(o) for o in outputs if outputs.count(o) > 1})
    if clashes:
        raise ValueError(f"two inputs would write the same score file {clashes}; rename one of them")
    existing = [str(o) for o in outputs if o.exists()]
    if existing and not overwrite:
        raise ValueError(f"score files exist already: {existing}; pass --overwrite or choose another -o")
    # The rule's own judging path: the same files, detectors and crisis scoring (judge.run).
    job = load_job(
        client(config["cache_dir"], config),
        judge,
        packaged_files(judge, run_facts(config)),
        config["judging"]["rubric_variant"],
    )
    documents = judge_transcripts(job, transcripts, [str(o) for o in outputs], seed)
    for path, document, source in zip(outputs, documents, files):
        write_json(path, {**document, "source_file": str(source)})
    return outputs
