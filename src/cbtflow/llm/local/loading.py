"""Loading a local model once per process, with the options its callers may change.

A job loads each local model once (``load``) and generates all its pending conversations
as one left-padded batch, because on a CPU the decode step is bound by memory bandwidth:
a batch of 4 costs little more per step than a batch of 1.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cbtflow.llm import prefix
from cbtflow.llm.endpoint import Endpoint
from cbtflow.llm.local import int4, precision
from cbtflow.llm.local.templates import template_accepts

log = logging.getLogger(__name__)

# Decode steps multiply a few rows (one per active session) by every weight matrix. MKL's
# sgemm for x @ W.T is slow at 2-16 rows on this CPU (lm_head, 4 rows: 39 ms vs 14 ms for
# one row), while the same product as W @ x.T reads each weight once, as a GEMV does
# (11 ms). Measured in bench/simulate.py; one row keeps F.linear, which is faster there.
SKINNY_ROWS = range(2, 17)


def use_skinny_linear(model, rows: Callable[[], range] = lambda: SKINNY_ROWS) -> int:
    """Route the model's CPU linear layers with ``rows()`` input rows (2-16) through
    ``W @ x.T``; returns how many layers. Called once per load, so the forward itself
    imports nothing; ``rows`` is read at each call (a LocalModel's ``skinny_rows`` option)."""
    import types

    import torch
    import torch.nn.functional as F

    def forward(self, x):
        if x.numel() // x.shape[-1] not in rows():
            return F.linear(x, self.weight, self.bias)
        # contiguous(): a transposed result would make every later op (rotary, KV cache) strided and slow
        y = (self.weight @ x.reshape(-1, x.shape[-1]).T).T.contiguous().reshape(*x.shape[:-1], self.weight.shape[0])
        return y if self.bias is None else y + self.bias

    layers = [m for m in model.modules() if type(m) is torch.nn.Linear]
    for layer in layers:
        layer.forward = types.MethodType(forward, layer)
    return len(layers)


@dataclass
class LocalModel:
    """A loaded model and tokenizer with this process's options for them."""

    model: Any
    tokenizer: Any
    device: str
    dtype: str = "float32"  # the weights' precision (llm/local/precision.py)
    # Stored KV states of recent conversations; None where the model or its chat template
    # cannot reuse them (every prompt is then encoded whole).
    prefixes: prefix.PrefixPool | None = None
    reuse_prefixes: bool = True  # continue each conversation's KV state from its previous turn
    skinny_rows: range = SKINNY_ROWS  # CPU linear layers with this many rows use W @ x.T

    @property
    def runs_as(self) -> str:
        """What computed this model's replies (``int4 on cpu``), carried by every reply into
        the job's usage log: ``precision: auto`` resolves per machine."""
        return f"{self.dtype} on {self.device}"

    @contextmanager
    def options(self, *, reuse_prefixes: bool | None = None, skinny_rows: range | None = None) -> Iterator[LocalModel]:
        """The options changed for a block and restored after it (the benches compare them)."""
        saved = (self.reuse_prefixes, self.skinny_rows)
        if reuse_prefixes is not None:
            self.reuse_prefixes = reuse_prefixes
        if skinny_rows is not None:
            self.skinny_rows = skinny_rows
        try:
            yield self
        finally:
            self.reuse_prefixes, self.skinny_rows = saved


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


@lru_cache(maxsize=4)
def load(endpoint: Endpoint) -> LocalModel:
    """Load (once per process) the base model and, if given, merge its LoRA adapter."""
    from transformers import AutoModelForCausalLM

    device = pick_device()
    dtype_name = precision.resolve(endpoint.precision, device)
    tokenizer = load_tokenizer(endpoint.local_path, endpoint.chat_template)
    model = AutoModelForCausalLM.from_pretrained(endpoint.local_path, dtype=precision.torch_dtype(dtype_name))
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
    log.info(
        "loaded %s%s in %s on %s",
        endpoint.local_path,
        f" + {endpoint.adapter}" if endpoint.adapter else "",
        dtype_name,
        device,
    )
    loaded = LocalModel(model=model, tokenizer=tokenizer, device=device, dtype=dtype_name)
    if device == "cpu":
        use_skinny_linear(model, lambda: loaded.skinny_rows)
        # With a padding mask, transformers copies each layer's keys and values up to the
        # query heads (repeat_kv) at every decode step, a cost that grows with the context;
        # torch's CPU attention takes grouped heads with a mask directly, with identical
        # logits (checked). CUDA keeps transformers' choice (its masked GQA path is slower).
        os.environ.setdefault("TRANSFORMERS_SDPA_FORCE_GQA", "1")
        if dtype_name == "int4":
            int4.use_int4_decode(model)
    reusable = prefix.reusable_model(model)
    if reusable and not template_accepts(tokenizer):
        log.warning(
            "%s: the chat template re-renders earlier turns differently as a conversation grows; "
            "every turn's prompt is encoded whole (no KV reuse across turns)",
            endpoint.local_path,
        )
        reusable = False
    loaded.prefixes = prefix.PrefixPool() if reusable else None
    return loaded
