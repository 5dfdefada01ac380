"""``cbtflow`` console command: validate artifacts, run the statistics, show a transcript,
estimate a run's cost."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cbtflow.packaged import DEFAULT_RUBRIC


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


def default_results(scores: str) -> str | None:
    """``results/`` when the scores are the report's own (``results/report/scores.parquet``)."""
    results = Path(scores).resolve().parents[1]
    return str(results) if (results / "ctrs").is_dir() else None


def run_documents(results: str | None) -> tuple[list | None, list | None, dict]:
    """A run's score documents, transcripts and the questionnaires its patients answered."""
    from cbtflow.io import read_json
    from cbtflow.packaged import RESOURCES
    from cbtflow.simulate.measures import load_measure

    if results is None:
        return None, None, {}
    root = Path(results)
    if not (root / "ctrs").is_dir() or not (root / "transcripts").is_dir():
        raise ValueError(f"{root}: no ctrs/ and transcripts/ here; pass the run's results directory to --results")
    documents = [read_json(p) for p in sorted((root / "ctrs").rglob("*.json")) if p.name.count(".") == 1]
    transcripts = [read_json(p) for p in sorted((root / "transcripts").rglob("*.json")) if p.name.count(".") == 1]
    names = sorted({name for t in transcripts for answers in (t.get("measures") or {}).values() for name in answers})
    return documents, transcripts, {name: load_measure(RESOURCES / "measures" / f"{name}.yaml") for name in names}


def cmd_stats(args: argparse.Namespace) -> int:
    """Fails (exit 2, nothing written) rather than write an empty or partial analysis. With
    the run's results directory (``--results``, found beside the scores when they sit in
    ``results/report/``) the file is the report rule's, crisis, outcomes and failures included."""
    from cbtflow.instrument import competence_threshold, item_ids, load_rubric
    from cbtflow.io import write_json
    from cbtflow.judge.scores import read_scores
    from cbtflow.stats.document import stats_document

    if not Path(args.scores).exists():
        print(f"cbtflow stats: {args.scores}: no such file", file=sys.stderr)
        return 2
    try:
        rubric = load_rubric(args.rubric or DEFAULT_RUBRIC, args.variant)
        documents, transcripts, measures = run_documents(args.results or default_results(args.scores))
        result = stats_document(
            read_scores(args.scores, rubric),
            threshold=competence_threshold(rubric, args.threshold),
            item_order=item_ids(rubric),
            documents=documents,
            transcripts=transcripts,
            measures=measures,
            primary_judge=args.primary_judge,
            source=str(args.scores),
        )
    except ValueError as err:
        print(f"cbtflow stats: {err}", file=sys.stderr)
        return 2
    unanswered = [
        f"{judge}: {block['primary'][name]['_pooled'].get('reason', 'not run')}"
        for judge, block in result["judges"].items()
        for name in block["primary"]
        if not any(entry.get("ran") for entry in block["primary"][name].values())
    ]
    if len(unanswered) == sum(len(block["primary"]) for block in result["judges"].values()):
        print("cbtflow stats: no contrast could be tested, nothing written: " + "; ".join(unanswered), file=sys.stderr)
        return 2
    write_json(args.output, result)
    for judge, block in result["judges"].items():
        for model, headline in block["primary"].get("cbt_vs_instruct", {}).items():
            if headline.get("ran"):
                low, high = headline["ci95"] or (None, None)
                over = " and ".join(headline.get("generalises_over", []))
                print(
                    f"{judge} {'pooled' if model == '_pooled' else model}: cbt − instruct "
                    f"{_number(headline['estimate'], '+.2f')} [95% CI {_number(low, '.2f')}, {_number(high, '.2f')}], "
                    f"p = {_number(headline['p'], '.3g')}, df {_number(headline.get('df'), '.3g')}, "
                    f"generalises over {over}"
                )
    print(f"wrote {args.output}")
    return 0


def _number(value: float | None, spec: str) -> str:
    """A statistic as printed, or a dash where the analysis could not give one (a degenerate fit)."""
    return "—" if value is None else format(value, spec)


def cmd_show(args: argparse.Namespace) -> int:
    from cbtflow.dialogue import render_transcript

    doc = json.loads(Path(args.path).read_text(encoding="utf-8"))
    if doc.get("kind") == "course":
        for session in doc["sessions"]:
            print(f"=== session {session['number']}: {session['phase']} ===")
            print(render_transcript(session["turns"]))
            print(f"[summary] {session.get('summary', '')}\n")
    elif doc.get("kind") == "transcript":
        print(
            f"=== {doc['model']} / {doc['condition']} / seed {doc['seed']} / {doc['profile_id']} "
            f"(ending: {doc['ending']}) ==="
        )
        print(render_transcript(doc["turns"]))
    else:
        print(f"{args.path}: not a course or transcript", file=sys.stderr)
        return 1
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from cbtflow.llm.cache import CallCache

    if not ((Path(args.dir) / "entries").is_dir() or (Path(args.dir) / "calls.sqlite").exists()):
        print(f"{args.dir}: no call cache here", file=sys.stderr)
        return 1
    cache = CallCache(args.dir)
    if args.action == "stats":
        print(json.dumps(cache.stats(), indent=2))
    else:
        print(f"removed {cache.prune(args.older_than_days)} entries older than {args.older_than_days} days")
    return 0


def cmd_export_ratings(args: argparse.Namespace) -> int:
    from cbtflow.instrument import load_rubric
    from cbtflow.judge.ratings import export_ratings

    paths = sorted(Path(args.transcripts).rglob("*.json"))
    if not paths:
        print(f"{args.transcripts}: no transcripts found", file=sys.stderr)
        return 1
    n = export_ratings(paths, args.out, load_rubric(args.rubric, args.variant), seed=args.seed)
    print(f"wrote {n} blinded transcripts, {args.out}/sheet.csv and {args.out}/key.json (keep the key from raters)")
    return 0


def cmd_rating_kit(args: argparse.Namespace) -> int:
    from cbtflow.instrument import load_rubric
    from cbtflow.judge.rating_kit import build_kit

    paths = sorted(p for p in Path(args.transcripts).rglob("*.json") if p.name.count(".") == 1)
    if not paths:
        print(f"{args.transcripts}: no transcripts found", file=sys.stderr)
        return 1
    try:
        kit = build_kit(
            [json.loads(p.read_text(encoding="utf-8")) for p in paths],
            args.out,
            load_rubric(args.rubric, args.variant),
            raters=args.raters,
            overlap=args.overlap,
            calibration=args.calibration,
            seed=args.seed,
        )
    except ValueError as err:
        print(f"cbtflow rating-kit: {err}", file=sys.stderr)
        return 2
    pages = ", ".join(f"{args.out}/{rater}.html" for rater in kit["assignment"])
    print(
        f"rating kit {kit['kit_id']}: {len(kit['transcripts'])} blinded transcripts, {kit['raters']} raters "
        f"({len(kit['calibration'])} calibration transcripts each, every other one to {kit['overlap']}); "
        f"pages: {pages}; keep {args.out}/key.json from the raters"
    )
    return 0


def cmd_import_ratings(args: argparse.Namespace) -> int:
    from cbtflow.instrument import load_rubric
    from cbtflow.judge.rating_kit import load_kit
    from cbtflow.judge.ratings import import_ratings

    kit_path = Path(args.kit) if args.kit else Path(args.key).with_name("kit.json")
    kit = load_kit(kit_path) if args.kit or kit_path.is_file() else None  # a rating kit's sheet carries its id
    try:
        table = import_ratings(args.sheets, args.key, load_rubric(args.rubric, args.variant), kit)
    except ValueError as err:
        print(f"cbtflow import-ratings: {err}", file=sys.stderr)
        return 2
    table.write_parquet(args.output) if args.output.endswith(".parquet") else table.write_csv(args.output)
    raters = table["judge"].n_unique()
    print(f"wrote {table.height} rows ({raters} raters) to {args.output}; set report.human_ratings to it")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from cbtflow.push import describe, plan, push

    try:
        uploads = plan(args.results, args.namespace, args.adapters, args.dataset)
        print(describe(uploads))
        if args.dry_run:
            print(f"dry run: {len(uploads)} repositories, {sum(len(u.files) for u in uploads)} files; nothing uploaded")
            return 0
        for url in push(uploads):
            print(url)
    except ValueError as err:
        print(f"cbtflow push: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from cbtflow.config import ConfigError
    from cbtflow.score_files import score_files

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        print(f"cbtflow score: no such file(s): {missing}", file=sys.stderr)
        return 2
    try:
        written = score_files(args.files, args.judge, args.configfile, args.output, args.seed, args.overwrite)
    except (ValueError, ConfigError) as err:
        print(f"cbtflow score: {err}", file=sys.stderr)
        return 2
    for path in written:
        doc = json.loads(path.read_text(encoding="utf-8"))
        flags = ", ".join(f"{f['kind']}:{f['detector']}" for f in doc["flags"]) or "no flags"
        print(f"{path}: total {doc['total']:g} of {doc['max_total']} ({flags})")
    return 0


def cmd_judge_card(args: argparse.Namespace) -> int:
    """One judge's card, as the judge_card rule writes it; fails (exit 2) on bad input."""
    import yaml

    from cbtflow.config import ConfigError, validate_config
    from cbtflow.io import write_json
    from cbtflow.validation.card import card_for
    from cbtflow.validation.perturb import DEFAULT_PERTURBATIONS

    output = args.output or f"results/judge_cards/{args.judge}.json"
    try:
        config = yaml.safe_load(Path(args.configfile).read_text(encoding="utf-8"))
        validate_config(config)
        card = card_for(config, args.judge, args.perturbations or str(DEFAULT_PERTURBATIONS), f"{output}.raw")
    except (OSError, ValueError, ConfigError) as err:
        print(f"cbtflow judge-card: {err}", file=sys.stderr)
        return 2
    write_json(output, card)
    for name, result in card["reference_sets"].items():
        judge, length = result["judge"], result["length_alone"]
        print(
            f"{args.judge} on {name} (n = {result['n']}): {result['statistic']} {judge['estimate']:.3f} "
            f"[{judge['ci95'][0]}, {judge['ci95'][1]}]; length alone {length['estimate']:.3f}"
        )
    for name, verdict in card["verdicts"].items():
        print(f"  {name}: {'passed' if verdict['passed'] else 'FAILED'} ({verdict['rule']})")
    print(f"wrote {output}: card {'passed' if card['passed'] else 'FAILED'}")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    import yaml

    from cbtflow.config import validate_config
    from cbtflow.estimate import format_plan, plan
    from cbtflow.stats.power import DEFAULT_SDS, format_planning, from_pilot, planning_rows

    config = yaml.safe_load(Path(args.configfile).read_text(encoding="utf-8"))
    validate_config(config)
    try:
        sds = from_pilot(args.pilot, args.pilot_judge) if args.pilot else DEFAULT_SDS
    except ValueError as err:
        print(f"cbtflow estimate: {err}", file=sys.stderr)
        return 2
    print(format_plan(plan(config)))
    print()
    rows = planning_rows(config["profiles"]["eval"], len(config["seeds"]), sds, args.effect)
    print(format_planning(rows, sds, args.effect))
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
    p.add_argument("--threshold", type=float, help="competence threshold on the total (default: the rubric's)")
    p.add_argument(
        "--rubric", help="rubric YAML whose items make the totals of an item-only table (default: the project's CTRS)"
    )
    p.add_argument("--variant", default="ctrs-modified", help="rubric variant (default: ctrs-modified)")
    p.add_argument("--primary-judge", help="the judge the robustness matrix is read against (report.primary_judge)")
    p.add_argument(
        "--results",
        help="the run's results directory, for crisis, outcomes and failures (default: beside results/report/)",
    )
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("score", help='score transcript files (full or minimal {"turns": [...]}) with a judge')
    p.add_argument("files", nargs="+")
    p.add_argument("--judge", required=True, help="a judge name from the config's judges")
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("-o", "--output", required=True, help="directory for one score document per input")
    p.add_argument("--seed", type=int, default=0, help="judge sampling seed and shuffle order")
    p.add_argument("--overwrite", action="store_true", help="replace score files that exist already")
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("judge-card", help="what a judge measures: reference sets and perturbations")
    p.add_argument("--judge", required=True, help="a judge name from the config's judges")
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--perturbations", help="perturbation file (default: resources/perturbations.yaml)")
    p.add_argument("-o", "--output", help="card path (default: results/judge_cards/<judge>.json)")
    p.set_defaults(func=cmd_judge_card)
    p = sub.add_parser("show", help="pretty-print a course or transcript")
    p.add_argument("path")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("cache", help="inspect or prune the call cache")
    p.add_argument("action", choices=["stats", "prune"])
    p.add_argument("--dir", default=".cbtflow-cache")
    p.add_argument("--older-than-days", type=float, default=90.0)
    p.set_defaults(func=cmd_cache)
    for name, func, help_text in (
        ("export-ratings", cmd_export_ratings, "blinded transcripts + an empty rating sheet"),
        ("import-ratings", cmd_import_ratings, "a filled rating sheet -> scores table"),
        ("rating-kit", cmd_rating_kit, "a blinded rating page per rater, with calibration and overlap for agreement"),
    ):
        p = sub.add_parser(name, help=help_text)
        if name in ("export-ratings", "rating-kit"):
            p.add_argument("--transcripts", default="results/transcripts")
            p.add_argument("-o", "--out", default="ratings" if name == "export-ratings" else "rating_kit")
            p.add_argument("--seed", type=int, default=0)
        if name == "rating-kit":
            p.add_argument("--raters", type=int, required=True)
            p.add_argument("--overlap", type=int, default=2, help="raters per transcript beyond calibration (2)")
            p.add_argument("--calibration", type=int, default=3, help="transcripts every rater rates first (3)")
        if name == "import-ratings":
            p.add_argument("sheets", nargs="+", metavar="SHEET", help="one filled sheet, or a rating kit's sheets")
            p.add_argument("--key", required=True)
            p.add_argument("--kit", help="the rating kit's kit.json (default: beside the key, when there)")
            p.add_argument("-o", "--output", required=True)
        p.add_argument("--rubric", default=str(DEFAULT_RUBRIC))
        p.add_argument("--variant", default="ctrs-modified")
        p.set_defaults(func=func)
    p = sub.add_parser("push", help="upload adapters and the training set, with their cards, to the Hugging Face Hub")
    p.add_argument("--namespace", required=True, help="the Hub user or organisation")
    p.add_argument("--adapters", action="store_true", help="every adapter under results/adapters")
    p.add_argument("--dataset", action="store_true", help="every training set under results/datasets")
    p.add_argument("--results", default="results")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded; make no call")
    p.set_defaults(func=cmd_push)
    p = sub.add_parser("estimate", help="planned calls, tokens and cost per stage and role (no call is made)")
    p.add_argument("--configfile", default="config.yaml")
    p.add_argument("--effect", type=float, default=5.0, help="cbt − instruct to power for, in total points (5)")
    p.add_argument("--pilot", help="a pilot's stats.json: its measured sds replace the documented defaults")
    p.add_argument("--pilot-judge", help="the pilot judge whose sds to read (default: the pilot's primary judge)")
    p.set_defaults(func=cmd_estimate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
