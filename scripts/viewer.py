"""Rule viewer: the static transcript viewer (results/report/viewer/index.html)."""

from cbtflow.instrument import load_rubric
from cbtflow.io import read_json
from cbtflow.report.viewer import viewer_data, write_viewer
from cbtflow.runtime import setup

log = setup(snakemake.log[0])
data = viewer_data(
    [read_json(p) for p in snakemake.input.transcripts],
    [read_json(p) for p in snakemake.input.scores],
    load_rubric(snakemake.input.rubric, snakemake.params.rubric_variant),
    title=snakemake.params.title,
    primary_judge=snakemake.params.primary_judge,
    cards=[read_json(p) for p in snakemake.input.cards],
)
write_viewer(snakemake.output[0], data)
log.info("viewer with %d transcripts written to %s", len(data["sessions"]), snakemake.output[0])
