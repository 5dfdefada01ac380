"""transformers + peft with a bitsandbytes 4-bit (NF4) base on CUDA, where Unsloth is not
installed: the same QLoRA recipe, slower."""

from __future__ import annotations

from typing import Any

from cbtflow.train.backends import TrainingBackend, peft_model, register


@register
class PeftBnb(TrainingBackend):
    name = "peft-bnb"
    order = 20
    packages = ("bitsandbytes",)

    @classmethod
    def available(cls) -> bool:
        import torch

        return torch.cuda.is_available()

    def load(self, base: str, recipe: dict[str, Any], seed: int):
        import torch
        from transformers import BitsAndBytesConfig

        dtype = torch.bfloat16 if self.mixed_precision()["bf16"] else torch.float16
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
        return peft_model(base, recipe, {"quantization_config": quantization, "dtype": dtype}, kbit=True)
