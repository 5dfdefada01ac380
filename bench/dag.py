"""How long Snakemake takes to plan the experiments: DAG build for a dry run, and a no-op rerun.

For each experiment file, copies the workflow into an empty temporary directory (so no
result exists and every job is planned) and times `snakemake -n --configfile F`, best of
`--repeats`. With `--run DIR` (a finished default run, e.g. `bench/e2e.py --keep DIR`),
also times `snakemake -n` there: a no-op rerun, which must find nothing to do. No model is
called. Prints a table and ends with `paper_dag_build_seconds: N`.

    python bench/dag.py [--repeats 3] [--run DIR]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from e2e import ROOT, copy_tree  # bench/ is on sys.path when this script runs

EXPERIMENTS = ("experiments/paper.yaml", "experiments/open-questions.yaml")


def dry_run(workdir: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "2", *args], cwd=workdir, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"snakemake -n {' '.join(args)} failed in {workdir}:\n{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


def planned_jobs(log: str) -> int:
    match = re.search(r"^total\s+(\d+)", log, flags=re.M)
    return int(match.group(1)) if match else 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", type=Path, help="a finished default run to time a no-op rerun in")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cbtflow-dag-") as tmp:
        work = Path(tmp)
        copy_tree(work)
        shutil.copytree(ROOT / "experiments", work / "experiments")
        for experiment in EXPERIMENTS:
            runs = [dry_run(work, "--configfile", experiment) for _ in range(args.repeats)]
            rows.append((f"dry run, {experiment}, empty dir", planned_jobs(runs[0][1]), min(s for s, _ in runs)))
    if args.run:
        runs = [dry_run(args.run) for _ in range(args.repeats)]
        if "Nothing to be done" not in runs[0][1]:
            raise SystemExit(f"{args.run} is not a finished run of this code: snakemake -n plans jobs")
        rows.append(("no-op rerun, default config, after a full run", 0, min(s for s, _ in runs)))

    print(f"| what | jobs planned | seconds (best of {args.repeats}) |\n|---|---|---|")
    for what, jobs, seconds in rows:
        print(f"| {what} | {jobs:,} | {seconds:.2f} |")
    print(f"paper_dag_build_seconds: {rows[0][2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
