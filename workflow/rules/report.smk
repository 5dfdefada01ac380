# Scores table, statistics, figures and report.md (plus `snakemake --report report.zip`).

FIGURES = [
    "paired_totals",
    "item_heatmap",
    "judge_distributions",
    "loss_curves",
    "usage",
    "sensitivity",
    "judge_confusion",
    "course_trajectory",
]
EVAL_SPLIT_MEANING = {
    "held_out": "no eval profile shares a core belief, intermediate belief or automatic thought with training",
    "in_distribution": "eval profiles draw on the same conceptualisations as training, as the study likely did",
    "both": "half held out, half in-distribution; the primary results are also given per split",
}


rule report:
    input:
        scores=SCORE_DOCS,
        adapters=(
            expand("results/adapters/{model}/seed{seed}", model=MODELS, seed=SEEDS)
            if any(CONDITION_TABLE[c].adapter for c in CONDITIONS)
            else []
        ),
        human=config["report"].get("human_ratings", []),
        # Simulated self-reports (simulation.measures) and a course's patient state,
        # memory and continuity readings live in the transcripts.
        transcripts=(TRANSCRIPTS if config["simulation"]["measures"] or len(SESSIONS) > 1 else []),
        measures=measure_files(),
        cards=expand("results/judge_cards/{judge}.json", judge=JUDGES),
        run_perturbations=expand("results/judge_cards/{judge}.run.json", judge=JUDGES),
        rubric=INSTRUMENT,
        usage=expand("results/usage/courses/{generator}.json", generator=GENERATOR)
        + [
            job_usage("simulate", m, c, s, n)
            for m in MODELS
            for c in CONDITIONS
            for s in SEEDS
            for n in SESSIONS
        ]
        + [
            job_usage("judge", m, c, s, n, j)
            for j in JUDGES
            for m in MODELS
            for c in CONDITIONS
            for s in SEEDS
            for n in SESSIONS
        ],
    output:
        scores="results/report/scores.parquet",
        stats="results/report/stats.json",
        report="results/report/report.md",
        figures=[
            report(
                f"results/report/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURES
        ],
    log:
        "logs/report/report.log",
    conda:
        software_env("report")
    params:
        primary_judge=config["report"]["primary_judge"],
        rubric_variant=config["judging"]["rubric_variant"],
        max_failures={judge: spec["max_failures"] for judge, spec in config["judges"].items()},
        patient_max_failures=config["roles"]["patient"]["max_failures"],
        threshold=config["report"].get("competence_threshold"),  # unset: the rubric's own
        families=config["report"].get("multiplicity_families"),
        require_valid_judge=config["report"]["require_valid_judge"],  # unset: primary + one per other contrast
        summary=lambda wc: (
            f"Models: {', '.join(MODELS)}; conditions: {', '.join(CONDITIONS)}; "
            f"seeds: {', '.join(map(str, SEEDS))}; eval profiles: {len(EVAL_IDS)} "
            f"(eval split: {config['profiles'].get('eval_split', 'held_out')}: "
            f"{EVAL_SPLIT_MEANING[config['profiles'].get('eval_split', 'held_out')]}); "
            f"judges: {', '.join(JUDGES)}."
            + (
                f" Courses: {len(SESSIONS)} sessions per patient, therapist memory: "
                f"{config['simulation']['memory']}."
                if len(SESSIONS) > 1
                else ""
            )
        ),
    script:
        "../../scripts/report.py"


# The transcript viewer: one static page over the same transcripts and score documents.
rule viewer:
    input:
        transcripts=TRANSCRIPTS,
        scores=SCORE_DOCS,
        cards=expand("results/judge_cards/{judge}.json", judge=JUDGES),
        rubric=INSTRUMENT,
    output:
        report(
            "results/report/viewer/index.html",
            caption="../report/viewer.rst",
            category="Transcript viewer",
        ),
    log:
        "logs/report/viewer.log",
    conda:
        software_env("report")
    params:
        rubric_variant=config["judging"]["rubric_variant"],
        primary_judge=config["report"]["primary_judge"],
        title=config.get("experiment", "default experiment"),
    script:
        "../../scripts/viewer.py"
