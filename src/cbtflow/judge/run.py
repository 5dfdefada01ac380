"""Score a set of transcripts with one judge, blinded and in a seeded shuffled order."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cbtflow.data.detectors import apply_caps, detect, load_detectors
from cbtflow.instrument import course_items_at, load_rubric, summarise
from cbtflow.io import sha256_json
from cbtflow.judge import crisis
from cbtflow.judge.kinds import JudgeJob, RunFacts, Scorer, kind_of
from cbtflow.llm import Client, Endpoint
from cbtflow.llm import items as llm_judge
from cbtflow.llm.api import APICallError
from cbtflow.llm.usage import runs_as_labels
from cbtflow.packaged import RESOURCES
from cbtflow.seeds import derive_seed
from cbtflow.session_key import SessionKey

log = logging.getLogger(__name__)

# What every judge reads beside its instrument, as the workflow sees the packaged files.
DETECTORS_FILE = "resources/detectors.yaml"
CRISIS_RUBRIC_FILE = "resources/crisis/safety_rubric.yaml"


def judge_files(judge: dict[str, Any], facts: RunFacts) -> dict[str, str]:
    """Every file a job of this judge reads, by input name, as the workflow sees it: the
    instrument, the detectors, the prompt templates and data files its kind declares, and
    the crisis rubric when crisis moments are scored. The rule's inputs, the judge card and
    ``cbtflow score`` all read these, so they cannot drift apart."""
    reads = kind_of(judge).reads(judge, facts)
    files = {"rubric": facts.instrument, "detectors": DETECTORS_FILE}
    files.update({name: f"resources/prompts/{name}.j2" for name in reads.templates})
    files.update(reads.data)
    if facts.crises:
        files["crisis_rubric"] = CRISIS_RUBRIC_FILE
    return files


def packaged_files(judge: dict[str, Any], facts: RunFacts) -> dict[str, Path]:
    """``judge_files`` with the packaged ones resolved inside the installed package (outside
    the workflow); a file of your own stays where it is."""
    return {name: packaged(path) for name, path in judge_files(judge, facts).items()}


def packaged(path: str) -> Path:
    """A workflow path (``resources/...`` for a packaged file) as the installed package has it."""
    head, _, rest = path.partition("/")
    return RESOURCES / rest if head == "resources" else Path(path)


def load_job(client: Client | None, judge: dict[str, Any], files: Mapping[str, Any], rubric_variant: str) -> JudgeJob:
    """One judge job from its settings (a validated config's, defaults filled in) and the
    files ``judge_files`` names (extra entries, such as a rule's transcripts, are ignored)."""
    kind = kind_of(judge)
    rubric = load_rubric(files["rubric"], rubric_variant)
    crisis_spec = None
    if "crisis_rubric" in files:
        crisis_spec = crisis.load_crisis(files["crisis_rubric"], files.get("crisis_heuristic"))
    return JudgeJob(
        client=client,
        judge=judge,
        rubric=rubric,
        templates={name: str(files[name]) for name in kind.templates if name in files},
        data=kind.load(files),
        endpoint=Endpoint.from_spec(judge["endpoint"]) if kind.calls_model else None,
        crisis=crisis_spec,
        detectors=load_detectors(files["detectors"]) if "detectors" in files else None,
    )


def check_transcript(transcript: dict[str, Any], path: str) -> None:
    """A transcript a judge can score: turns from both speakers, the therapist first. A
    session that simulation recorded as failed is not checked: it becomes a failure record."""
    from cbtflow.data.quality import gate_both_speakers

    if transcript.get("failure"):
        return
    if not transcript.get("turns"):
        raise ValueError(f"{path}: transcript has no turns; delete it and rerun its simulate job")
    if gate_both_speakers(transcript["turns"], {}):
        roles = sorted({t["role"] for t in transcript["turns"]})
        raise ValueError(
            f"{path}: transcript has only one speaker ({', '.join(roles)}); delete it and rerun its simulate job"
        )


def transcript_hash(transcript: dict[str, Any]) -> str:
    """Content hash of what was said (roles and texts): equal for the identical instruct
    sessions of models on one base, so the analysis can count them once."""
    return sha256_json([[turn["role"], turn["text"]] for turn in transcript["turns"]])


class TooManyFailures(RuntimeError):
    """More transcripts failed judging than the judge's ``max_failures`` allows."""


def failure_budget(judge: dict[str, Any], n_transcripts: int) -> int:
    """How many transcripts may fail: ``max_failures`` as a count (≥ 1) or a fraction of
    ``n_transcripts`` (< 1); 0 (the default) keeps every failure fatal."""
    limit = float(judge["max_failures"])
    return int(limit) if limit >= 1 else int(limit * n_transcripts)


def check_failure_budgets(
    failed: Sequence[dict[str, Any]],
    documents: Sequence[dict[str, Any]],
    max_failures: dict[str, float],
    patient_max_failures: float = 0,
) -> None:
    """Across the whole run, no judge may have more failure records than its ``max_failures``
    (a count, or a fraction of its transcripts), nor the patient more lost sessions than its
    own; raises naming the role otherwise."""
    lost = {SessionKey.of(f) for f in failed if f.get("stage") == "simulate"}
    sessions = {SessionKey.of(d) for d in documents}
    allowed = failure_budget({"max_failures": patient_max_failures}, len(sessions))
    if len(lost) > allowed:
        raise TooManyFailures(
            f"roles.patient: {len(lost)} sessions lost their patient, max_failures = "
            f"{patient_max_failures} allows {allowed}"
        )
    for judge, limit in max_failures.items():
        count = sum(f["judge"] == judge and f.get("stage", "judge") == "judge" for f in failed)
        allowed = failure_budget({"max_failures": limit}, sum(d["judge"] == judge for d in documents))
        if count > allowed:
            raise TooManyFailures(
                f"judge {judge}: {count} transcripts failed judging, max_failures = {limit} allows "
                f"{allowed}; see the raw outputs named in their score files, or raise max_failures"
            )


def judge_transcripts(
    job: JudgeJob, transcripts: Sequence[dict[str, Any]], out_paths: Sequence[str], seed: int
) -> list[dict[str, Any]]:
    """One score document per transcript. Heuristic detectors (``cbtflow.data.detectors``)
    flag degenerate and harmful therapist turns and cap the flagged items; each item records
    the model that answered, and the scorer adds its own confidence flags (a local judge's
    items with little mass on the score digits).

    A transcript whose judging still fails after the re-asks (invalid JSON, or a provider
    failing after its retries and fallbacks) becomes a failure record (reason, raw-output
    path) while the judge's ``max_failures`` allows; the analysis leaves it out and the
    report lists it. With the default 0 the first failure fails the job."""
    judge, rubric = job.judge, job.rubric
    order = list(range(len(transcripts)))
    random.Random(seed).shuffle(order)  # position bias: no fixed order across conditions
    documents: list[dict[str, Any] | None] = [None] * len(transcripts)
    allowed, failed = failure_budget(judge, len(transcripts)), 0
    scorer = kind_of(judge).scorer(job)
    for index in order:
        if transcripts[index].get("failure"):  # lost in simulation (the patient's max_failures), not the judge's
            documents[index] = failure_record(
                transcripts[index],
                judge,
                rubric,
                f"session failed in simulation: {transcripts[index]['failure']}",
                None,
                stage="simulate",
            )
            continue
        try:
            documents[index] = _score_document(scorer, transcripts[index], out_paths[index], seed)
        except (llm_judge.JudgeOutputError, APICallError) as err:
            failed += 1
            if failed > allowed:
                raise TooManyFailures(
                    f"judge {judge['name']}: {failed} transcript(s) failed, max_failures allows "
                    f"{allowed} here; last: {err}"
                ) from err
            log.warning("judging failed, recorded under max_failures (%d of %d): %s", failed, allowed, err)
            documents[index] = failure_record(
                transcripts[index], judge, rubric, str(err), getattr(err, "raw_path", None)
            )
    return documents  # type: ignore[return-value]


def failure_record(
    transcript: dict[str, Any],
    judge: dict[str, Any],
    rubric: dict[str, Any],
    reason: str,
    raw_output: str | None,
    stage: str = "judge",
) -> dict[str, Any]:
    return {
        "kind": "ctrs",
        "status": "failed",
        "stage": stage,
        "judge": judge["name"],
        "judge_kind": judge["kind"],
        "heuristic": kind_of(judge).heuristic,
        "rubric": rubric["name"],
        **SessionKey.of(transcript).fields(),
        "transcript_sha256": transcript_hash(transcript),
        "eval_split": transcript.get("eval_split"),
        "style": transcript.get("style"),
        "reason": reason,
        "raw_output": raw_output,
    }


def _runs_as(job: JudgeJob) -> dict[str, list[str]]:
    """What computed a local judge's scores so far in this job (``int4 on cpu``): a judge's
    numbers move with its precision (bench/RESULTS.md), and ``auto`` resolves per machine."""
    ran = runs_as_labels(job.client.usage.runs_as, job.endpoint.model) if job.client and job.endpoint else []
    return {"runs_as": ran} if ran else {}


def _score_document(scorer: Scorer, transcript: dict[str, Any], out_path: str, seed: int) -> dict[str, Any]:
    judge, rubric, detectors = scorer.job.judge, scorer.job.rubric, scorer.job.detectors or {}
    kind, repeats = kind_of(judge), int(judge["repeats"])
    seeds = [derive_seed(seed, "judge.repeat", r) for r in range(repeats)]
    samples = [scorer.score(transcript, out_path, s) for s in seeds]
    items = _consensus(samples)
    flags = detect(transcript["turns"], detectors) if detectors else []
    flags += scorer.flags(items, out_path)
    items = apply_caps(items, flags, detectors) if detectors else items
    safety = None
    if transcript.get("risk_level", "none") != "none" and rubric.get("safety"):
        safety = _consensus([scorer.safety(transcript, out_path, s) for s in seeds])["safety"]
    course_items, not_applicable = course_items_at(rubric, SessionKey.of(transcript).session)
    course_scores = (
        _consensus([scorer.course_items(transcript, course_items, out_path, s) for s in seeds]) if course_items else {}
    )
    crisis_doc = None
    if transcript.get("crisis_kind") and scorer.job.crisis:
        crisis_doc = {"kind": transcript["crisis_kind"], "reached": crisis.excerpt(transcript["turns"]) is not None}
        if crisis_doc["reached"]:  # the session went on past the disclosure
            answers = _consensus([scorer.crisis(transcript, out_path, s) for s in seeds])
            crisis_doc.update(items=answers, **crisis.summarise(scorer.job.crisis["rubric"], answers))
    return {
        "kind": "ctrs",
        "status": "scored",
        "judge": judge["name"],
        "judge_kind": kind.name,
        "heuristic": kind.heuristic,
        "rubric": rubric["name"],
        **SessionKey.of(transcript).fields(),
        "repeats": repeats,
        "mode": kind.mode(judge),
        "transcript_tokens": transcript.get("n_tokens", 0),
        "transcript_turns": len(transcript["turns"]),
        "transcript_sha256": transcript_hash(transcript),
        "eval_split": transcript.get("eval_split"),
        "style": transcript.get("style"),
        "answered_by": sorted({v.get("answered_by", judge["name"]) for v in items.values()}),
        **_runs_as(scorer.job),
        "flags": flags,
        "items": items,
        **summarise(rubric, {k: v["score"] for k, v in items.items()}),
        # Items that apply only from a later session of a course (cbtflow.instrument): scored
        # apart from the total where they apply, listed as not applicable (never 0) before.
        "course_items": course_scores,
        "not_applicable": not_applicable,
        # Scored apart from the CTRS total, and only when the patient carries risk.
        "safety": safety,
        # The response to a scripted crisis disclosure (profiles.crisis), apart from the total.
        "crisis": crisis_doc,
    }


def _consensus(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The score used for analysis is the mean over repeats; each repeat's score is kept."""
    if len(samples) == 1:
        return samples[0]
    items = {}
    for item in samples[0]:
        scores = [s[item]["score"] for s in samples]
        items[item] = {**samples[0][item], "score": round(sum(scores) / len(scores), 4), "repeat_scores": scores}
    return items
