# Therapist (each model, instruct and CBT-tuned) meets a simulated patient, per eval profile.
# One job per model × condition × seed: the therapist loads once and all sessions batch.
# With simulation.sessions K > 1 each later session n is its own job (simulate_course),
# reading sessions 1..n-1 of the same triple: its memory and the patient's state.


rule simulate:
    input:
        profiles="results/profiles/eval.jsonl",
        adapter=adapter_for,
        therapist_system=therapist_template,
        patient_system=f"{PROMPTS}/patient_system.j2",
        base=lambda wc: base_inputs(therapist_base(wc))
        + role_inputs(config["roles"]["patient"])
        + ([therapist_chat_template(wc)] if therapist_chat_template(wc) else []),
        after=lambda wc: same_base_predecessor(wc, "simulate"),
        measures=measure_files(),
        measure_templates=measure_templates(),
        earlier=earlier_sessions,
        memory_prompt=memory_prompt,
    output:
        transcripts=expand(
            "results/transcripts/{{model}}/{{condition}}/seed{{seed}}/{profile}.json",
            profile=EVAL_IDS,
        ),
        usage="results/usage/simulate/{model}/{condition}/seed{seed}.json",
    log:
        "logs/simulate/{model}/{condition}/seed{seed}.log",
    benchmark:
        "benchmarks/simulate/{model}/{condition}/seed{seed}.tsv"
    priority: 30  # before judging: the last sessions' judging and the run's perturbations wait for them
    conda:
        software_env("simulate")
    threads: 1
    resources:
        mem_mb=4000,
        gpu=gpu_job(),  # the therapist is always a local model
        api=api_job(config["roles"]["patient"]),
    params:
        therapist=lambda wc: {
            "model": therapist_model(wc),
            "chat_template": therapist_chat_template(wc),
            "precision": layout.precision_of(config, therapist_base(wc)),
            **config["therapist"],
        },
        patient=lambda wc: {
            **endpoint_spec(config["roles"]["patient"]),
            "sampling": config["roles"]["patient"]["sampling"],
            "max_failures": config["roles"]["patient"]["max_failures"],
        },
        session=simulation_params,
        base=therapist_base,
        cache_dir=CACHE,
    script:
        "../../scripts/simulate.py"


use rule simulate as simulate_course with:
    output:
        transcripts=expand(
            "results/transcripts/{{model}}/{{condition}}/seed{{seed}}/session{{session}}/{profile}.json",
            profile=EVAL_IDS,
        ),
        usage="results/usage/simulate/{model}/{condition}/seed{seed}/session{session}.json",
    log:
        "logs/simulate/{model}/{condition}/seed{seed}/session{session}.log",
    benchmark:
        "benchmarks/simulate/{model}/{condition}/seed{seed}/session{session}.tsv"
