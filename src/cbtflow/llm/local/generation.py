"""Batched generation for local models, continuing each conversation's stored KV state
from its previous turn where the model and its template allow (llm/prefix.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from cbtflow.llm import prefix
from cbtflow.llm.endpoint import Endpoint
from cbtflow.llm.local.loading import LocalModel, load
from cbtflow.llm.local.templates import render
from cbtflow.llm.sampling import with_defaults


def generation_kwargs(tokenizer, sampling: dict[str, Any]) -> dict[str, Any]:
    """``generate`` settings for a role's sampling (with the schema's defaults)."""
    temperature = float(sampling["temperature"])
    kwargs: dict[str, Any] = {"max_new_tokens": int(sampling["max_tokens"]), "pad_token_id": tokenizer.pad_token_id}
    # Small models loop on their own phrases; these two knobs keep them talking.
    for knob, cast in (("repetition_penalty", float), ("no_repeat_ngram_size", int)):
        if sampling.get(knob):
            kwargs[knob] = cast(sampling[knob])
    if temperature > 0:
        # Unset top_p means no truncation, whatever the checkpoint's generation_config says.
        kwargs.update(do_sample=True, temperature=temperature, top_p=float(sampling.get("top_p", 1.0)))
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


def _generate_whole(loaded: LocalModel, prompts: list[str], kwargs: dict[str, Any]):
    """Every prompt encoded whole, as one left-padded batch. Returns the new tokens per row,
    the prompt lengths and how many prompt tokens came from a stored state (none)."""
    tok = loaded.tokenizer
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(loaded.device)
    out = loaded.model.generate(**enc, **kwargs)
    lengths = [int(n) for n in enc["attention_mask"].sum(dim=1)]
    return out[:, enc["input_ids"].shape[1] :], lengths, [0] * len(prompts)


def _generate_reusing(loaded: LocalModel, prompts: list[str], kwargs: dict[str, Any]):
    """The same batch, each prompt continuing the stored state that shares its longest
    token prefix (llm/prefix.py): only the tokens after it are encoded, one row at a time,
    then every row decodes together on the left-padded states, exactly as a padded batch.
    Each row's prompt and reply go back into the pool for its next turn."""
    import torch

    tok, model, pool = loaded.tokenizer, loaded.model, loaded.prefixes
    ids = [tok.encode(p, add_special_tokens=False) for p in prompts]
    states, reused, sources = [], [], []
    for row in ids:
        head = len(row) - 1  # generate feeds the last prompt token itself
        shared, entry = pool.longest(row[:head])
        if entry is not None:
            sources.append((entry, shared))
        layers = [(k[:, :, :shared], v[:, :, :shared]) for k, v in entry.layers] if entry else []
        if shared < head:
            cache = prefix.as_cache(layers)
            model(  # for its keys and values only: no logits beyond one position
                torch.tensor([row[shared:head]], device=loaded.device),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            layers = prefix.cache_layers(cache)
            pool.put(row[:head], layers)  # a later row with the same opening shares it
        states.append(layers)
        reused.append(shared)
    width = max(map(len, ids))
    input_ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in ids], device=loaded.device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in ids], device=loaded.device)
    out = model.generate(
        input_ids=input_ids,
        attention_mask=mask,
        past_key_values=prefix.left_padded(states, width - 1, room=int(kwargs["max_new_tokens"]) + 1),
        return_dict_in_generate=True,
        **kwargs,
    )
    stored = out.past_key_values.get_seq_length()
    # The states these prompts continued are superseded (a reply re-rendered into the next
    # prompt need not match the generated tokens exactly, so they are not always prefixes).
    pool.retire(sources)
    for i, row in enumerate(ids):
        start = width - len(row)
        state = prefix.row_state(out.past_key_values, i, start, stored)
        pool.put(out.sequences[i, start:stored].tolist(), state, prompt_tokens=len(row))
    pool.end_call()
    return out.sequences[:, width:], [len(r) for r in ids], reused


def generate_batch(
    endpoint: Endpoint, conversations: Sequence[Sequence[dict[str, str]]], sampling: dict[str, Any], seed: int
) -> list[dict[str, Any]]:
    """Generate one reply per conversation in a single left-padded batch, reusing each
    conversation's stored KV state from its previous turn where the model allows."""
    import torch

    loaded = load(endpoint)
    tok = loaded.tokenizer
    tok.padding_side = "left"
    prompts = [render(tok, conv) for conv in conversations]
    sampling = with_defaults(sampling)
    kwargs = generation_kwargs(tok, sampling)
    reuse = loaded.reuse_prefixes and loaded.prefixes is not None
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.inference_mode():
        new_tokens, prompt_lengths, reused = (_generate_reusing if reuse else _generate_whole)(loaded, prompts, kwargs)
    seconds = time.perf_counter() - start
    replies = []
    for row, prompt_tokens, cached in zip(new_tokens, prompt_lengths, reused):
        ids = [t for t in row.tolist() if t != tok.pad_token_id]
        text = tok.decode(ids, skip_special_tokens=True)
        for stop in sampling.get("stop") or []:
            text = text.split(stop, 1)[0]
        replies.append(
            {
                "text": text.strip(),
                "prompt_tokens": prompt_tokens,
                "cached_prompt_tokens": cached,
                "completion_tokens": len(ids),
                "seconds": seconds / len(prompts),
                "cost_usd": 0.0,
                "runs_as": loaded.runs_as,
            }
        )
    return replies
