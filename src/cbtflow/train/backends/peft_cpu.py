"""transformers + peft on the CPU in fp32: the offline default (a small model's LoRA)."""

from __future__ import annotations

from typing import Any

from cbtflow.train.backends import TrainingBackend, peft_model, register


@register
class PeftCpu(TrainingBackend):
    name = "peft-cpu"
    order = 90
    on_cpu = True

    @classmethod
    def available(cls) -> bool:
        return True

    def load(self, base: str, recipe: dict[str, Any], seed: int):
        import torch

        return peft_model(base, recipe, {"dtype": torch.float32}, kbit=False)
