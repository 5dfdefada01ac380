"""The judge card in the report: what a judge measures, before the results it scores.

Known groups (the judge against therapist length on labelled sets), perturbations (does
each item respond to the behaviour it names; does padding move the total), the verdicts,
and the reliability the statistics computed (test-retest across repeats, agreement with
the other judges and with human raters where rated).
"""

from __future__ import annotations

from typing import Any

from cbtflow.report.format import ci as _ci
from cbtflow.report.format import fmt as _fmt
from cbtflow.report.sections.human import ceiling_sentence


def failed_line(cards: dict[str, dict[str, Any]], primary_judge: str) -> list[str]:
    """The report's first line when the primary judge's card fails."""
    card = cards.get(primary_judge)
    if not card or card.get("passed"):
        return []
    failed = [name for name, v in card["verdicts"].items() if v.get("required") and not v["passed"]]
    return [
        f"**The primary judge `{primary_judge}` failed its judge card ({', '.join(failed)}): read every result "
        "below as unvalidated.**",
        "",
    ]


def _estimate(cell: dict[str, Any]) -> str:
    return f"{_fmt(cell['estimate'])} {_ci(cell['ci95'] if cell['ci95'][0] is not None else None)}"


def _reliability(judge: str, result: dict[str, Any], stats: dict[str, Any]) -> list[str]:
    def total_icc(block: dict[str, Any]) -> str:
        total = (block or {}).get("total") or {}
        return _fmt(total["icc2_single"]["icc"]) if total.get("ran") else "not run"

    repeats, judges = result.get("reliability_across_repeats"), stats.get("reliability_across_judges")
    lines = [
        f"- Test-retest (ICC(2,1) of the total across repeats): {total_icc(repeats)}",
        f"- Agreement with the other judges (ICC(2,1) of the total): {total_icc(judges)}",
    ]
    humans = ((stats.get("human_agreement") or {}).get("by_judge") or {}).get(judge, {})
    for rater, entry in humans.items():
        lines.append(f"- Agreement with human rater {rater} (ICC(A,1) of the total): {total_icc(entry)}")
    if not humans:
        lines.append("- Agreement with human raters: none rated (report.human_ratings)")
    relative = ceiling_sentence(stats.get("human_agreement") or {}, judge)
    if relative:
        lines.append(f"- Against the human ceiling: {relative}")
    return lines


def _perturbation_table(perturbations: dict[str, Any], intro: str) -> list[str]:
    lines = [
        intro,
        "",
        "| perturbation | kind | should lower | n sessions | change of those items [95% CI] "
        "| other items, mean abs. change | change of the total [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in perturbations.items():
        targets = "; ".join(f"{i} {_fmt(e['items'][i]['mean'])} {_ci(e['items'][i]['ci95'])}" for i in e["lowers"])
        lines.append(
            f"| {name} | {e['kind']} | {', '.join(e['lowers']) or '—'} | {e['n_sessions']} | {targets or '—'} | "
            f"{_fmt(e.get('off_target_mean_abs_change'))} | {_fmt(e['total']['mean'])} {_ci(e['total']['ci95'])} |"
        )
    return lines


def card_lines(
    card: dict[str, Any] | None, result: dict[str, Any], stats: dict[str, Any], run: dict[str, Any] | None = None
) -> list[str]:
    """One judge's card as a report subsection (``run``: its perturbations on this run's transcripts)."""
    if not card:
        return []
    status = "passed" if card["passed"] else "**FAILED**"
    lines = [
        f"### Judge card: what `{card['judge']}` measures ({status}; results/judge_cards/{card['judge']}.json)",
        "",
        "Known groups: can the judge tell the better sessions of a labelled set from the worse, beyond what "
        "therapist length alone tells? (`authored`: our own written pairs, synthetic; see "
        "resources/reference/authored.yaml.)",
        "",
        "| set | labels | n | statistic | judge [95% CI] | length controlled [95% CI] | length alone [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in card["reference_sets"].items():
        lines.append(
            f"| {name} | {r['label']} | {r['n']} | {r['statistic']} | {_estimate(r['judge'])} | "
            f"{_estimate(r['length_controlled'])} | {_estimate(r['length_alone'])} |"
        )
    lines += [
        "",
        *_perturbation_table(
            card["perturbations"],
            "Perturbations (resources/perturbations.yaml) of the better sessions: a targeted one should lower the "
            "items it names and leave the others; an invariance should change nothing.",
        ),
    ]
    if run:
        lines += [
            "",
            *_perturbation_table(
                run["perturbations"],
                f"The same perturbations on {len(run['transcripts'])} of this run's own eval transcripts "
                f"(results/judge_cards/{card['judge']}.run.json):",
            ),
        ]
    lines += ["", "Verdicts:", ""]
    for name, v in card["verdicts"].items():
        mark = "passed" if v["passed"] else ("**FAILED**" if v.get("required") else "not met")
        lines.append(f"- {name.replace('_', ' ')}: {mark} ({v['rule']})")
    return lines + _reliability(card["judge"], result, stats) + [""]
