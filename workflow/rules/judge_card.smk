# What each judge measures, before the study rests on it: known-groups validity on labelled
# reference sets and controlled perturbations (cbtflow.validation.card). A card depends only on
# the judge's settings, the reference sets and the perturbation file: editing a model
# reruns no card.


rule judge_card:
    input:
        unpack(judge_files),
        base=judge_inputs,
        perturbations=PERTURBATIONS,
        authored=AUTHORED_REFERENCE,
        reference_sets=[s["path"] for s in config["validation"]["reference_sets"]],
    output:
        card="results/judge_cards/{judge}.json",
    log:
        "logs/judge_card/{judge}.log",
    benchmark:
        "benchmarks/judge_card/{judge}.tsv"
    conda:
        lambda wc: software_env("judge", config["judges"][wc.judge])
    threads: 1
    resources:
        mem_mb=3000,
        gpu=lambda wc: gpu_job(config["judges"][wc.judge]),
        api=lambda wc: api_job(config["judges"][wc.judge]),
    params:
        judge=judge_settings,
        validation=config["validation"],
        rubric_variant=lambda wc: config["judging"]["rubric_variant"],
    script:
        "../../scripts/judge_card.py"


# The same perturbations on a sample of this run's own eval transcripts: apart from the
# card, because it must rerun when a model's transcripts change.
rule judge_run_perturbations:
    input:
        unpack(judge_files),
        base=judge_inputs,
        transcripts=TRANSCRIPTS,
        perturbations=PERTURBATIONS,
    output:
        run="results/judge_cards/{judge}.run.json",
    log:
        "logs/judge_card/{judge}.run.log",
    benchmark:
        "benchmarks/judge_card/{judge}.run.tsv"
    conda:
        lambda wc: software_env("judge", config["judges"][wc.judge])
    threads: 1
    resources:
        mem_mb=3000,
        gpu=lambda wc: gpu_job(config["judges"][wc.judge]),
        api=lambda wc: api_job(config["judges"][wc.judge]),
    params:
        judge=judge_settings,
        validation=config["validation"],
        rubric_variant=lambda wc: config["judging"]["rubric_variant"],
    script:
        "../../scripts/judge_run_perturbations.py"
