"""Rules profiles_train / profiles_eval: seeded synthetic patient profiles."""

from cbtflow.data.profiles import (
    assign_crises,
    assign_styles,
    load_attributes,
    load_disclosures,
    load_styles,
    sample_splits,
)
from cbtflow.io import write_jsonl
from cbtflow.runtime import setup

log = setup(snakemake.log[0])
s = snakemake.params.settings
splits = sample_splits(
    load_attributes(snakemake.input.attributes),
    s["train"],
    s["eval"],
    s["seed"],
    eval_risk=s["eval_risk"],
    eval_split=s["eval_split"],
)
if snakemake.params.split == "eval":  # styles belong to the simulated patients only
    assign_styles(splits["eval"], s["styles"], load_styles(snakemake.input.styles))
    assign_crises(splits["eval"], s["crisis"], load_disclosures(snakemake.input.disclosures), s["seed"])
write_jsonl(snakemake.output[0], splits[snakemake.params.split])
log.info("%d %s profiles", len(splits[snakemake.params.split]), snakemake.params.split)
