"""Score a set of transcripts with one judge, blinded and in a seeded shuffled order."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

from cbtflow.dialogue import render_transcript
from cbtflow.judge import lexicon as lexicon_judge
from cbtflow.judge import llm as llm_judge
from cbtflow.judge.rubric import item_ids, summarise
from cbtflow.llm import Client, Endpoint


def blind_text(transcript: dict[str, Any]) -> str:
    """What a judge sees: the turns with neutral labels, nothing about their origin."""
    return render_transcript(transcript["turns"])


def judge_transcripts(client: Client, transcripts: Sequence[dict[str, Any]], out_paths: Sequence[str],
                      judge: dict[str, Any], rubric: dict[str, Any], templates: dict[str, str],
                      lexicon: dict[str, Any] | None, seed: int) -> list[dict[str, Any]]:
    order = list(range(len(transcripts)))
    random.Random(seed).shuffle(order)  # position bias: no fixed order across conditions
    documents: list[dict[str, Any] | None] = [None] * len(transcripts)
    kind = judge["kind"]
    for index in order:
        transcript = transcripts[index]
        if kind == "lexicon":
            items = lexicon_judge.score_transcript(lexicon, transcript["turns"], item_ids(rubric))
        else:
            endpoint = Endpoint.from_spec(judge["endpoint"])
            text = blind_text(transcript)
            if endpoint.is_local:
                items = llm_judge.score_local(client, endpoint, rubric, text, templates["judge_item"])
            else:
                items = llm_judge.score_api(client, endpoint, rubric, text, templates["judge_all"],
                                            judge.get("sampling", {"temperature": 0.0, "max_tokens": 2048}),
                                            seed, int(judge.get("retries", 2)),
                                            Path(out_paths[index]).with_suffix(".raw.txt"))
        documents[index] = {
            "kind": "ctrs", "judge": judge["name"], "judge_kind": kind, "heuristic": kind == "lexicon",
            "rubric": rubric["name"], "profile_id": transcript["profile_id"], "model": transcript["model"],
            "condition": transcript["condition"], "seed": transcript["seed"],
            "transcript_tokens": transcript.get("n_tokens", 0), "transcript_turns": len(transcript["turns"]),
            "items": items, **summarise(rubric, {k: v["score"] for k, v in items.items()}),
        }
    return documents  # type: ignore[return-value]
