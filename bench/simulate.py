"""Batched session loop vs one session at a time, same sessions, same run.

Both variants run the real simulate loop on the embedded model (greedy, so they generate
the same turns), with the therapist and the patient on the same base, on N eval-like
profiles; no call cache. Prints tokens/s of each and ends with
`simulate_batched_speedup: R` (batched tokens/s ÷ sequential tokens/s).

    python bench/simulate.py [--sessions 4] [--turns 4] [--max-tokens 48] [--base DIR]
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
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--base", default=str(ROOT / "resources/models/smollm2-135m"))
    args = parser.parse_args()

    from simulation_setup import embedded_simulation

    from cbtflow.llm import Client, local
    from cbtflow.simulate.run import simulate

    profiles, party, templates, endpoint = embedded_simulation(args.base, args.sessions, args.max_tokens)

    def timed(groups):
        client = Client()
        start = time.perf_counter()
        sessions = [
            s for group in groups for s in simulate(client, group, party, party, *templates, args.turns, seed=1)
        ]
        seconds = time.perf_counter() - start
        return sessions, client.usage.totals()["completion_tokens"], seconds

    with local.load(endpoint).options(skinny_rows=range(0)):  # every layer on F.linear: the loop as first shipped
        plain_sessions, plain_tokens, plain_seconds = timed([profiles])
    seq_sessions, seq_tokens, seq_seconds = timed([[p] for p in profiles])  # one row: F.linear either way
    bat_sessions, bat_tokens, bat_seconds = timed([profiles])

    def same(runs):
        return sum(
            a.turns[i]["text"] == b.turns[i]["text"]
            for a, b in zip(seq_sessions, runs)
            for i in range(min(len(a.turns), len(b.turns)))
        )

    total = sum(len(s.turns) for s in seq_sessions)
    print("| variant | sessions | tokens | seconds | tokens/s | turns identical to sequential (greedy) |")
    print("|---|---|---|---|---|---|")
    for name, tokens, seconds, runs in (
        ("one session at a time", seq_tokens, seq_seconds, seq_sessions),
        ("batched loop, F.linear everywhere", plain_tokens, plain_seconds, plain_sessions),
        ("batched loop, W @ x.T at 2-16 rows (current)", bat_tokens, bat_seconds, bat_sessions),
    ):
        print(
            f"| {name} | {len(profiles)} | {tokens} | {seconds:.1f} | {tokens / seconds:.1f} | {same(runs)}/{total} |"
        )
    print(f"simulate_batched_speedup: {(bat_tokens / bat_seconds) / (seq_tokens / seq_seconds):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
