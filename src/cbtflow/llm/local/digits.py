"""Next-token probabilities over score digits (G-Eval), for local judges and questionnaires."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from cbtflow.llm.endpoint import Endpoint
from cbtflow.llm.local.loading import load
from cbtflow.llm.local.templates import render

# Conversations whose remainders after the shared prefix run as one padded batch: one
# instrument's items (11 for the CTRS) together, so a transcript's items cost one forward
# pass instead of eleven (a third of a local judge's time on the embedded model).
SCORE_ROWS = 12


def _last_logits(loaded, prompts: Sequence[Sequence[int]], shared: int):
    """The next-token logits after each prompt: the shared prefix encoded once, its KV state
    repeated for every row, then every remainder (right-padded; causal attention never lets
    a real token see the padding after it) in one forward pass, the output layer applied
    only at each row's last real position."""
    import torch

    model, device = loaded.model, loaded.device
    cache = None
    if shared:
        cache = model(torch.tensor([list(prompts[0][:shared])], device=device), use_cache=True, logits_to_keep=1)
        cache = cache.past_key_values
        cache.batch_repeat_interleave(len(prompts))
    rests = [list(p[shared:]) for p in prompts]
    width = max(map(len, rests))
    pad = loaded.tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rests], device=device)
    mask = torch.tensor([[1] * (shared + len(r)) + [0] * (width - len(r)) for r in rests], device=device)
    positions = (shared + torch.arange(width, device=device)).expand(len(rests), -1)
    hidden = model.get_decoder()(
        input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
    ).last_hidden_state
    last = hidden[torch.arange(len(rests), device=device), torch.tensor([len(r) - 1 for r in rests], device=device)]
    return model.get_output_embeddings()(last)


def score_distributions(
    endpoint: Endpoint,
    conversations: Sequence[Sequence[dict[str, str]]],
    candidates: Sequence[str],
    assistant_prefix: str = "",
) -> list[dict[str, Any]]:
    """Next-token probabilities over ``candidates`` after each conversation's prompt.

    The conversations usually share a long prefix (one transcript, many rubric items), so
    the longest common token prefix is run once and the remainders run together on copies
    of its KV state (``_last_logits``): the same numbers as separate forward passes at float32
    (tested), at a fraction of the cost.
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
        for first in range(0, len(prompts), SCORE_ROWS):
            chunk = prompts[first : first + SCORE_ROWS]
            for ids, logits in zip(chunk, _last_logits(loaded, chunk, shared)):
                probs_all = torch.softmax(logits.float(), dim=-1)
                picked = probs_all[candidate_ids]
                mass = float(picked.sum())
                results.append({"probs": (picked / picked.sum()).tolist(), "mass": mass, "prompt_tokens": len(ids)})
    seconds = time.perf_counter() - start
    for r in results:
        r["seconds"] = seconds / len(results)
        r["completion_tokens"] = 0
        r["cost_usd"] = 0.0
        r["runs_as"] = loaded.runs_as
    return results
