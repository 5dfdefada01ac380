"""Rule courses: every training profile's synthetic CBT course, session by session."""

from pathlib import Path

from cbtflow import prompts
from cbtflow.data.courses import course_document, generate_courses, load_phases
from cbtflow.data.detectors import load_detectors
from cbtflow.data.profiles import load_profiles
from cbtflow.dialogue import Party
from cbtflow.io import write_json
from cbtflow.llm import Endpoint
from cbtflow.runtime import client, setup

log = setup(snakemake.log[0], snakemake.threads)
names = ["course_therapist", "patient_system", "course_session", "course_summary"]
templates = {n: snakemake.input[n] for n in names}
spec = dict(snakemake.params.generator)
generator = Party(Endpoint.from_spec({k: v for k, v in spec.items() if k != "sampling"}), spec["sampling"])
profiles = load_profiles(snakemake.input.profiles)
llm = client(snakemake.params.cache_dir, snakemake.config)
courses = generate_courses(
    llm,
    generator,
    profiles,
    load_phases(snakemake.input.phases),
    snakemake.params.settings,
    templates,
    snakemake.params.seed,
    detectors=load_detectors(snakemake.input.detectors),
)
hashes = prompts.template_hashes(templates)
for path in snakemake.output.courses:
    write_json(path, course_document(courses[Path(path).stem], generator.endpoint, snakemake.params.settings, hashes))
llm.usage.write(snakemake.output.usage, "courses", {"generator": snakemake.wildcards.generator})
log.info("usage: %s", llm.usage.totals())
