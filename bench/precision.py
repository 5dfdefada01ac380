"""How far bfloat16 weights move the local model's outputs from float32, on the same inputs.

1. Sessions: the real simulate loop (therapist and patient both the embedded model, the
   default config's sampling made greedy) runs at float32. Every turn of those sessions is
   then regenerated from the identical float32 prompt (teacher forcing) at float32, bfloat16
   and int4: the share of turns that come out identical, and the share of tokens that agree
   before the first difference.
2. The judge: the default config's SmolLM2 judge (G-Eval over score digits) scores the
   float32 transcripts (or, with ``--transcripts``, a finished run's, both conditions) at
   each precision: the differences of item scores and totals against the spread of the
   totals between transcripts, and the cbt - instruct effect each precision gives.

The same for int4 (llm/local/int4.py). Prints a table and ends with
``int4_identical_turns: X`` (percent of turns identical to float32's).

    python bench/precision.py [--sessions 6] [--turns 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--transcripts", help="judge a finished run's results/transcripts instead of the sessions here")
    args = parser.parse_args()

    import torch
    import yaml
    from simulation_setup import embedded_base

    from cbtflow.config import run_facts, validate_config
    from cbtflow.data.profiles import load_attributes, sample_splits
    from cbtflow.dialogue import THERAPIST, Party, view
    from cbtflow.judge.run import judge_transcripts, load_job, packaged_files
    from cbtflow.layout import judge_settings
    from cbtflow.llm import Client, Endpoint, local
    from cbtflow.simulate.run import simulate

    torch.set_num_threads(args.threads)
    base = embedded_base()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate_config(config)
    profiles = sample_splits(load_attributes(ROOT / "resources/profiles/attributes.yaml"), 0, args.sessions, seed=7)[
        "eval"
    ]
    templates = [str(ROOT / "resources/prompts/therapist_system.j2"), str(ROOT / "resources/prompts/patient_system.j2")]
    therapist_sampling = {**config["therapist"]["sampling"], "temperature": 0.0}
    patient_sampling = {**config["roles"]["patient"]["sampling"], "temperature": 0.0}
    fp32 = Endpoint(f"local/{base}", precision="float32")
    faster = ("bfloat16", "int4")
    start = time.perf_counter()
    sessions = simulate(
        Client(),
        profiles,
        Party(fp32, therapist_sampling),
        Party(fp32, patient_sampling),
        *templates,
        args.turns,
        seed=1,
    )
    simulate_seconds = time.perf_counter() - start

    # Teacher forcing: every turn's prompt exactly as the float32 session had it.
    prompts, kinds = [], []
    for session in sessions:
        for index, turn in enumerate(session.turns):
            prompts.append(view(replace(session, turns=session.turns[:index]), turn["role"]))
            kinds.append(therapist_sampling if turn["role"] == THERAPIST else patient_sampling)
    replies = {}
    for name in ("float32", *faster):
        endpoint = replace(fp32, precision=name)
        loaded = local.load(endpoint)
        tokens, texts = [], []
        with loaded.options(reuse_prefixes=False):
            for prompt, kind in zip(prompts, kinds):
                reply = local.generate_batch(endpoint, [prompt], kind, 1)[0]
                texts.append(reply["text"])
                tokens.append(loaded.tokenizer.encode(reply["text"], add_special_tokens=False))
        replies[name] = (texts, tokens)

    def agreeing(x: list[int], y: list[int]) -> float:
        n = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
        return n / max(len(x), len(y), 1)

    rows: dict[str, dict[str, str]] = {name: {} for name in faster}
    a_text, a_tok = replies["float32"]
    for name in faster:
        b_text, b_tok = replies[name]
        rows[name]["turns identical"] = f"{sum(x == y for x, y in zip(a_text, b_text)) / len(a_text):.1%}"
        first = sum(bool(x) and bool(y) and x[0] == y[0] for x, y in zip(a_tok, b_tok)) / len(a_tok)
        rows[name]["first token identical"] = f"{first:.1%}"
        rows[name]["tokens agreeing before the first difference (mean share of a reply)"] = (
            f"{statistics.mean(agreeing(x, y) for x, y in zip(a_tok, b_tok)):.1%}"
        )

    if args.transcripts:  # a finished run's transcripts: both conditions, so the effect can be compared
        from cbtflow.score_files import load_transcript_file

        files = sorted(Path(args.transcripts).glob("*/*/seed*/*.json"))
        transcripts = [load_transcript_file(f) for f in files]
    else:
        transcripts = [
            {
                "profile_id": p["id"],
                "model": "fp32",
                "condition": "instruct",
                "seed": 1,
                "risk_level": p.get("risk_level", "none"),
                "n_tokens": 0,
                "eval_split": "held_out",
                "style": "plain",
                "turns": [{"role": t["role"], "text": t["text"]} for t in s.turns],
            }
            for p, s in zip(profiles, sessions)
        ]
    scored = {}
    for name in ("float32", *faster):
        judge = judge_settings(config, "smollm2")
        judge["endpoint"] = {**judge["endpoint"], "model": f"local/{base}", "precision": name}
        job = load_job(Client(), judge, packaged_files(judge, run_facts(config)), config["judging"]["rubric_variant"])
        scored[name] = judge_transcripts(job, transcripts, [f"t{i}.json" for i in range(len(transcripts))], seed=1)

    def effect(documents) -> float:
        """Mean cbt - instruct total over (model, seed, profile) pairs (nan with one condition)."""
        by = {
            (t["model"], t["seed"], t["profile_id"], t["condition"]): d["total"] for t, d in zip(transcripts, documents)
        }
        pairs = [
            v - by[(m, s, p, "instruct")]
            for (m, s, p, c), v in by.items()
            if c == "cbt" and (m, s, p, "instruct") in by
        ]
        return statistics.mean(pairs) if pairs else float("nan")

    totals = [d["total"] for d in scored["float32"]]
    for name in faster:
        item_diffs, total_diffs = [], []
        for x, y in zip(scored["float32"], scored[name]):
            total_diffs.append(y["total"] - x["total"])
            item_diffs += [abs(x["items"][k]["score"] - y["items"][k]["score"]) for k in x["items"]]
        other = [d["total"] for d in scored[name]]
        rows[name]["judge item score, mean absolute difference (0-6)"] = f"{statistics.mean(item_diffs):.3f}"
        rows[name]["judge total, mean absolute difference (0-66)"] = f"{statistics.mean(map(abs, total_diffs)):.3f}"
        rows[name]["judge total, mean difference (0-66)"] = f"{statistics.mean(total_diffs):+.3f}"
        rows[name]["judge totals, Pearson r with float32's"] = f"{statistics.correlation(totals, other):.3f}"
        rows[name]["judge's cbt - instruct effect (float32's in brackets)"] = (
            f"{effect(scored[name]):+.3f} ({effect(scored['float32']):+.3f})"
        )
    rows["float32"] = {"judge total, SD between transcripts": f"{statistics.stdev(totals):.3f}"}

    print(f"{len(sessions)} greedy sessions of {args.turns} utterances at float32 ({simulate_seconds:.0f} s);")
    print(f"{len(prompts)} turns regenerated from the same prompts; the judge on {len(transcripts)} transcripts")
    print("| measure | bfloat16 against float32 | int4 against float32 |")
    print("|---|---|---|")
    for measure in rows["int4"]:
        print(f"| {measure} | {rows['bfloat16'][measure]} | {rows['int4'][measure]} |")
    print(
        f"| judge total, SD between transcripts at float32 | {rows['float32']['judge total, SD between transcripts']} |"
    )
    print(f"int4_identical_turns: {rows['int4']['turns identical'].rstrip('%')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
