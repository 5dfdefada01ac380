"""Stage 2: LoRA / QLoRA adapters per model and seed."""
