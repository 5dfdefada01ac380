"""In-process transformers models for ``local/...`` endpoints, in four parts: loading a model
once per process with its options (``loading``), chat templates (``templates``), batched
generation with KV reuse across turns (``generation``), and the probabilities of score
digits (``digits``)."""

from cbtflow.llm.local.digits import score_distributions
from cbtflow.llm.local.generation import generate_batch, generation_kwargs
from cbtflow.llm.local.loading import SKINNY_ROWS, LocalModel, load, load_tokenizer, pick_device, use_skinny_linear
from cbtflow.llm.local.templates import TEMPLATE_PROBE, prefix_stable, render, template_accepts

__all__ = [
    "SKINNY_ROWS",
    "TEMPLATE_PROBE",
    "LocalModel",
    "generate_batch",
    "generation_kwargs",
    "load",
    "load_tokenizer",
    "pick_device",
    "prefix_stable",
    "render",
    "score_distributions",
    "template_accepts",
    "use_skinny_linear",
]
