"""Time the default workflow end to end on a fresh copy, and record per-stage figures.

Runs `snakemake --cores 2` in a temporary copy of the repository (so nothing here is
touched), keeping only the wheel cache so no download is timed, then reads Snakemake's
benchmark files and the usage logs. Prints a table and ends with `e2e_wall_seconds: N`.

    python bench/e2e.py [--keep DIR] [--configfile experiments/beyond.yaml]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_tree(dst: Path) -> None:
    for name in ("Snakefile", "config.yaml", "workflow", "scripts", "profiles", "envs", "experiments"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / name)
    shutil.copytree(ROOT / "resources", dst / "resources", ignore=shutil.ignore_patterns("models"))
    wheels = ROOT / ".cbtflow-cache" / "wheels"
    if wheels.exists():
        shutil.copytree(wheels, dst / ".cbtflow-cache" / "wheels")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", help="run in this directory and keep it")
    parser.add_argument("--configfile", help="an experiment file instead of config.yaml (e.g. experiments/beyond.yaml)")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cbtflow-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    copy_tree(work)
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "snakemake", "--cores", "2"]
        + (["--configfile", args.configfile] if args.configfile else []),
        cwd=work,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:])
        return 1
    peak_kb = max(int(line.split()[-1]) for line in done.stderr.splitlines() if "Maximum resident set size" in line)
    stage_seconds: dict[str, float] = defaultdict(float)
    stage_rss: dict[str, float] = defaultdict(float)
    for tsv in (work / "benchmarks").rglob("*.tsv"):
        stage = tsv.relative_to(work / "benchmarks").parts[0]
        row = next(csv.DictReader(tsv.open(), delimiter="\t"))
        stage_seconds[stage] += float(row["s"])
        stage_rss[stage] = max(stage_rss[stage], float(row["max_rss"]))
    tokens: dict[str, int] = defaultdict(int)
    for usage in (work / "results" / "usage").rglob("*.json"):
        doc = json.loads(usage.read_text())
        tokens[doc["stage"]] += int(doc["totals"]["completion_tokens"])
    train_tokens = sum(
        json.loads(p.read_text())["tokens_seen"] for p in (work / "results/adapters").rglob("train_log.json")
    )
    print(f"{'stage':<20}{'job seconds':>12}{'peak RSS MB':>14}{'tokens generated':>18}")
    for stage in sorted(set(stage_seconds) | set(tokens)):
        print(
            f"{stage:<20}{stage_seconds.get(stage, 0):>12.1f}{stage_rss.get(stage, 0):>14.0f}{tokens.get(stage, 0):>18}"
        )
    print(f"{'finetune (trained)':<20}{'':>12}{'':>14}{train_tokens:>18}")
    print(f"peak RSS of any process: {peak_kb / 1024:.0f} MB; workdir: {work}")
    print(f"e2e_wall_seconds: {wall:.1f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
