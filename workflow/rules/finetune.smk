# One LoRA adapter per model × seed: Unsloth QLoRA on CUDA, transformers + peft on CPU.


rule finetune:
    input:
        dataset=f"results/datasets/{GENERATOR}.hf",
        jsonl=f"results/datasets/{GENERATOR}.jsonl",
        base=lambda wc: base_inputs(therapist_base(wc))
        + ([chat_template_of(therapist_base(wc))] if chat_template_of(therapist_base(wc)) else []),
    output:
        directory("results/adapters/{model}/seed{seed}"),
    log:
        "logs/finetune/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/finetune/{model}/seed{seed}.tsv"
    priority: 40  # on the critical path, as the courses are (data.smk)
    conda:
        software_env("finetune")
    threads: 1  # two 1-thread jobs train more tokens a second than one 2-thread job, and start sooner
    resources:
        mem_mb=6000,
        gpu=gpu_job(),
    params:
        recipe=lambda wc: {
            **config["models"][wc.model],
            "chat_template": chat_template_of(therapist_base(wc)),
        },
        base=lambda wc: base_location(therapist_base(wc)),
        card=lambda wc: {
            "source": config["bases"][therapist_base(wc)]["source"],
            "license": config["bases"][therapist_base(wc)].get(
                "license",
                "apache-2.0" if therapist_base(wc) in EMBEDDED_BASES else "other",
            ),
            "dataset": GENERATOR,
        },
    script:
        "../../scripts/finetune.py"
