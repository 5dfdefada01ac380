"""Rule judge_run_perturbations: one judge's perturbations on a sample of the run's transcripts."""

from cbtflow.io import read_json, write_json
from cbtflow.runtime import setup
from cbtflow.validation.card import run_perturbations_for

log = setup(snakemake.log[0], snakemake.threads)
result = run_perturbations_for(
    snakemake.config,
    snakemake.wildcards.judge,
    [read_json(p) for p in snakemake.input.transcripts],
    snakemake.input.perturbations,
    raw_dir=f"{snakemake.output.run}.raw",
)
write_json(snakemake.output.run, result)
log.info(
    "judge %s: perturbations on %d of the run's transcripts", snakemake.wildcards.judge, len(result["transcripts"])
)
