"""Rule report: scores table, statistics, figures and report.md."""

import io
from pathlib import Path

import polars as pl

from cbtflow.instrument import competence_threshold, item_ids, load_rubric
from cbtflow.io import read_json, write_bytes_atomic, write_json
from cbtflow.judge.run import check_failure_budgets
from cbtflow.judge.scores import failures, read_scores, scores_table
from cbtflow.report import figures as plot
from cbtflow.report.build import write_report
from cbtflow.report.sections.usage import usage_by_stage
from cbtflow.runtime import setup
from cbtflow.simulate.measures import load_measure
from cbtflow.stats.document import stats_document

log = setup(snakemake.log[0])
out = snakemake.output
cards = {read_json(p)["judge"]: read_json(p) for p in snakemake.input.cards}
primary_card = cards.get(snakemake.params.primary_judge)
if snakemake.params.require_valid_judge and primary_card and not primary_card["passed"]:
    failed = [k for k, v in primary_card["verdicts"].items() if v.get("required") and not v["passed"]]
    raise SystemExit(
        f"report.require_valid_judge: the primary judge '{snakemake.params.primary_judge}' failed its card "
        f"({', '.join(failed)}; results/judge_cards/{snakemake.params.primary_judge}.json); nothing was reported"
    )
documents = [read_json(p) for p in snakemake.input.scores]
failed = failures(documents)
check_failure_budgets(
    failed, documents, snakemake.params.max_failures, snakemake.params.patient_max_failures
)  # the run fails past any judge's budget
scores = scores_table(documents)
if snakemake.input.human:  # human ratings join the judges: the reliability section then shows judge-human ICC
    scores = pl.concat([scores, read_scores(snakemake.input.human)], how="diagonal_relaxed").select(scores.columns)
buffer = io.BytesIO()
scores.write_parquet(buffer)
write_bytes_atomic(out.scores, buffer.getvalue())
rubric = load_rubric(snakemake.input.rubric, snakemake.params.rubric_variant)
threshold = competence_threshold(rubric, snakemake.params.threshold)
stats = stats_document(
    scores,
    threshold=threshold,
    item_order=item_ids(rubric),
    documents=documents,
    transcripts=[read_json(p) for p in snakemake.input.transcripts],
    measures={Path(f).stem: load_measure(f) for f in snakemake.input.measures},
    primary_judge=snakemake.params.primary_judge,
    families=snakemake.params.families,
)
write_json(out.stats, stats)
train_logs = {
    f"{Path(a).parent.name}/{Path(a).name}": read_json(f"{a}/train_log.json") for a in snakemake.input.adapters
}
usage = usage_by_stage([read_json(p) for p in snakemake.input.usage])
figures = {Path(f).stem: f for f in out.figures}
primary = snakemake.params.primary_judge
plot.fig_paired_totals(scores, primary, Path(figures["paired_totals"]))
plot.fig_item_heatmap(stats, primary, Path(figures["item_heatmap"]))
plot.fig_judge_distributions(scores, Path(figures["judge_distributions"]))
plot.fig_loss_curves(train_logs, Path(figures["loss_curves"]))
plot.fig_usage(usage, Path(figures["usage"]))
plot.fig_sensitivity(stats["robustness"], Path(figures["sensitivity"]))
plot.fig_judge_confusion(stats["human_agreement"], Path(figures["judge_confusion"]))
plot.fig_course_trajectory(stats, primary, Path(figures["course_trajectory"]))
write_report(
    out.report,
    stats=stats,
    primary_judge=primary,
    figures=figures,
    usage=usage,
    train_logs=train_logs,
    config_summary=snakemake.params.summary,
    cards=cards,
    run_perturbations={read_json(p)["judge"]: read_json(p) for p in snakemake.input.run_perturbations},
)
log.info("report written to %s", out.report)
