"""Reuse of each conversation's KV cache across turns, for the in-process local backend.

A simulated session sends its whole conversation at every turn. Without reuse the
prompt's cost grows with the square of the number of turns (bench/session_length.py).
The pool below keeps, per loaded model, the KV state of every conversation it answered
(prompt and reply tokens), keyed by nothing but the token ids: the next turn's prompt
finds the stored state sharing its longest token prefix, and only the tokens after that
prefix are encoded. Both views of a session (therapist and patient) and the sessions of a
batch are just conversations; two that share a system prompt share its encoding too.

Matching by token ids rather than by session keeps the reuse exact: whatever the chat
template renders, only tokens that are literally the same, at the same positions, reuse
their keys and values. A template that re-renders earlier turns differently (one that
moves the system prompt into the last user message, say) would find almost nothing to
reuse; ``local.prefix_stable`` (the check training uses too) spots such templates once per
load and the backend then re-encodes as before, saying so once in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A stored conversation not extended for this many calls on its model is dropped: both views
# of a live session are extended every two calls (therapist, patient), so older ones belong
# to sessions that ended.
MAX_IDLE_CALLS = 2


def reusable_model(model) -> bool:
    """Whether every layer keeps a plain, growing KV cache that can be cut and stacked.

    Sliding-window, linear-attention and recurrent layers keep other state; those models
    re-encode each prompt whole."""
    config = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
    layer_types = getattr(config, "layer_types", None)
    if layer_types and any(kind != "full_attention" for kind in layer_types):
        return False
    return not (getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True))


@dataclass
class _Entry:
    ids: np.ndarray  # token ids, int64
    layers: list[tuple[Any, Any]]  # per layer (keys, values), each [1, heads, len(ids), head_dim]
    used_at: int
    prompt_tokens: int  # how many of ids were the prompt (the rest: the reply generated after it)


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the shared start of two token-id arrays (vectorised: every row of every
    call compares against every stored state, thousands of tokens each on long sessions)."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


@dataclass
class PrefixPool:
    """The KV states of recent conversations of one loaded model, found by token prefix."""

    entries: list[_Entry] = field(default_factory=list)
    calls: int = 0

    def longest(self, ids: list[int]) -> tuple[int, _Entry | None]:
        """The stored state sharing the longest token prefix with ``ids``, and that length."""
        ids = np.asarray(ids, dtype=np.int64)
        best, best_entry = 0, None
        for entry in self.entries:
            n = common_prefix(entry.ids, ids)
            if n > best:
                best, best_entry = n, entry
        if best_entry is not None:
            best_entry.used_at = self.calls
        return best, best_entry

    def put(self, ids: list[int], layers: list[tuple[Any, Any]], prompt_tokens: int | None = None) -> None:
        """Store a state; states it extends (their ids a prefix of these) are dropped."""
        ids = np.asarray(ids, dtype=np.int64)
        self.entries = [e for e in self.entries if common_prefix(e.ids, ids) < len(e.ids)]
        self.entries.append(_Entry(ids, layers, self.calls, len(ids) if prompt_tokens is None else prompt_tokens))

    def retire(self, continued: list[tuple[_Entry, int]]) -> None:
        """Drop the states that new prompts continued: ``(state, tokens shared)`` where the
        shared part covers the state's whole prompt, so the new prompt is the same
        conversation grown by a turn. (Its reply, re-rendered into the new prompt, need not
        match the generated tokens, so the old state is not always a prefix of the new.)
        A state that merely shares an opening with another conversation is kept."""
        gone = {id(entry) for entry, shared in continued if shared >= entry.prompt_tokens}
        self.entries = [e for e in self.entries if id(e) not in gone]

    def end_call(self) -> None:
        """After each generate call: forget the conversations that stopped coming back."""
        self.calls += 1
        self.entries = [e for e in self.entries if self.calls - e.used_at <= MAX_IDLE_CALLS]

    def clear(self) -> None:
        """Forget every state (benchmarks: a run must not reuse the previous run's sessions)."""
        self.entries.clear()


def cache_layers(cache) -> list[tuple[Any, Any]]:
    """A DynamicCache's per-layer (keys, values)."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def as_cache(layers: list[tuple[Any, Any]]):
    """A DynamicCache holding ``layers`` (views are fine: the next update concatenates)."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=layers)


def _roomy_layer_class():
    """DynamicLayer with spare positions (defined on first use: transformers loads lazily)."""
    from transformers.cache_utils import DynamicLayer

    class RoomyLayer(DynamicLayer):
        """A cache layer whose buffer has room for the reply: each decode step writes its
        key and value in place, where DynamicLayer concatenates (copies) the whole cache,
        a tenth of the decode time at 1,000 tokens of context on the embedded model."""

        def __init__(self, buffer_keys, buffer_values, length: int) -> None:
            super().__init__()
            self._k, self._v = buffer_keys, buffer_values
            self.keys, self.values = buffer_keys[:, :, :length], buffer_values[:, :, :length]
            self.dtype, self.device = buffer_keys.dtype, buffer_keys.device
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            start, end = self.keys.shape[-2], self.keys.shape[-2] + key_states.shape[-2]
            in_buffer = self.keys.data_ptr() == self._k.data_ptr() and self.keys.shape[0] == self._k.shape[0]
            if not in_buffer or end > self._k.shape[-2]:  # out of room, or cropped/reselected by someone
                self._k = self.keys.new_empty(*self.keys.shape[:2], max(end, 2 * start), self.keys.shape[-1])
                self._v = self.values.new_empty(self._k.shape)
                self._k[:, :, :start], self._v[:, :, :start] = self.keys, self.values
            self._k[:, :, start:end], self._v[:, :, start:end] = key_states, value_states
            self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
            return self.keys, self.values

    return RoomyLayer


def left_padded(rows: list[list[tuple[Any, Any]]], length: int, room: int):
    """One batched cache from single-row states, each left-padded with zeros to ``length``
    positions (the attention mask hides the padding, as for padded prompts), with ``room``
    spare positions for the reply."""
    from transformers import DynamicCache

    roomy = _roomy_layer_class()
    layers = []
    for per_row in zip(*rows):
        first = per_row[0][0]
        keys = first.new_zeros(len(rows), first.shape[1], length + room, first.shape[3])
        values = keys.clone()
        for i, (k, v) in enumerate(per_row):
            keys[i, :, length - k.shape[2] : length], values[i, :, length - v.shape[2] : length] = k[0], v[0]
        layers.append(roomy(keys, values, length))
    cache = DynamicCache()
    cache.layers = layers
    return cache


def row_state(cache, row: int, start: int, end: int) -> list[tuple[Any, Any]]:
    """Row ``row``'s positions ``start:end`` of a batched cache, as a state of its own."""
    return [
        (k[row : row + 1, :, start:end].contiguous(), v[row : row + 1, :, start:end].contiguous())
        for k, v in cache_layers(cache)
    ]
