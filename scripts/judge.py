"""Rule judge: CTRS scores for one simulate job's transcripts from one judge."""

from cbtflow.data.detectors import load_detectors
from cbtflow.instrument import load_rubric
from cbtflow.io import read_json, write_json
from cbtflow.judge.crisis import load_crisis
from cbtflow.judge.lexicon import load_lexicon
from cbtflow.judge.run import check_transcript, judge_transcripts
from cbtflow.runtime import client, setup

log = setup(snakemake.log[0], snakemake.threads)
judge = dict(snakemake.params.judge)
rubric = load_rubric(snakemake.input.rubric, snakemake.params.rubric_variant)
lexicon = load_lexicon(snakemake.input.lexicon) if judge["kind"] == "lexicon" else None
# Only the templates this judge's kind reads are inputs (cbtflow.config.judge_reads).
templates = {
    n: snakemake.input[n] for n in ("judge_item", "judge_all", "judge_item_json") if n in snakemake.input.keys()
}
transcripts = [read_json(p) for p in snakemake.input.transcripts]
for path, transcript in zip(snakemake.input.transcripts, transcripts):
    check_transcript(transcript, path)
llm = client(snakemake.params.cache_dir, snakemake.config)
documents = judge_transcripts(
    llm,
    transcripts,
    snakemake.output.scores,
    judge,
    rubric,
    templates,
    lexicon,
    seed=int(snakemake.wildcards.seed),
    detectors=load_detectors(snakemake.input.detectors),
    crisis_spec=(
        load_crisis(snakemake.input.crisis_rubric, snakemake.input.get("crisis_heuristic"))
        if "crisis_rubric" in snakemake.input.keys()
        else None
    ),
)
for path, document in zip(snakemake.output.scores, documents):
    write_json(path, document)
llm.usage.write(snakemake.output.usage, "judge", dict(snakemake.wildcards))
