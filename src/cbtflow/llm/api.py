"""API models through litellm (OpenRouter, Gemini, DeepSeek, OpenAI-compatible servers...).

litellm is imported lazily (it takes ~5 s) and with its local cost map, because by default
its import fetches the price list from the network.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from cbtflow.llm.endpoint import Endpoint
from cbtflow.llm.sampling import with_defaults

log = logging.getLogger(__name__)


class APICallError(RuntimeError):
    """A provider call that still failed after litellm's retries."""


def _litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # e.g. a provider without `seed` support ignores it instead of failing
    return litellm


RETRYABLE = (
    "RateLimitError",
    "InternalServerError",
    "ServiceUnavailableError",
    "APIConnectionError",
    "Timeout",
    "BadGatewayError",
)


# Providers whose prompt cache works only on blocks marked with cache_control (Anthropic's
# Claude, direct or through Bedrock and Vertex). OpenAI, DeepSeek, Gemini and xAI cache a
# repeated prefix by themselves; litellm reports their hits the same way.
_MARKED_CACHE = ("anthropic/", "bedrock/", "vertex_ai/claude", "openrouter/anthropic/")


def prompt_cache_hints(model: str) -> dict[str, Any]:
    """litellm arguments that turn on the provider's prompt cache for a growing conversation:
    breakpoints after the system prompt and after the newest message, so the next turn
    reads everything before its own new message from the cache."""
    if not model.startswith(_MARKED_CACHE) or ("bedrock/" in model and "claude" not in model):
        return {}
    return {
        "cache_control_injection_points": [
            {"location": "message", "role": "system"},
            {"location": "message", "index": -1},
        ]
    }


def cached_prompt_tokens(usage: Any) -> int:
    """Prompt tokens the provider read from its cache, in litellm's OpenAI-style usage
    (``prompt_tokens_details.cached_tokens``; DeepSeek's ``prompt_cache_hit_tokens`` is
    mapped there by litellm, and read directly as a fallback)."""
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    if cached is None:
        cached = getattr(usage, "prompt_cache_hit_tokens", None)
    return int(cached or 0)


def complete(
    endpoint: Endpoint, messages: Sequence[dict[str, str]], sampling: dict[str, Any], seed: int
) -> dict[str, Any]:
    """One call with our own retries: 429 and 5xx are retried with exponential back-off and
    logged; anything else (bad request, auth) fails at once with the provider's message.

    If the model still fails and the role lists ``fallbacks``, each is tried in turn (with
    the same retries), logged; the reply names the model that gave it (``model``).
    """
    failures, tried = [], None
    for model, api_base in ((endpoint.model, endpoint.api_base), *endpoint.fallbacks):
        if tried:
            log.warning("%s failed; falling back to %s", tried, model)
        try:
            return _complete_one(model, api_base, endpoint.extra, messages, sampling, seed)
        except APICallError as err:
            failures.append(str(err))
            tried = model
    raise APICallError(" | then ".join(failures))


def _complete_one(
    model: str,
    api_base: str | None,
    extra: dict[str, Any],
    messages: Sequence[dict[str, str]],
    sampling: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    litellm = _litellm()
    sampling = with_defaults(sampling)
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": list(messages),
        "temperature": float(sampling["temperature"]),
        "max_tokens": int(sampling["max_tokens"]),
        "seed": int(seed),
        "num_retries": 0,  # retries are ours, so that each one is logged
        "timeout": float(sampling["timeout"]),
    }
    if "top_p" in sampling:
        kwargs["top_p"] = float(sampling["top_p"])
    if sampling.get("stop"):
        kwargs["stop"] = list(sampling["stop"])
    if sampling.get("response_format"):
        kwargs["response_format"] = sampling["response_format"]
    kwargs.update(prompt_cache_hints(model))
    if api_base:
        kwargs["api_base"] = api_base
        kwargs.setdefault("api_key", os.environ.get("OPENAI_API_KEY", "none"))
    kwargs.update(extra)
    retries, backoff = int(sampling["num_retries"]), float(sampling["retry_backoff"])
    start = time.perf_counter()
    for attempt in range(retries + 1):
        try:
            response = litellm.completion(**kwargs)
            break
        except Exception as err:  # litellm raises provider-specific classes
            status = getattr(err, "status_code", None)
            message = f"{model}: {type(err).__name__} (status {status}): {err}"
            if type(err).__name__ not in RETRYABLE or attempt == retries:
                raise APICallError(message) from err
            wait = backoff * 2**attempt
            log.warning("retry %d/%d in %.2fs after %s from %s", attempt + 1, retries, wait, status, model)
            time.sleep(wait)
    seconds = time.perf_counter() - start
    usage = getattr(response, "usage", None)
    try:
        cost = float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # unknown price (self-hosted server): cost is reported as 0
        cost = 0.0
    return {
        "text": (response.choices[0].message.content or "").strip(),
        "model": model,
        "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
        "cached_prompt_tokens": cached_prompt_tokens(usage),
        "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
        "seconds": seconds,
        "cost_usd": cost,
    }


def complete_many(
    endpoint: Endpoint,
    conversations: Sequence[Sequence[dict[str, str]]],
    sampling: dict[str, Any],
    seeds: Sequence[int],
    concurrency: int = 8,
    on_reply: Callable[[int, dict[str, Any]], None] | None = None,
    tolerate_failures: bool = False,
) -> list[dict[str, Any]]:
    """Concurrent calls (threads; litellm's sync client is thread-safe), order preserved.

    ``on_reply(index, reply)`` runs as each call returns, so a paid reply is stored before
    the others finish: a crash loses only the calls still in flight. With
    ``tolerate_failures`` a call that still fails (retries and fallbacks spent) gives
    ``{"error": reason}`` in its place instead of failing the batch; it is never stored.
    """
    results: list[dict[str, Any] | None] = [None] * len(conversations)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {
            pool.submit(complete, endpoint, conv, sampling, seed): i
            for i, (conv, seed) in enumerate(zip(conversations, seeds))
        }
        for future in as_completed(futures):
            index = futures[future]
            try:
                results[index] = future.result()
            except APICallError as err:
                if not tolerate_failures:
                    raise
                results[index] = {"error": str(err), "text": "", "prompt_tokens": 0, "completion_tokens": 0}
                continue
            if on_reply:
                on_reply(index, results[index])
    return results  # type: ignore[return-value]
