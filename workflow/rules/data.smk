# Patient profiles, synthetic CBT courses and the chat-format training set.


rule profiles_train:
    input:
        attributes="resources/profiles/attributes.yaml",
    output:
        "results/profiles/train.jsonl",
    log:
        "logs/profiles/train.log",
    conda:
        software_env("profiles")
    params:
        split="train",
        # Training uses the partitioned pool unless eval is in-distribution; switching between
        # held_out and both never touches the training data, nor does any eval setting.
        settings=lambda wc: {
            **{k: config["profiles"][k] for k in ("seed", "train")},
            "eval": 0,
            "eval_risk": False,
            "eval_split": (
                "in_distribution"
                if config["profiles"]["eval_split"] == "in_distribution"
                else "held_out"
            ),
        },
    script:
        "../../scripts/profiles.py"


# Eval profiles are drawn after the train ones from the same stream, so changing the eval
# count never touches the training data.
rule profiles_eval:
    input:
        attributes="resources/profiles/attributes.yaml",
        styles="resources/profiles/styles.yaml",
        disclosures="resources/crisis/disclosures.yaml",
    output:
        "results/profiles/eval.jsonl",
    log:
        "logs/profiles/eval.log",
    conda:
        software_env("profiles")
    params:
        split="eval",
        settings=lambda wc: config["profiles"],
    script:
        "../../scripts/profiles.py"


rule courses:
    input:
        **templates("course_therapist", "patient_system", "course_session", "course_summary"),
        profiles="results/profiles/train.jsonl",
        phases="resources/courses/phases.yaml",
        detectors=DETECTORS,
        base=role_inputs(config["roles"]["generator"]),
    output:
        courses=expand("results/courses/{{generator}}/{profile}.json", profile=TRAIN_IDS),
        usage="results/usage/courses/{generator}.json",
    log:
        "logs/courses/{generator}.log",
    benchmark:
        "benchmarks/courses/{generator}.tsv"
    # First whenever it can run: training, the cbt sessions and their judging wait for it.
    priority: 50
    conda:
        software_env("courses", config["roles"]["generator"])
    threads: 1  # the other core makes the instruct sessions and the judge cards meanwhile
    resources:
        mem_mb=3000,
        gpu=gpu_job(config["roles"]["generator"]),
        api=api_job(config["roles"]["generator"]),
    params:
        generator=lambda wc: {
            **endpoint_spec(config["roles"]["generator"]),
            "sampling": config["roles"]["generator"]["sampling"],
        },
        settings=lambda wc: config["courses"],
        seed=lambda wc: config["profiles"]["seed"],
        cache_dir=CACHE,
    script:
        "../../scripts/courses.py"


rule dataset:
    input:
        courses=expand("results/courses/{{generator}}/{profile}.json", profile=TRAIN_IDS),
        therapist_system=f"{PROMPTS}/therapist_system.j2",
    output:
        jsonl="results/datasets/{generator}.jsonl",
        stats="results/datasets/{generator}.stats.json",
        hf=directory("results/datasets/{generator}.hf"),
    log:
        "logs/dataset/{generator}.log",
    priority: 50
    conda:
        software_env("dataset")
    params:
        settings=lambda wc: config["dataset"],
        generator_model=lambda wc: config["roles"]["generator"]["model"],
    script:
        "../../scripts/dataset.py"
