"""Unsloth 4-bit QLoRA on CUDA: the study's recipe (3.68x the tokens/s of transformers +
peft + bitsandbytes on a Llama-3.1-8B shape, bench/RESULTS.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from cbtflow.train.backends import TrainingBackend, register


@register
class Unsloth(TrainingBackend):
    name = "unsloth"
    order = 10
    own_loss = True
    packages = ("unsloth",)

    @classmethod
    def available(cls) -> bool:
        import torch

        return torch.cuda.is_available() and importlib.util.find_spec("unsloth") is not None

    def load(self, base: str, recipe: dict[str, Any], seed: int):
        from unsloth import FastLanguageModel  # must be imported before transformers/trl touch the model

        lora = recipe["lora"]
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=base, max_seq_length=recipe["training"]["max_seq_length"], load_in_4bit=True
        )
        if recipe.get("chat_template"):
            tokenizer.chat_template = Path(recipe["chat_template"]).read_text(encoding="utf-8")
        model = FastLanguageModel.get_peft_model(
            model,
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=list(lora["target_modules"]),
            use_gradient_checkpointing=self.name,  # Unsloth's own offloaded checkpointing
            random_state=seed,
        )
        return model, tokenizer
