# cbtflow: does fine-tuning a small open-weight model on synthetic CBT sessions make it a
# more faithful CBT therapist, and by how much?
#
#   profiles ─► synthetic courses ─► training set ─► adapters ─┐
#                                                               ├─► transcripts ─► CTRS scores ─► report
#   eval profiles ──────────────────────────────────────────────┘
#
# `snakemake --cores 2` runs the default experiment offline on the embedded model;
# `snakemake --configfile experiments/<name>.yaml` runs another.

from snakemake.utils import min_version

min_version("9.0")


# An experiment file given with --configfile replaces the default experiment instead of
# being merged into it (a merge would keep the default's models beside the experiment's).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/judge_card.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/report/report.md",
        "results/report/stats.json",
        "results/report/scores.parquet",
        "results/report/viewer/index.html",
