"""Rule judge: CTRS scores for one simulate job's transcripts from one judge."""

from cbtflow.io import read_json, write_json
from cbtflow.judge.run import check_transcript, judge_transcripts, load_job
from cbtflow.runtime import client, setup

log = setup(snakemake.log[0], snakemake.threads)
transcripts = [read_json(p) for p in snakemake.input.transcripts]
for path, transcript in zip(snakemake.input.transcripts, transcripts):
    check_transcript(transcript, path)
llm = client(snakemake.params.cache_dir, snakemake.config)
# The inputs are the files this judge's kind reads (cbtflow.judge.run.judge_files).
job = load_job(llm, dict(snakemake.params.judge), dict(snakemake.input.items()), snakemake.params.rubric_variant)
documents = judge_transcripts(job, transcripts, snakemake.output.scores, seed=int(snakemake.wildcards.seed))
for path, document in zip(snakemake.output.scores, documents):
    write_json(path, document)
llm.usage.write(snakemake.output.usage, "judge", dict(snakemake.wildcards))
