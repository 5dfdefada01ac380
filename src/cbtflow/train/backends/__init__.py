"""Training backends: each is one module in this package that declares what it is.

A backend declares its name, when it is available (the first available one, in declared
order, trains: Unsloth on CUDA, then transformers + peft + bitsandbytes on CUDA, then
transformers + peft on the CPU), whether it trains on the CPU, whether it brings its own
loss, and how it loads the model with its LoRA adapter. ``train.finetune`` reads those
declarations; nothing else names a backend. Every module here is imported on first use;
an installed package can add its own under the ``cbtflow.training_backends`` entry point.
"""

from __future__ import annotations

import resource
from typing import Any, ClassVar

from cbtflow.registry import Registry

ENTRY_POINT_GROUP = "cbtflow.training_backends"


class TrainingBackend:
    """One way of training a LoRA adapter. Subclass, set the class variables, implement
    ``available`` and ``load``, and decorate the class with ``@register``."""

    name: ClassVar[str]
    order: ClassVar[int] = 50  # the first available backend in this order trains
    on_cpu: ClassVar[bool] = False  # trains on the CPU (no mixed precision, no checkpointing)
    own_loss: ClassVar[bool] = False  # patches its own loss: TRL's SFTTrainer is used untouched
    packages: ClassVar[tuple[str, ...]] = ()  # its own distributions, whose versions provenance records

    @classmethod
    def available(cls) -> bool:
        raise NotImplementedError

    def load(self, base: str, recipe: dict[str, Any], seed: int):
        """The base model with a fresh LoRA adapter, and its tokenizer."""
        raise NotImplementedError

    def mixed_precision(self) -> dict[str, bool]:
        """bf16 where the GPU supports it (Ampere and later), fp16 on older cards (T4, V100:
        bf16=True raises there, and Unsloth trains them in fp16); on a CPU, bf16 autocast
        where it computes bf16 natively (AVX512-BF16, AMX: a quarter less time a step on the
        embedded model, bench/RESULTS.md), float32 elsewhere."""
        if self.on_cpu:
            from cbtflow.llm.local.precision import cpu_has_native_bf16

            return {"bf16": cpu_has_native_bf16(), "fp16": False}
        import torch

        bf16 = bool(torch.cuda.is_bf16_supported())
        return {"bf16": bf16, "fp16": not bf16}

    def peak_memory_mb(self) -> float:
        if self.on_cpu:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        import torch

        return torch.cuda.max_memory_allocated() / 2**20


TRAINING_BACKENDS: Registry[TrainingBackend] = Registry(__name__, ENTRY_POINT_GROUP, "training backend")
register = TRAINING_BACKENDS.register
discover = TRAINING_BACKENDS.classes  # in the order selection tries them


def training_backend(name: str) -> TrainingBackend:
    return TRAINING_BACKENDS.get(name)()


def select_backend() -> str:
    """The first available training backend, in declared order."""
    for name, cls in discover().items():
        if cls.available():
            return name
    raise RuntimeError(f"no training backend is available here (registered: {', '.join(discover())})")


def peft_model(base: str, recipe: dict[str, Any], model_kwargs: dict[str, Any], kbit: bool):
    """transformers + peft: the base loaded with ``model_kwargs`` (prepared for k-bit
    training when quantized) and a LoRA adapter from the recipe, with its tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from cbtflow.llm.local import load_tokenizer

    tokenizer = load_tokenizer(base, recipe.get("chat_template"))
    model = AutoModelForCausalLM.from_pretrained(base, **model_kwargs)
    if kbit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    lora = recipe["lora"]
    config = LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=list(lora["target_modules"]),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config), tokenizer
