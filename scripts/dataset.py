"""Rule dataset: chat-format JSONL + DatasetDict + statistics from the courses."""

from cbtflow import prompts
from cbtflow.data.dataset import build_examples, dataset_stats, save_dataset_dict
from cbtflow.io import read_json, write_json, write_jsonl
from cbtflow.runtime import setup
from cbtflow.train.cards import dataset_card, write_card

log = setup(snakemake.log[0])
courses = [read_json(p) for p in snakemake.input.courses]
settings = snakemake.params.settings
rows = build_examples(
    courses, prompts.render(snakemake.input.therapist_system), settings["validation_fraction"], settings["seed"]
)
stats = dataset_stats(courses, rows)
if not stats["examples"]["train"]:  # training on nothing fails later, and obscurely
    raise ValueError(
        f"results/courses/{snakemake.wildcards.generator}: no training example is left "
        f"({stats['dropped_sessions']} sessions dropped by the quality gates, rejections "
        f"{stats['rejections_by_reason']}); raise courses.max_attempts or courses.parallel_attempts, "
        "add training profiles, or use a stronger generator, then rerun from the courses rule"
    )
write_jsonl(snakemake.output.jsonl, rows)
save_dataset_dict(rows, snakemake.output.hf)
write_json(snakemake.output.stats, {"kind": "dataset_stats", **stats})
log.info("dataset: %s", stats)
# The Hugging Face dataset card, inside the DatasetDict directory that `cbtflow push` uploads.
card = dataset_card(
    name=snakemake.wildcards.generator,
    generator=snakemake.params.generator_model,
    stats=stats,
    license=settings.get("license", "other"),
)
write_card(card, f"{snakemake.output.hf}/README.md")
