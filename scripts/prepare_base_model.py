"""Rule prepare_base_model: the embedded SmolLM2 as a plain Hugging Face directory."""

from cbtflow.io import write_json
from cbtflow.llm.embedded import prepare_base_model
from cbtflow.runtime import setup

log = setup(snakemake.log[0], snakemake.threads)
out = snakemake.output[0]
info = prepare_base_model(snakemake.wildcards.base, out, snakemake.params.wheel_dir)
write_json(f"{out}/base.json", {"kind": "base", **info})
log.info("prepared %s: %s", out, info["weights_sha256"])
