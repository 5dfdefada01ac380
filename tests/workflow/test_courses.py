"""Courses at evaluation, end to end on a tiny config: session n of a course is a job that
depends on session n − 1, its therapist reads its own notes on the last session, raising
the course length reruns only the new sessions, and the viewer shows the course as a
timeline in which the second session opens from the first."""

import json
import re
import subprocess
import sys

import pytest
import yaml
from workspace import TINY, make_workspace, snakemake

pytestmark = pytest.mark.workflow

COURSE = {
    **TINY,
    # No adapter to train (prompted is the second condition): the course, not training, is under test.
    "conditions": ["instruct", "prompted"],
    "profiles": {"seed": 3, "train": 2, "eval": 2},
    "roles": {
        "generator": {"name": "scripted", "model": "scripted/generator", "sampling": {"max_tokens": 24}},
        "patient": {"model": "scripted/patient", "sampling": {"max_tokens": 24}},
    },
    "simulation": {"max_turns": 4, "measures": [], "sessions": 2, "memory": "notes"},
    "judges": {"lexicon": {"kind": "lexicon"}},
    "validation": {"perturbations": ["drop_agenda"]},
    "report": {"primary_judge": "lexicon"},
}


def planned(work, *args):
    done = snakemake(work, "-n", "--quiet", "rules", *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", done.stdout + done.stderr, re.M)}


@pytest.fixture(scope="module")
def course_run(tmp_path_factory, embedded_model):
    work = make_workspace(tmp_path_factory.mktemp("course"), COURSE, embedded_model)
    done = snakemake(work)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return work


def test_session_two_depends_on_session_one_and_reads_its_notes(course_run):
    plan = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "1"],
        cwd=course_run,
        capture_output=True,
        text=True,
    ).stdout
    block = next(b for b in plan.split("\n\n") if "rule simulate_course:" in b and "condition=instruct" in b)
    inputs = re.search(r"input: (.*)", block).group(1)
    assert "results/transcripts/tiny/instruct/seed1/eval-000.json" in inputs, "session 2 reads session 1"
    assert "resources/prompts/therapist_notes.j2" in inputs
    first = json.loads((course_run / "results/transcripts/tiny/instruct/seed1/eval-000.json").read_text())
    second = json.loads((course_run / "results/transcripts/tiny/instruct/seed1/session2/eval-000.json").read_text())
    assert "session" not in first and "memory" not in first, "a first session is what a one-session run writes"
    assert second["session"] == 2 and second["memory"]["mode"] == "notes" and second["memory"]["text"]
    assert second["memory"]["text"] in second["therapist_system"], "the notes reach the next session's prompt"
    assert second["patient_state"]["session"] == 2 and second["patient_state"]["mood"]
    scores = json.loads((course_run / "results/ctrs/lexicon/tiny/instruct/seed1/session2/eval-000.json").read_text())
    assert set(scores["course_items"]) == {"homework_review", "bridging"} and scores["not_applicable"] == []
    validated = subprocess.run(
        [sys.executable, "-m", "cbtflow.cli", "validate", "results"], cwd=course_run, capture_output=True, text=True
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    report = (course_run / "results/report/report.md").read_text()
    assert "## The course: sessions per patient" in report and "### Trajectory model" in report
    assert "### Course items" in report and "### Continuity, homework and context" in report


def test_raising_the_course_length_runs_only_the_new_sessions(course_run):
    assert planned(course_run) == {}, "a finished course has nothing to do"
    config = yaml.safe_load((course_run / "config.yaml").read_text())
    config["simulation"]["sessions"] = 3
    (course_run / "longer.yaml").write_text(yaml.safe_dump(config))
    jobs = planned(course_run, "--configfile", "longer.yaml")
    jobs.pop("total", None)
    assert jobs == {
        "simulate_course": 2,
        "judge_course": 2,
        "judge_run_perturbations": 1,
        "report": 1,
        "viewer": 1,
        "all": 1,
    }, jobs


def test_the_viewer_shows_a_course_as_a_timeline_whose_second_session_opens_from_the_first(course_run, tmp_path):
    from browser import chrome
    from selenium.webdriver.common.by import By

    page = course_run / "results/report/viewer/index.html"
    with chrome(tmp_path / "chromium") as browser:
        browser.get(page.as_uri())
        browser.find_element(By.CSS_SELECTOR, "#list tr.row").click()
        browser.find_element(By.ID, "timeline-button").click()
        rows = browser.find_elements(By.CSS_SELECTOR, "#timeline .timeline-row")
        assert [r.get_attribute("data-session") for r in rows] == ["1", "2"]
        second = rows[1].find_elements(By.CSS_SELECTOR, "article.session")
        assert [a.get_attribute("data-condition") for a in second] == COURSE["conditions"]
        model, condition, seed, session, profile = second[0].get_attribute("data-id").split("/")
        document = json.loads(
            (course_run / f"results/transcripts/{model}/{condition}/{seed}/{session}/{profile}.json").read_text()
        )
        note = second[0].find_element(By.CSS_SELECTOR, ".course .memory").text
        assert document["memory"]["text"][:40] in note, "the second session shows the notes it opened from"
        assert second[0].find_elements(By.CSS_SELECTOR, "tr.course-item")
        first_items = rows[0].find_elements(By.CSS_SELECTOR, "article.session tr.course-item td.score")
        assert {c.text for c in first_items} == {"n/a"}, "course items are not applicable in session 1"
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
