"""Rule dataset: chat-format JSONL + DatasetDict + statistics from the courses."""

from cbtflow import prompts
from cbtflow.data.dataset import build_examples, dataset_stats, save_dataset_dict
from cbtflow.io import read_json, write_json, write_jsonl
from cbtflow.runtime import setup

log = setup(snakemake.log[0])
courses = [read_json(p) for p in snakemake.input.courses]
settings = snakemake.params.settings
rows = build_examples(
    courses, prompts.render(snakemake.input.therapist_system), settings["validation_fraction"], settings["seed"]
)
write_jsonl(snakemake.output.jsonl, rows)
save_dataset_dict(rows, snakemake.output.hf)
stats = dataset_stats(courses, rows)
write_json(snakemake.output.stats, {"kind": "dataset_stats", **stats})
log.info("dataset: %s", stats)
