"""Rule judge_card: one judge's card from the reference sets and the perturbations."""

from cbtflow.io import write_json
from cbtflow.runtime import setup
from cbtflow.validation.card import card_for

log = setup(snakemake.log[0], snakemake.threads)
card = card_for(
    snakemake.config,
    snakemake.wildcards.judge,
    snakemake.input.perturbations,
    raw_dir=f"{snakemake.output.card}.raw",
)
write_json(snakemake.output.card, card)
log.info("judge %s: card %s", snakemake.wildcards.judge, "passed" if card["passed"] else "FAILED")
