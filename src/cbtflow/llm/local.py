"""In-process transformers backend for ``local/...`` endpoints.

A job loads each local model once (``load``) and generates all its pending conversations
as one left-padded batch, because on a CPU the decode step is bound by memory bandwidth:
a batch of 4 costs little more per step than a batch of 1.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cbtflow.llm import prefix
from cbtflow.llm.endpoint import Endpoint
from cbtflow.llm.sampling import with_defaults

log = logging.getLogger(__name__)

# Whether generate_batch reuses each conversation's KV state from its previous turn (see
# llm/prefix.py). bench/session_length.py turns it off to time the loop without reuse.
REUSE_PREFIXES = True


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    # Stored KV states of recent conversations; None where the model or its chat template
    # cannot reuse them (every prompt is then encoded whole).
    prefixes: prefix.PrefixPool | None = None


def pick_device() -> str:
    """CUDA when the scheduler gave us a GPU (CUDA_VISIBLE_DEVICES is honoured by torch)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(path: str, chat_template: str | None = None):
    """The base's tokenizer; ``chat_template`` (a Jinja file) overrides or supplies its template."""
    from pathlib import Path

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template:
        tokenizer.chat_template = Path(chat_template).read_text(encoding="utf-8")
    if not tokenizer.chat_template:
        raise ValueError(
            f"{path}: the tokenizer has no chat template; set bases.<name>.chat_template in config "
            "(e.g. chatml or llama3, from resources/chat_templates)"
        )
    return tokenizer


# Decode steps multiply a few rows (one per active session) by every weight matrix. MKL's
# sgemm for x @ W.T is slow at 2-16 rows on this CPU (lm_head, 4 rows: 39 ms vs 14 ms for
# one row), while the same product as W @ x.T reads each weight once, as a GEMV does
# (11 ms). Measured in bench/simulate.py; one row keeps F.linear, which is faster there.
SKINNY_ROWS = range(2, 17)


def use_skinny_linear(model) -> int:
    """Route the model's CPU linear layers with 2-16 input rows through ``W @ x.T``;
    returns how many layers. Called once per load, so the forward itself imports nothing."""
    import types

    import torch
    import torch.nn.functional as F

    def forward(self, x):
        rows = x.numel() // x.shape[-1]
        if rows not in SKINNY_ROWS:
            return F.linear(x, self.weight, self.bias)
        # contiguous(): a transposed result would make every later op (rotary, KV cache) strided and slow
        y = (self.weight @ x.reshape(rows, -1).T).T.contiguous().reshape(*x.shape[:-1], self.weight.shape[0])
        return y if self.bias is None else y + self.bias

    layers = [m for m in model.modules() if type(m) is torch.nn.Linear]
    for layer in layers:
        layer.forward = types.MethodType(forward, layer)
    return len(layers)


@lru_cache(maxsize=4)
def load(endpoint: Endpoint) -> LoadedModel:
    """Load (once per process) the base model and, if given, merge its LoRA adapter."""
    import torch
    from transformers import AutoModelForCausalLM

    device = pick_device()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = load_tokenizer(endpoint.local_path, endpoint.chat_template)
    model = AutoModelForCausalLM.from_pretrained(endpoint.local_path, dtype=dtype)
    if endpoint.adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, endpoint.adapter).merge_and_unload()
        except Exception as err:  # a half-written or foreign adapter dir
            raise ValueError(
                f"adapter {endpoint.adapter} could not be loaded onto {endpoint.local_path}: {err}."
                " Delete it and rerun the finetune rule."
            ) from err
    model.to(device).eval()
    if device == "cpu":
        use_skinny_linear(model)
        # With a padding mask, transformers copies each layer's keys and values up to the
        # query heads (repeat_kv) at every decode step, a cost that grows with the context;
        # torch's CPU attention takes grouped heads with a mask directly, with identical
        # logits (checked). CUDA keeps transformers' choice (its masked GQA path is slower).
        os.environ.setdefault("TRANSFORMERS_SDPA_FORCE_GQA", "1")
    reusable = prefix.reusable_model(model)
    if reusable and not _template_accepts(tokenizer):
        log.warning(
            "%s: the chat template re-renders earlier turns differently as a conversation grows; "
            "every turn's prompt is encoded whole (no KV reuse across turns)",
            endpoint.local_path,
        )
        reusable = False
    return LoadedModel(
        model=model, tokenizer=tokenizer, device=device, prefixes=prefix.PrefixPool() if reusable else None
    )


def render(tokenizer, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def prefix_stable(tokenizer, messages: Sequence[dict[str, str]]) -> bool:
    """Whether the text before each assistant turn (with the generation prompt) and the text
    up to its end are prefixes of the whole rendering.

    Mistral v0.3's published template puts the system text inside the last user turn only:
    the prompt before an assistant turn carries it, the whole conversation (ending on an
    assistant turn) drops it. Such a template is not prefix-stable. Training needs this to
    mask assistant tokens; generation needs it to continue a conversation's stored KV state
    (each turn's prompt then starts with the previous prompt and reply)."""
    text = render(tokenizer, messages, add_generation_prompt=False)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head = render(tokenizer, messages[:index], add_generation_prompt=True)
        upto = render(tokenizer, messages[: index + 1], add_generation_prompt=False)
        if not (text.startswith(upto) and upto.startswith(head)):
            return False
    return True


# A conversation to probe a chat template with (``prefix_stable``) before reusing KV states.
TEMPLATE_PROBE = (
    {"role": "system", "content": "You are a careful therapist."},
    {"role": "user", "content": "I have felt low for weeks."},
    {"role": "assistant", "content": "That sounds hard. What has been happening?"},
    {"role": "user", "content": "Work, mostly. I can't sleep."},
    {"role": "assistant", "content": "Let's look at one night together."},
    {"role": "user", "content": "Last night I lay awake until three."},
)


def _template_accepts(tokenizer) -> bool:
    try:
        return prefix_stable(tokenizer, TEMPLATE_PROBE)
    except Exception:  # a template that rejects the probe (strict alternation rules, say)
        return False


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


def _generate_whole(loaded: LoadedModel, prompts: list[str], kwargs: dict[str, Any]):
    """Every prompt encoded whole, as one left-padded batch. Returns the new tokens per row,
    the prompt lengths and how many prompt tokens came from a stored state (none)."""
    tok = loaded.tokenizer
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(loaded.device)
    out = loaded.model.generate(**enc, **kwargs)
    lengths = [int(n) for n in enc["attention_mask"].sum(dim=1)]
    return out[:, enc["input_ids"].shape[1] :], lengths, [0] * len(prompts)


def _generate_reusing(loaded: LoadedModel, prompts: list[str], kwargs: dict[str, Any]):
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
            model(torch.tensor([row[shared:head]], device=loaded.device), past_key_values=cache, use_cache=True)
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
    reuse = REUSE_PREFIXES and loaded.prefixes is not None
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
            }
        )
    return replies


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
