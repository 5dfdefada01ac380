"""What a turn costs as sessions grow: the local loop re-encoding every prompt whole vs the
loop that reuses each conversation's KV state from its previous turn (llm/prefix.py).

Both loops run the real simulate code on the embedded model, 4 sessions, greedy, 48 tokens
a reply, no call cache, for 4, 8, 16 and 24 turns, in the same process (runs of up to 8
turns: the fastest of three). Greedy turns of the
two loops are compared word for word. Ends with
`simulate_turn_cost_growth: R`: seconds per turn at the longest length divided by seconds
per turn at the shortest, for the reusing loop (1.0 = a turn costs the same however long the
session already is).

    python bench/session_length.py [--sessions 4] [--turns 4 8 16 24] [--max-tokens 48] [--base DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--turns", type=int, nargs="+", default=[4, 8, 16, 24])
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--base", default=str(ROOT / ".cbtflow-cache/test-models/smollm2-135m"))
    args = parser.parse_args()

    import torch
    from simulation_setup import embedded_simulation

    from cbtflow.llm import Client, local
    from cbtflow.llm.embedded import prepare_base_model
    from cbtflow.simulate.run import simulate

    if not (Path(args.base) / "model.safetensors").exists():
        prepare_base_model("smollm2-135m", Path(args.base), ROOT / ".cbtflow-cache/wheels")
    profiles, party, templates, endpoint = embedded_simulation(args.base, args.sessions, args.max_tokens)

    def fastest(turns: int, reuse: bool) -> dict:
        """Short runs are noisy at this scale (a few seconds): the fastest of three."""
        runs = [run(turns, reuse) for _ in range(3 if turns <= 8 else 1)]
        return min(runs, key=lambda r: r["seconds"])

    def run(turns: int, reuse: bool) -> dict:
        loaded = local.load(endpoint)
        loaded.prefixes.clear()  # nothing from the previous run's identical sessions
        client = Client()
        with loaded.options(reuse_prefixes=reuse):
            start = time.perf_counter()
            sessions = simulate(client, profiles, party, party, *templates, turns, seed=1)
            seconds = time.perf_counter() - start
        totals = client.usage.totals()
        played = max(len(s.turns) for s in sessions)  # turn steps the batch took
        return {
            "seconds": seconds,
            "prompt": int(totals["prompt_tokens"]),
            "reused": int(totals["cached_prompt_tokens"]),
            "new": int(totals["completion_tokens"]),
            "per_turn": seconds / played,
            "texts": [[t["text"] for t in s.turns] for s in sessions],
        }

    rows = []
    for turns in args.turns:
        whole, reusing = fastest(turns, reuse=False), fastest(turns, reuse=True)
        same = sum(a == b for x, y in zip(whole["texts"], reusing["texts"]) for a, b in zip(x, y))
        total = sum(len(x) for x in whole["texts"])
        rows.append((turns, whole, reusing, f"{same}/{total}"))

    print(
        f"{args.sessions} sessions, greedy, {args.max_tokens} tokens a reply, {Path(args.base).name}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        "| turns per session | loop | seconds | prompt tokens | of which reused | new tokens | tokens/s "
        "| seconds per turn | turns identical |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for turns, whole, reusing, same in rows:
        for name, r in (("re-encode", whole), ("reuse KV", reusing)):
            print(
                f"| {turns} | {name} | {r['seconds']:.1f} | {r['prompt']:,} | {r['reused']:,} | {r['new']:,} | "
                f"{r['new'] / r['seconds']:.1f} | {r['per_turn']:.2f} | {same if name == 'reuse KV' else ''} |"
            )
    first, last = rows[0], rows[-1]
    print(f"re-encode loop growth: {last[1]['per_turn'] / first[1]['per_turn']:.2f}")
    print(f"simulate_turn_cost_growth: {last[2]['per_turn'] / first[2]['per_turn']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
