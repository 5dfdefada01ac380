"""Analysis over a course (``simulation.sessions`` > 1), the simulated patient still the unit.

- **The declared course-level primary** is the mean over sessions: each (judge, model,
  condition, seed, profile) course becomes one score, the mean of its sessions, and the
  headline runs on those exactly as on single sessions (``course_means``), so it
  generalises over patients and training runs in the same way.
- **Score by session** (means over profiles of profile means) and **the tuned − baseline
  effect per session**, each session's headline on its own.
- **The trajectory model**: each model's (profile, seed, session) differences,

      d = τ_session + b_profile + r_seed + c_(profile, seed) + ε

  with session as a fixed effect and the headline's variance sources (patients, training
  runs) plus the course itself (the sessions of one patient with one adapter share more
  than its patient and run), fitted by REML with Satterthwaite df. It reports each
  session's effect, the mean over sessions and the linear trend per session.
- **Course items** (the instrument's ``applies_from_session``): scored where they apply,
  counted where they do not.
- From the transcripts: the continuity detector (a heuristic, named as one), homework done,
  context tokens against score, and the simulated self-reports by session.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cbtflow.conditions import BASELINE, TUNED
from cbtflow.dialogue import THERAPIST
from cbtflow.session_key import SessionKey
from cbtflow.stats.descriptive import mean_ci
from cbtflow.stats.generalising import differences, headline_contrast, involves_training
from cbtflow.stats.paired import profile_contrast, skipped
from cbtflow.stats.units import PROFILE_UNIT, profile_means

PRIMARY = (
    "the mean over sessions: each course (judge × model × condition × seed × patient) is the mean of its "
    "sessions' scores, analysed as the one-session headline (patients and training runs, small-sample df)"
)
NOT_APPLICABLE_RULE = (
    "an item that applies only from a later session (the instrument's applies_from_session) is scored where it "
    "applies, stored as not applicable before, never as 0, and left out of every total: totals are over the items "
    "that apply at every session"
)
CONTINUITY_LABEL = (
    "heuristic detector (cbtflow.simulate.course.continuity): back-reference phrases in the therapist's first "
    "three turns, and reuse of the agreed homework's content words; not a judgement of the therapy"
)
_GROUP = ["judge", "heuristic", "model", "condition", "seed", "profile", "item", "repeat", "eval_split", "style"]


def has_course(frame: pd.DataFrame) -> bool:
    return "session" in frame and frame["session"].nunique() > 1


def course_means(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per course and item: the mean score over its sessions (the course primary).
    The transcript hash becomes the course's (its sessions' hashes in order), so courses
    that two models share (the instruct courses of one base) are still counted once."""
    keys = [c for c in _GROUP if c in frame]
    ordered = frame.sort_values("session")
    aggregations: dict[str, Any] = {"score": "mean", "session": "count"}
    for column in frame.columns:
        if column in keys or column in aggregations:
            continue
        if column == "transcript":
            aggregations[column] = lambda s: "+".join(s.dropna().astype(str)) or None
        elif column == "answered_by":
            aggregations[column] = lambda s: "+".join(sorted(set(s.dropna().astype(str)))) or None
        elif pd.api.types.is_numeric_dtype(frame[column]):
            aggregations[column] = "sum" if column.endswith(("_flags", "_items", "not_applicable")) else "mean"
        else:
            aggregations[column] = "first"
    means = ordered.groupby(keys, dropna=False, as_index=False, sort=True).agg(aggregations)
    return means.rename(columns={"session": "n_sessions"}).assign(session=0)


def _by_session(totals: pd.DataFrame) -> dict[str, Any]:
    """Mean (95% CI) over profiles of profile means, per model × condition × session."""
    out: dict[str, Any] = {}
    for session, rows in totals.groupby("session"):
        for (model, condition), g in profile_means(rows).groupby(["model", "condition"]):
            out.setdefault(str(model), {}).setdefault(str(condition), {})[str(int(session))] = mean_ci(
                g["score"].to_numpy()
            )
    return out


def _effect_by_session(totals: pd.DataFrame, tuned: str, baseline: str) -> dict[str, Any]:
    """Each session's tuned − baseline, per model and pooled, as the headline computes it."""
    out: dict[str, Any] = {}
    for session, rows in totals.groupby("session"):
        blocks = profile_contrast(rows, tuned, baseline)
        headline = headline_contrast(rows, tuned, baseline, blocks)
        out[str(int(session))] = {
            model: {k: block.get(k) for k in ("estimate", "ci95", "p", "df", "n_profiles", "generalises_over")}
            for model, block in headline.items()
        }
    return out


def _trajectory_table(totals: pd.DataFrame, tuned: str, baseline: str) -> dict[str, pd.DataFrame]:
    """Per model: (profile, seed, session, d) differences against its own baseline."""
    out: dict[str, list[pd.DataFrame]] = {}
    for session, rows in totals.groupby("session"):
        for model, (frame, _) in differences(rows, tuned, baseline).items():
            out.setdefault(model, []).append(frame.assign(session=int(session)))
    return {model: pd.concat(frames, ignore_index=True) for model, frames in out.items()}


def trajectory_fit(frame: pd.DataFrame) -> dict[str, Any]:
    """The trajectory model above on one model's (profile, seed, session, d) table."""
    import statsmodels.formula.api as smf

    from cbtflow.stats.mixed import best_fit, satterthwaite_inputs
    from cbtflow.stats.satterthwaite import contrast, gls_beta

    sessions = sorted(frame["session"].unique())
    if len(sessions) < 2 or frame["profile"].nunique() < 3:
        return skipped("needs at least 2 sessions and 3 profiles")
    data = frame.assign(
        one=1,
        profile=frame["profile"].astype(str),
        seed=frame["seed"].astype(str),
        course=frame["profile"].astype(str) + "|" + frame["seed"].astype(str),
    )
    components = {"profile": "0 + C(profile)"}
    if data["seed"].nunique() >= 2:
        components.update(adapter_run="0 + C(seed)", course="0 + C(course)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = best_fit(smf.mixedlm("d ~ 0 + C(session)", data, groups="one", re_formula="0", vc_formula=components))
            model, theta, free = satterthwaite_inputs(fit)
            beta = gls_beta(model, theta)
        except (ValueError, np.linalg.LinAlgError) as err:
            return skipped(f"the trajectory model failed to fit: {err}")
        names = list(fit.fe_params.index)

        def effect(weights: Sequence[float]) -> dict[str, Any]:
            c = contrast(model, theta, free, np.asarray(weights, float), beta)
            return {"estimate": c.estimate, "se": c.se, "df": c.df, "p": c.p, "ci95": list(c.ci95)}

        k = len(names)
        centred = np.array(sessions, float) - np.mean(sessions)
        try:
            per_session = {str(int(s)): effect(np.eye(k)[i]) for i, s in enumerate(sessions)}
            mean = effect(np.full(k, 1.0 / k))
            trend = effect(centred / (centred**2).sum())
        except ValueError as err:
            return skipped(f"the trajectory model is degenerate: {err}")
    return {
        "ran": True,
        "formula": "d ~ 0 + session + (1 | profile)"
        + (" + (1 | adapter run) + (1 | profile:adapter run)" if "course" in components else ""),
        "n_differences": int(len(frame)),
        "n_profiles": int(frame["profile"].nunique()),
        "n_adapter_runs": int(frame["seed"].nunique()),
        "effect_by_session": per_session,
        "mean_over_sessions": mean,
        "trend_per_session": trend,
        "variance_components": dict(zip([*model.names, "residual"], map(float, theta))),
        "boundary": [n for n, f in zip(model.names, free[:-1]) if not f],
        "fixed_effects": dict(zip(names, map(float, beta))),
        "inference": "REML, Satterthwaite df, t-based CIs (components at zero held fixed)",
    }


def _course_items(jframe: pd.DataFrame, course_ids: Sequence[str]) -> dict[str, Any]:
    rows = jframe[jframe["item"].isin(course_ids)]
    totals = jframe[jframe["item"] == "total"]
    not_applicable = (
        {str(int(s)): int(g["not_applicable"].fillna(0).sum()) for s, g in totals.groupby("session")}
        if "not_applicable" in totals
        else {}
    )
    return {
        "rule": NOT_APPLICABLE_RULE,
        "not_applicable_by_session": not_applicable,
        "scored_by_session": {str(int(s)): int(len(g)) for s, g in rows.groupby("session")},
        "by_item": {str(item): _by_session(g) for item, g in rows.groupby("item")},
    }


def course_analysis(
    jframe: pd.DataFrame, course_ids: Sequence[str], tuned: str = TUNED, baseline: str = BASELINE
) -> dict[str, Any]:
    """One judge's course section (its rows across sessions, before ``course_means``)."""
    totals = jframe[jframe["item"] == "total"]
    pair = {tuned, baseline} <= set(totals["condition"])
    trajectories = _trajectory_table(totals, tuned, baseline) if pair and involves_training(tuned, baseline) else {}
    return {
        "ran": True,
        "primary": PRIMARY,
        "unit": PROFILE_UNIT,
        "sessions": sorted(int(s) for s in totals["session"].unique()),
        "by_session": _by_session(totals),
        "effect_by_session": _effect_by_session(totals, tuned, baseline) if pair else skipped("no cbt vs instruct"),
        "trajectory": (
            {model: trajectory_fit(frame) for model, frame in trajectories.items()}
            if trajectories
            else skipped(f"needs '{tuned}' and '{baseline}' scored in every session")
        ),
        "course_items": _course_items(jframe, course_ids),
    }


def transcript_course_table(transcripts: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per transcript: its key, the context the therapist had (the largest prompt of
    its turns, in tokens), the continuity detector's reading and the patient's state."""
    rows = []
    for doc in transcripts:
        if doc.get("failure"):
            continue
        therapist_prompts = [t.get("prompt_tokens", 0) for t in doc["turns"] if t["role"] == THERAPIST]
        state, reading = doc.get("patient_state") or {}, doc.get("continuity") or {}
        rows.append(
            {
                **SessionKey.of(doc).row(),
                "context_tokens": max(therapist_prompts, default=0),
                "refers_back": reading.get("refers_back"),
                "refers_to_homework": reading.get("refers_to_homework"),
                "homework_agreed": state.get("agreed") is not None if state else None,
                "homework_done": state.get("homework_done"),
                "mood_level": state.get("mood_level"),
            }
        )
    return pd.DataFrame(rows)


def _shares(table: pd.DataFrame, column: str) -> dict[str, Any]:
    known = table[table[column].notna()]
    out: dict[str, Any] = {}
    for (model, condition, session), g in known.groupby(["model", "condition", "session"]):
        out.setdefault(str(model), {}).setdefault(str(condition), {})[str(int(session))] = {
            "n": int(len(g)),
            "share": float(g[column].astype(bool).mean()),
        }
    return out


def course_transcripts(
    transcripts: Sequence[dict[str, Any]], scores: pd.DataFrame | None, outcome_rows: pd.DataFrame | None
) -> dict[str, Any]:
    """What only the transcripts hold: continuity, homework, context tokens against the
    primary judge's totals, and the self-reports by session."""
    table = transcript_course_table(transcripts)
    if table.empty or table["session"].nunique() < 2:
        return skipped("one session per patient (simulation.sessions: 1)")
    later = table[table["session"] > 1]
    result: dict[str, Any] = {
        "ran": True,
        "continuity": {
            "label": CONTINUITY_LABEL,
            "refers_back": _shares(later, "refers_back"),
            "refers_to_homework": _shares(later[later["homework_agreed"] == True], "refers_to_homework"),  # noqa: E712
        },
        "homework_done": _shares(later[later["homework_agreed"] == True], "homework_done"),  # noqa: E712
        "context_tokens_by_session": {
            str(int(s)): mean_ci(g["context_tokens"].to_numpy(float)) for s, g in table.groupby("session")
        },
    }
    if scores is not None and not scores.empty:
        keys = ["model", "condition", "seed", "profile", "session"]
        joined = table.merge(scores[[*keys, "score"]], on=keys)
        result["score_vs_context_tokens"] = (
            {
                "n": int(len(joined)),
                "spearman": float(joined["score"].corr(joined["context_tokens"], method="spearman")),
                "points": joined[["context_tokens", "score", "session", "condition"]].to_dict("records"),
            }
            if len(joined) > 2 and joined["context_tokens"].nunique() > 1
            else skipped("too few transcripts with varying context to relate score and context")
        )
    if outcome_rows is not None and not outcome_rows.empty:
        result["self_reports_by_session"] = {
            str(measure): _by_session(g) for measure, g in outcome_rows.groupby("measure", sort=False)
        }
    return result
