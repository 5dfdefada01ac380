# Modified-CTRS scores per transcript from each judge, blinded to model and condition.


rule judge:
    input:
        unpack(judge_files),
        transcripts=transcripts_of,
        base=judge_inputs,
        after=lambda wc: same_base_predecessor(wc, "judge"),
    output:
        scores=expand(
            "results/ctrs/{{judge}}/{{model}}/{{condition}}/seed{{seed}}/{profile}.json",
            profile=EVAL_IDS,
        ),
        usage="results/usage/judge/{judge}/{model}/{condition}/seed{seed}.json",
    log:
        "logs/judge/{judge}/{model}/{condition}/seed{seed}.log",
    benchmark:
        "benchmarks/judge/{judge}/{model}/{condition}/seed{seed}.tsv"
    conda:
        lambda wc: software_env("judge", config["judges"][wc.judge])
    threads: 1
    resources:
        mem_mb=3000,
        gpu=lambda wc: gpu_job(config["judges"][wc.judge]),
        api=lambda wc: api_job(config["judges"][wc.judge]),
    params:
        judge=judge_settings,
        rubric_variant=lambda wc: config["judging"]["rubric_variant"],
        cache_dir=CACHE,
    script:
        "../../scripts/judge.py"


use rule judge as judge_course with:
    output:
        scores=expand(
            "results/ctrs/{{judge}}/{{model}}/{{condition}}/seed{{seed}}/session{{session}}/{profile}.json",
            profile=EVAL_IDS,
        ),
        usage="results/usage/judge/{judge}/{model}/{condition}/seed{seed}/session{session}.json",
    log:
        "logs/judge/{judge}/{model}/{condition}/seed{seed}/session{session}.log",
    benchmark:
        "benchmarks/judge/{judge}/{model}/{condition}/seed{seed}/session{session}.tsv"
