"""Experiment files plan the study at full scale without making a call."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def dry_run(configfile: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", configfile, "--quiet", "rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def job_counts(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", text, re.M)}


def test_paper_experiment_plans_the_study():
    counts = job_counts(dry_run("experiments/paper.yaml"))
    assert counts["courses"] == 1, "one batched courses job for the generator"
    assert counts["finetune"] == 3 * 3
    assert counts["simulate"] == 3 * 2 * 3
    assert counts["judge"] == 2 * 3 * 2 * 3
    assert "prepare_base_model" not in counts, "HF bases load directly, nothing to prepare"
    import yaml

    paper = yaml.safe_load((ROOT / "experiments/paper.yaml").read_text())
    assert paper["profiles"]["train"] == 58 and paper["courses"]["sessions"] == 20
    assert paper["roles"]["generator"]["model"] == "openrouter/nousresearch/hermes-3-llama-3.1-405b"
    assert not any(m.startswith("smol") for m in paper["models"]), "the default's models do not leak in"


def test_paper_courses_job_writes_58_course_files():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--configfile",
            "experiments/paper.yaml",
            "--forceall",
            "-p",
            "results/datasets/hermes3-405b.jsonl",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = set(re.findall(r"results/courses/hermes3-405b/(train-\d+)\.json", done.stdout))
    assert len(outputs) == 58


def test_open_questions_experiment_plans_four_conditions_and_two_judges():
    counts = job_counts(dry_run("experiments/open-questions.yaml"))
    assert counts["simulate"] == 3 * 4 * 3
    assert counts["judge"] == 3 * 3 * 4 * 3


@pytest.mark.parametrize("experiment", ["experiments/paper.yaml", "experiments/open-questions.yaml", "config.yaml"])
def test_estimate_prints_calls_tokens_and_cost_per_stage(experiment):
    done = subprocess.run(
        [sys.executable, "-m", "cbtflow.cli", "estimate", "--configfile", experiment],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for stage in ("courses", "simulate", "judge"):
        assert re.search(rf"^{stage}\s", out, re.M)
    assert "total (upper bound" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"^(courses|simulate|judge)\s", line)]
    assert all(int(r[-4]) >= 0 for r in rows)


def test_beyond_experiment_exercises_every_new_measurement_offline():
    import yaml

    from cbtflow.config import validate_config

    config = yaml.safe_load((ROOT / "experiments/beyond.yaml").read_text())
    validate_config(config)
    assert config["simulation"]["measures"] == ["mood", "affect", "alliance"]
    assert len(config["profiles"]["styles"]) >= 2 and config["profiles"]["crisis"]["share"] > 0
    per_style = config["profiles"]["eval"] // len(config["profiles"]["styles"])
    assert per_style >= 2, "the style test needs two patients per style"
    models = {r["model"] for r in (config["roles"]["generator"], config["roles"]["patient"])}
    assert all(m.startswith("local/") for m in models), "offline: no API role"
    counts = job_counts(dry_run("experiments/beyond.yaml"))
    assert counts["simulate"] == 4 and counts["judge"] == 8 and counts["report"] == 1


def _paper_plan(**simulation):
    import yaml

    from cbtflow.config import validate_config
    from cbtflow.estimate import plan

    config = yaml.safe_load((ROOT / "experiments/paper.yaml").read_text())
    config["simulation"].update(simulation)
    validate_config(config)
    rows = plan(config)
    return config, {(r["stage"], r["role"]): r for r in rows}


@pytest.mark.parametrize("memory", ["notes", "transcript"])
def test_the_paper_course_variant_is_priced_per_session_with_its_memory(memory):
    """experiments/paper.yaml's commented course variant, switched on: six sessions per eval
    patient multiply the simulated and judged sessions by six; notes cost one therapist call
    per later session; a transcript memory's earlier sessions add prompt tokens (mostly
    reused within a session) but no call."""
    config, one = _paper_plan()
    _, six = _paper_plan(sessions=6, memory=memory)
    patient = ("simulate", "patient")
    assert six[patient]["calls"] == 6 * one[patient]["calls"]
    assert six[patient]["cost_usd"] == pytest.approx(6 * one[patient]["cost_usd"]) and one[patient]["cost_usd"] > 0
    gemini = next(k for k in one if k[0] == "judge" and k[1].startswith("gemini"))
    assert six[gemini]["calls"] == 6 * one[gemini]["calls"]
    model = next(iter(config["models"]))
    courses = len(config["models"]) * len(config["conditions"]) * len(config["seeds"]) * config["profiles"]["eval"]
    courses //= len(config["models"])
    notes = six.get(("simulate", f"therapist notes ({model})"))
    history = six.get(("simulate", f"therapist earlier sessions ({model})"))
    if memory == "notes":
        assert notes["calls"] == 5 * courses and history is None
    else:
        assert notes is None and history["calls"] == 0
        therapist = six[("simulate", f"therapist ({model})")]
        assert 0 < history["cached_prompt_tokens"] < history["prompt_tokens"]
        assert history["prompt_tokens"] > therapist["prompt_tokens"] / 6, "earlier sessions outweigh one session"
