"""Next-token probabilities over score digits (G-Eval), for local judges and questionnaires."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from cbtflow.llm.endpoint import Endpoint
from cbtflow.llm.local.loading import load
from cbtflow.llm.local.templates import render


def score_distributions(
    endpoint: Endpoint,
    conversations: Sequence[Sequence[dict[str, str]]],
    candidates: Sequence[str],
    assistant_prefix: str = "",
) -> list[dict[str, Any]]:
    """Next-token probabilities over ``candidates`` after each conversation's prompt.

    The conversations usually share a long prefix (one transcript, many rubric items), so
    the longest common token prefix is run once and each conversation's remainder is run
    on a copy of that KV cache, cropped back after use: the same numbers as separate
    forward passes at a fraction of the cost.
    """
    import torch

    loaded = load(endpoint)
    tok = loaded.tokenizer
    candidate_ids = []
    for cand in candidates:
        ids = tok.encode(cand, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"score token {cand!r} is not a single token for {endpoint.local_path}")
        candidate_ids.append(ids[0])
    prompts = [tok.encode(render(tok, conv) + assistant_prefix, add_special_tokens=False) for conv in conversations]
    shared = 0
    while all(len(p) > shared + 1 for p in prompts) and len({p[shared] for p in prompts}) == 1:
        shared += 1
    results = []
    start = time.perf_counter()
    with torch.inference_mode():
        prefix = torch.tensor([prompts[0][:shared]], device=loaded.device)
        cache = loaded.model(prefix, use_cache=True).past_key_values if shared else None
        for ids in prompts:
            rest = torch.tensor([ids[shared:]], device=loaded.device)
            out = loaded.model(rest, past_key_values=cache, use_cache=True)
            logits = out.logits[0, -1].float()
            if cache is not None:
                cache.crop(-rest.shape[1])  # back to the shared prefix for the next item
            probs_all = torch.softmax(logits, dim=-1)
            picked = probs_all[candidate_ids]
            mass = float(picked.sum())
            results.append({"probs": (picked / picked.sum()).tolist(), "mass": mass, "prompt_tokens": len(ids)})
    seconds = time.perf_counter() - start
    for r in results:
        r["seconds"] = seconds / len(results)
        r["completion_tokens"] = 0
        r["cost_usd"] = 0.0
    return results
