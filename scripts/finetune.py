"""Rule finetune: one LoRA adapter for one model × seed, with its train log and provenance."""

from importlib.util import find_spec

from cbtflow.io import write_json
from cbtflow.llm.local import remote
from cbtflow.runtime import setup
from cbtflow.train.cards import model_card, write_card
from cbtflow.train.finetune import provenance, select_and_train
from cbtflow.train.tracking import run_name

log = setup(snakemake.log[0], snakemake.threads)
seed, out = int(snakemake.wildcards.seed), snakemake.output[0]
arguments = dict(
    base=snakemake.params.base,
    dataset_dir=snakemake.input.dataset,
    recipe=snakemake.params.recipe,
    seed=seed,
    out_dir=out,
    threads=snakemake.threads,
    name=run_name(snakemake.wildcards.model, seed, snakemake.params.recipe),
)
# In a worker of the run's local model server, which has torch, transformers, peft and trl
# imported already; Unsloth must be imported before those, so with it installed the job
# trains in its own process.
worker = remote.connect() if find_spec("unsloth") is None else None
if worker:
    backend, train_log = worker.call("cbtflow.train.finetune:select_and_train", **arguments)
else:
    backend, train_log = select_and_train(**arguments)
if train_log["resumed_from_step"]:
    log.info("resumed from step %d (checkpoint in results/checkpoints/)", train_log["resumed_from_step"])
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
card = snakemake.params.card
write_card(
    model_card(
        model=snakemake.wildcards.model,
        seed=seed,
        source=card["source"],
        recipe=snakemake.params.recipe,
        train_log=train_log,
        dataset=card["dataset"],
        license=card["license"],
    ),
    f"{out}/README.md",
)
