"""``cbtflow`` console command: validate artifacts, run the statistics, show a transcript."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_validate(args: argparse.Namespace) -> int:
    from cbtflow.validate import validate_path

    bad = 0
    for target in args.paths:
        if not Path(target).exists():
            print(f"{target}: no such file or directory", file=sys.stderr)
            bad += 1
            continue
        problems = validate_path(target)
        for problem in problems:
            print(problem, file=sys.stderr)
        bad += bool(problems)
        if not problems:
            print(f"{target}: valid")
    return 1 if bad else 0


def cmd_stats(args: argparse.Namespace) -> int:
    from cbtflow.io import write_json
    from cbtflow.scores import read_scores
    from cbtflow.stats import analyse

    write_json(args.output, analyse(read_scores(args.scores), threshold=args.threshold))
    print(f"wrote {args.output}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from cbtflow.dialogue import render_transcript

    doc = json.loads(Path(args.path).read_text(encoding="utf-8"))
    if doc.get("kind") == "course":
        for session in doc["sessions"]:
            print(f"=== session {session['number']}: {session['phase']} ===")
            print(render_transcript(session["turns"]))
            print(f"[summary] {session.get('summary', '')}\n")
    elif doc.get("kind") == "transcript":
        print(f"=== {doc['model']} / {doc['condition']} / seed {doc['seed']} / {doc['profile_id']} "
              f"(ending: {doc['ending']}) ===")
        print(render_transcript(doc["turns"]))
    else:
        print(f"{args.path}: not a course or transcript", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cbtflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check artifacts against their JSON Schemas")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("stats", help="run the full analysis on a scores table (CSV or parquet)")
    p.add_argument("scores")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--threshold", type=float, default=40.0, help="competence threshold on the 0-66 total")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("show", help="pretty-print a course or transcript")
    p.add_argument("path")
    p.set_defaults(func=cmd_show)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
