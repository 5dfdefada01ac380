"""The workflow submitted through profiles/slurm to a real (one-node) SLURM.

tests/cluster/slurm_up.sh installs Debian's slurm-wlm and munge and starts the daemons;
this module starts them when no SLURM is up and stops what it started. Without root or
apt the test is skipped, unless CBTFLOW_REQUIRE_SLURM=1 (as in .ci/run) makes that a
failure.
"""

import os
import re
import shutil
import subprocess

import pytest
from workspace import ROOT, TINY, make_workspace, snakemake

pytestmark = pytest.mark.slurm
CLUSTER = ROOT / "tests" / "cluster"

# Fewer jobs and calls than the workflow test's config: one model, two conditions, the
# lexicon judge with one perturbation on its card, no self-reports or crisis moments
# (what is under test is that every rule's job goes through sbatch).
SLURM_CONFIG = {
    **TINY,
    "conditions": ["instruct", "cbt"],
    "profiles": {**TINY["profiles"], "crisis": {"share": 0.0}},
    "simulation": {"max_turns": 4, "measures": []},
    "judges": {"lexicon": {"kind": "lexicon"}},
    "validation": {"perturbations": ["drop_agenda"]},
}

# This test node has 2 CPUs, ~21 GB for jobs and no GPU: the profile's study-sized memory
# requests are scaled down to it (everything else comes from profiles/slurm).
NODE_RESOURCES = [
    "--default-resources",
    "mem_mb=3000",
    "runtime=30",
    "cpus_per_task=1",
    "--set-resources",
    "finetune:mem_mb=4000",
    "simulate:mem_mb=4000",
    "judge:mem_mb=2000",
    "courses:mem_mb=3000",
]


def _node_state() -> str:
    if not shutil.which("sinfo"):
        return ""
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


@pytest.fixture(scope="module")
def slurm():
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[test]' installs the plugin")
    if _node_state() in {"idle", "mixed", "allocated"}:
        yield
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        reason = "no SLURM running, and starting one needs root and apt (tests/cluster/slurm_up.sh)"
        if os.environ.get("CBTFLOW_REQUIRE_SLURM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        up = subprocess.run(["bash", str(CLUSTER / "slurm_up.sh")], capture_output=True, text=True, timeout=900)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield
    finally:  # also after a half-failed start: stop whatever did start
        subprocess.run(["bash", str(CLUSTER / "slurm_down.sh")], capture_output=True, text=True, timeout=120)


def test_workflow_runs_as_slurm_jobs(slurm, tmp_path, embedded_model):
    work = make_workspace(tmp_path, SLURM_CONFIG, embedded_model)
    done = snakemake(
        work,
        "--profile",
        str(work / "profiles/slurm"),
        "--executor",
        "slurm",
        "--jobs",
        "2",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "5",
        "--latency-wait",
        "10",
        *NODE_RESOURCES,
        timeout=1500,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]

    expected = [
        "results/adapters/tiny/seed1/adapter_model.safetensors",
        "results/transcripts/tiny/instruct/seed1/eval-000.json",
        "results/transcripts/tiny/cbt/seed1/eval-001.json",
        "results/ctrs/lexicon/tiny/cbt/seed1/eval-000.json",
        "results/ctrs/lexicon/tiny/instruct/seed1/eval-001.json",
        "results/report/stats.json",
        "results/report/report.md",
    ]
    assert not [p for p in expected if not (work / p).exists()]

    # Every job but the local `all` went through sbatch, and SLURM ran each one to completion.
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", log)
    assert {"finetune", "simulate", "judge", "courses", "report"} <= {rule for _, rule in submitted}
    states = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True).stdout
    state_of = dict(line.split() for line in states.splitlines())
    assert all(state_of.get(job) == "COMPLETED" for job, _ in submitted), (submitted, state_of)

    done = snakemake(work, "-n")
    assert "Nothing to be done" in done.stdout + done.stderr
