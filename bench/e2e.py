"""Time the default workflow end to end on a fresh copy, and record per-stage figures.

Runs `snakemake --cores 2` in a temporary copy of the repository (so nothing here is
touched), keeping only the wheel cache so no download is timed, then reads Snakemake's
benchmark files, its log (each stage's wall-clock span), the usage logs and the job logs
(every local model load, and how many ran in workers of the run's local model server).
Prints a table and ends with `e2e_wall_seconds: N`.

    python bench/e2e.py [--keep DIR] [--configfile experiments/beyond.yaml]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
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


LOADED = re.compile(r"cbtflow\.llm\.local\.loading: loaded \S+(?: \+ \S+)? in (\w+) on (\w+)")
FORKED = "forked from the run's local model server"
WORKER_RSS = re.compile(r"model worker \d+ done: peak RSS (\d+) MB")


def model_loads(logs: Path) -> tuple[Counter, int, dict[str, float]]:
    """Every local model load the jobs logged (llm/local/loading.py), by precision; how
    many job logs say their model ran in a worker of the run's server; and per stage the
    largest peak RSS a worker logged when its job hung up (llm/local/forkserver.py), which
    the job's own benchmark file does not see."""
    loads: Counter = Counter()
    workers = 0
    worker_rss: dict[str, float] = defaultdict(float)
    for path in logs.rglob("*.log"):
        text = path.read_text(errors="replace")
        loads.update(f"{precision} on {device}" for precision, device in LOADED.findall(text))
        workers += text.count(FORKED)
        stage = path.relative_to(logs).parts[0]
        for mb in WORKER_RSS.findall(text):
            worker_rss[stage] = max(worker_rss[stage], float(mb))
    return loads, workers, worker_rss


# A later session of a course is its own rule whose benchmark files sit in its stage's folder.
COURSE_RULES = {"simulate_course": "simulate", "judge_course": "judge"}


def stage_spans(work: Path) -> dict[str, tuple[float, float, int]]:
    """Per stage (a rule, a course's later sessions counted with their stage): (first start,
    last end) in seconds from the run's start, and the job count, read from Snakemake's log."""
    log = sorted((work / ".snakemake" / "log").glob("*.snakemake.log"))[-1].read_text()
    stamp = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", re.M)
    jobs: dict[str, list] = {}
    clock = None
    for block in re.split(r"\n(?=\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]\n)", log):
        found = stamp.search(block)
        if not found:
            continue
        clock = time.mktime(time.strptime(found.group(1), "%a %b %d %H:%M:%S %Y"))
        started = re.search(r"rule (\w+):.*?jobid: (\d+)", block, re.S)
        if started:
            jobs[started.group(2)] = [started.group(1), clock, clock]
        for finished in re.findall(r"Finished jobid: (\d+)", block):
            if finished in jobs:
                jobs[finished][2] = clock
    origin = min((start for _, start, _ in jobs.values()), default=0.0)
    spans: dict[str, tuple[float, float, int]] = {}
    for rule, start, end in jobs.values():
        rule = COURSE_RULES.get(rule, rule)
        first, last, count = spans.get(rule, (start - origin, end - origin, 0))
        spans[rule] = (min(first, start - origin), max(last, end - origin), count + 1)
    return spans


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
    loads, workers, worker_rss = model_loads(work / "logs")
    spans = stage_spans(work)
    print(
        f"{'stage':<26}{'jobs':>5}{'job seconds':>12}{'wall span s':>12}{'peak RSS MB':>12}"
        f"{'worker RSS MB':>14}{'tokens out':>11}"
    )
    for stage in sorted(set(stage_seconds) | set(tokens)):
        first, last, jobs = spans.get(stage, (0.0, 0.0, 0))
        print(
            f"{stage:<26}{jobs:>5}{stage_seconds.get(stage, 0):>12.1f}{last - first:>12.1f}"
            f"{stage_rss.get(stage, 0):>12.0f}{worker_rss.get(stage, 0):>14.0f}{tokens.get(stage, 0):>11}"
        )
    print(f"{'finetune (tokens trained)':<26}{'':>5}{'':>12}{'':>12}{'':>12}{'':>14}{train_tokens:>11}")
    print(f"model loads for generation and judging: {sum(loads.values())}, by precision: {dict(loads)}")
    print(f"jobs whose models ran in a worker forked from the run's local model server: {workers}")
    print("(peak RSS: the job's benchmark file; worker RSS: its model worker's, shared pages included, as logged)")
    print(f"peak RSS of any process: {peak_kb / 1024:.0f} MB; workdir: {work}")
    print(f"e2e_wall_seconds: {wall:.1f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
