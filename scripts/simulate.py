"""Rules simulate and simulate_course: session n of every eval patient for one model ×
condition × seed (a later session of a course reads the sessions before it)."""

from pathlib import Path

from cbtflow import prompts
from cbtflow.conditions import TABLE as CONDITION_TABLE
from cbtflow.data.profiles import load_profiles
from cbtflow.dialogue import Party
from cbtflow.io import read_json, write_json
from cbtflow.judge.run import TooManyFailures, failure_budget
from cbtflow.llm import Endpoint
from cbtflow.llm.backends import backend_class
from cbtflow.runtime import client, setup
from cbtflow.seeds import derive_seed
from cbtflow.simulate import course
from cbtflow.simulate.measures import load_measure, self_reports
from cbtflow.simulate.run import course_record, simulate, transcript_document

log = setup(snakemake.log[0], snakemake.threads)
w = snakemake.wildcards
t, p = dict(snakemake.params.therapist), dict(snakemake.params.patient)
adapter = str(snakemake.input.adapter) if CONDITION_TABLE[w.condition].adapter else None
endpoint = Endpoint(model=t["model"], adapter=adapter, chat_template=t.get("chat_template"), precision=t["precision"])
patient = Party(
    Endpoint.from_spec({k: v for k, v in p.items() if k not in ("sampling", "max_failures")}), p["sampling"]
)
profiles = load_profiles(snakemake.input.profiles)
llm = client(snakemake.params.cache_dir, snakemake.config)
templates = {"therapist_system": snakemake.input.therapist_system, "patient_system": snakemake.input.patient_system}
# The therapist's backend (therapist.backend) and its own settings (therapist.<backend>).
backend, settings = backend_class(t["backend"]), t.get(t["backend"]) or {}
shared = settings.get("shared_servers", {}).get(snakemake.params.base)
number = int(w.get("session", 1))
memory_mode = snakemake.params.session["memory"] if number > 1 else "none"  # a first session has no memory
with backend.serving(endpoint, f"{snakemake.log[0]}.server", settings, shared) as served:
    therapist = Party(served, t["sampling"])
    allowed = failure_budget(p, len(profiles))  # the patient role's max_failures
    ready, states, memories = None, [None] * len(profiles), [None] * len(profiles)
    if number > 1:  # a later session of the course: memory and patient state first
        earlier_docs = [read_json(f) for f in snakemake.input.earlier]
        earlier = [
            sorted((d for d in earlier_docs if d["profile_id"] == pr["id"]), key=lambda d: d.get("session", 1))
            for pr in profiles
        ]
        system = prompts.render(templates["therapist_system"])
        memories = course.write_memory(
            llm,
            therapist,
            memory_mode,
            [docs[-1] for docs in earlier],
            system,
            str(snakemake.input.memory_prompt[0]) if snakemake.input.memory_prompt else None,
            [derive_seed(int(w.seed), "course.memory", i, number - 1) for i in range(len(profiles))],
        )
        ready, states = course.course_sessions(
            profiles, earlier, system, templates["patient_system"], memory_mode, memories, number, int(w.seed)
        )
        log.info("session %d: %s memory, %d patients", number, memory_mode, len(profiles))
    sessions = simulate(
        llm,
        profiles,
        therapist,
        patient,
        templates["therapist_system"],
        templates["patient_system"],
        snakemake.params.session["max_turns"],
        int(w.seed),
        snakemake.params.session.get("max_context_tokens"),
        tolerate_patient_failures=allowed > 0,
        sessions=ready,
    )
failed = [s.failure for s in sessions if s.failure]
if len(failed) > allowed:
    raise TooManyFailures(
        f"{len(failed)} sessions lost their patient, roles.patient.max_failures allows {allowed}: {failed[0]}"
    )
measures = {Path(f).stem: load_measure(f) for f in snakemake.input.measures}
measure_templates = {Path(f).stem: f for f in snakemake.input.measure_templates}
hashes = prompts.template_hashes({**templates, **measure_templates})
by_id = dict(zip([pr["id"] for pr in profiles], zip(profiles, sessions, states, memories)))
for path in snakemake.output.transcripts:
    profile, session, state, memory = by_id[path.rsplit("/", 1)[1][:-5]]
    reports = None
    if measures and not session.failure:
        reports = self_reports(
            llm,
            patient.endpoint,
            measures,
            session.patient_system,
            session.turns,
            measure_templates,
            session.seed,
            path[: -len(".json")],
        )
    write_json(
        path,
        transcript_document(
            profile,
            session,
            model=w.model,
            condition=w.condition,
            seed=int(w.seed),
            therapist=therapist,
            patient=patient,
            template_hashes=hashes,
            measures=reports if measures else None,
            course=course_record(session, state, memory_mode, memory, number - 1) if state else None,
            runs_as=llm.usage.runs_as,
        ),
    )
llm.usage.write(snakemake.output.usage, "simulate", dict(w))
log.info("usage: %s", llm.usage.totals())
