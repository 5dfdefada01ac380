"""Rule finetune: one LoRA adapter for one model × seed, with its train log and provenance."""

from cbtflow.io import write_json
from cbtflow.runtime import setup
from cbtflow.train.finetune import provenance, select_backend, train_adapter

log = setup(snakemake.log[0], snakemake.threads)
seed, out = int(snakemake.wildcards.seed), snakemake.output[0]
backend = select_backend()
log.info("backend: %s", backend)
train_log = train_adapter(
    base=snakemake.params.base,
    dataset_dir=snakemake.input.dataset,
    recipe=snakemake.params.recipe,
    seed=seed,
    out_dir=out,
    backend=backend,
    threads=snakemake.threads,
)
write_json(f"{out}/train_log.json", {"kind": "train_log", **train_log})
write_json(
    f"{out}/provenance.json",
    {
        "kind": "provenance",
        **provenance(
            base=snakemake.params.base,
            dataset_jsonl=snakemake.input.jsonl,
            recipe=snakemake.params.recipe,
            seed=seed,
            backend=backend,
        ),
    },
)
log.info("loss %s -> %s", train_log["first_quarter_loss"], train_log["last_quarter_loss"])
