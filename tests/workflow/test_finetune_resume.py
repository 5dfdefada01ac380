"""The kill test: `kill -9` the finetune job after its first checkpoint, unlock, rerun; the
rerun resumes from the checkpoint (its log says the step), the loss curve is one curve, the
adapter loads and the rest of the DAG completes."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from workspace import PLANTED_KEY, TINY, make_workspace, snakemake

pytestmark = pytest.mark.workflow

RESUMABLE = {
    **TINY,
    "conditions": ["instruct", "cbt"],
    "profiles": {"seed": 3, "train": 2, "eval": 1},
    "models": {
        "tiny": {
            **TINY["models"]["tiny"],
            "training": {
                **TINY["models"]["tiny"]["training"],
                "epochs": 6,
                "checkpoint_steps": 1,
                "report_to": ["tensorboard"],
            },
        }
    },
    "simulation": {"max_turns": 4, "measures": []},
    "judges": {"lexicon": {"kind": "lexicon"}},
    "validation": {"perturbations": ["drop_agenda"]},
    "report": {"primary_judge": "lexicon"},
}


def _finetune_process(work):
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if "finetune.py" in line and str(work) in line:
            return process
    return None


def test_a_killed_finetune_job_resumes_from_its_checkpoint(tmp_path, embedded_model):
    work = make_workspace(tmp_path, RESUMABLE, embedded_model)
    env = {**os.environ, "HF_TOKEN": PLANTED_KEY}
    first = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    checkpoints = work / "results/checkpoints/tiny/seed1"
    deadline, killed = time.time() + 900, None
    while time.time() < deadline and first.poll() is None:
        if list(checkpoints.glob("checkpoint-*/COMPLETE")):
            process = _finetune_process(work)
            if process is not None:
                os.kill(process.pid, signal.SIGKILL)
                killed = sorted(int(p.parent.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*/COMPLETE"))
                break
        time.sleep(0.05)
    output, _ = first.communicate(timeout=900)
    assert killed, "the finetune job finished before a checkpoint could be caught: " + output[-3000:]
    assert first.returncode != 0, "a killed job fails the run"
    assert not (work / "results/adapters/tiny/seed1/adapter_model.safetensors").exists()
    assert snakemake(work, "--unlock").returncode == 0
    again = snakemake(work)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    log = (work / "logs/finetune/tiny/seed1.log").read_text()
    assert "resumed from step" in log, log[-2000:]
    train_log = json.loads((work / "results/adapters/tiny/seed1/train_log.json").read_text())
    assert train_log["resumed_from_step"] >= killed[0]
    steps = [p["step"] for p in train_log["loss_curve"]]
    assert steps == list(range(1, train_log["steps"] + 1)), "one continuous loss curve"
    assert not (work / "results/checkpoints").exists(), "checkpoints are removed once the adapter is final"
    assert list((work / "results/adapters/tiny/seed1/runs").rglob("events.out.tfevents.*"))
    card = (work / "results/adapters/tiny/seed1/README.md").read_text()
    assert "library_name: peft" in card and "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert (work / "results/datasets/smollm2.hf/README.md").is_file()
    # The adapter loaded: the cbt sessions ran with it, and the report was built.
    cbt = json.loads((work / "results/transcripts/tiny/cbt/seed1/eval-000.json").read_text())
    assert cbt["therapist"]["adapter_sha"] and (work / "results/report/report.md").is_file()
    for path in (work / "results").rglob("*"):
        if path.is_file():
            assert PLANTED_KEY.encode() not in path.read_bytes(), path
    plan = subprocess.run(
        [sys.executable, "-m", "cbtflow.cli", "push", "--namespace", "lab", "--adapters", "--dataset", "--dry-run"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert plan.returncode == 0, plan.stderr
    assert "model lab/cbtflow-tiny-seed1 (private)" in plan.stdout and "  README.md" in plan.stdout
    assert "dataset lab/cbtflow-smollm2-cbt-courses (private)" in plan.stdout
