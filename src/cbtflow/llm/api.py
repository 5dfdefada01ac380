"""API models through litellm (OpenRouter, Gemini, DeepSeek, OpenAI-compatible servers...).

litellm is imported lazily (it takes ~5 s) and with its local cost map, because by default
its import fetches the price list from the network.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from cbtflow.llm.endpoint import Endpoint


class APICallError(RuntimeError):
    """A provider call that still failed after litellm's retries."""


def _litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # e.g. a provider without `seed` support ignores it instead of failing
    return litellm


def complete(endpoint: Endpoint, messages: Sequence[dict[str, str]], sampling: dict[str, Any],
             seed: int) -> dict[str, Any]:
    litellm = _litellm()
    kwargs: dict[str, Any] = {
        "model": endpoint.model,
        "messages": list(messages),
        "temperature": float(sampling.get("temperature", 0.0)),
        "max_tokens": int(sampling.get("max_tokens", 512)),
        "seed": int(seed),
        "num_retries": int(sampling.get("num_retries", 4)),
        "timeout": float(sampling.get("timeout", 120)),
    }
    if "top_p" in sampling:
        kwargs["top_p"] = float(sampling["top_p"])
    if sampling.get("stop"):
        kwargs["stop"] = list(sampling["stop"])
    if sampling.get("response_format"):
        kwargs["response_format"] = sampling["response_format"]
    if endpoint.api_base:
        kwargs["api_base"] = endpoint.api_base
        kwargs.setdefault("api_key", os.environ.get("OPENAI_API_KEY", "none"))
    kwargs.update(endpoint.extra)
    start = time.perf_counter()
    try:
        response = litellm.completion(**kwargs)
    except Exception as err:  # litellm raises provider-specific classes
        raise APICallError(f"{endpoint.model}: {type(err).__name__}: {err}") from err
    seconds = time.perf_counter() - start
    usage = getattr(response, "usage", None)
    try:
        cost = float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # unknown price (self-hosted server): cost is reported as 0
        cost = 0.0
    return {
        "text": (response.choices[0].message.content or "").strip(),
        "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
        "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
        "seconds": seconds,
        "cost_usd": cost,
    }


def complete_many(endpoint: Endpoint, conversations: Sequence[Sequence[dict[str, str]]],
                  sampling: dict[str, Any], seeds: Sequence[int], concurrency: int = 8) -> list[dict[str, Any]]:
    """Concurrent calls (threads; litellm's sync client is thread-safe), order preserved."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(lambda args: complete(endpoint, args[0], sampling, args[1]),
                             zip(conversations, seeds)))
