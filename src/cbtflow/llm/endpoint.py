"""What a role talks to: a local model directory (plus an optional adapter) or an API model.

An endpoint is pure data so that it can be hashed into cache keys and written into
provenance without secrets: API keys are never stored on it, only the *name* of the
environment variable that holds one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cbtflow.io import sha256_dir, sha256_file

LOCAL_PREFIX = "local/"

# Which environment variable each litellm provider reads its key from. Used by preflight
# checks and error messages; litellm itself reads the variable.
PROVIDER_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "groq": "GROQ_API_KEY",
    "hosted_vllm": None,
    "ollama": None,
}


@dataclass(frozen=True)
class Endpoint:
    """A model to call.

    ``model`` is ``local/<directory or Hugging Face id>`` for in-process transformers
    models, otherwise a litellm provider string such as ``openrouter/nousresearch/...``.
    """

    model: str
    adapter: str | None = None
    api_base: str | None = None
    chat_template: str | None = None  # a Jinja file, for local bases that ship none
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | str) -> "Endpoint":
        if isinstance(spec, str):
            return cls(model=spec)
        unknown = set(spec) - {"model", "adapter", "api_base", "chat_template", "extra"}
        if unknown:
            raise ValueError(f"endpoint spec has unknown keys {sorted(unknown)}")
        if "model" not in spec:
            raise ValueError("endpoint spec needs a 'model'")
        return cls(model=spec["model"], adapter=spec.get("adapter") or None,
                   api_base=spec.get("api_base"), chat_template=spec.get("chat_template"),
                   extra=dict(spec.get("extra") or {}))

    @property
    def is_local(self) -> bool:
        return self.model.startswith(LOCAL_PREFIX)

    @property
    def local_path(self) -> str:
        if not self.is_local:
            raise ValueError(f"{self.model} is not a local model")
        return self.model[len(LOCAL_PREFIX):]

    @property
    def provider(self) -> str:
        return "local" if self.is_local else self.model.split("/", 1)[0]

    @property
    def key_env(self) -> str | None:
        """The environment variable an API provider needs, or None (local, self-hosted)."""
        if self.is_local or self.api_base:
            return None
        return PROVIDER_KEY_ENV.get(self.provider)

    @cached_property
    def adapter_sha(self) -> str | None:
        if not self.adapter:
            return None
        path = Path(self.adapter)
        if not path.is_dir():
            raise FileNotFoundError(f"adapter directory {path} does not exist; rerun the finetune rule")
        return sha256_dir(path, "adapter_*")

    def identity(self) -> dict[str, Any]:
        """What makes two endpoints answer alike: goes into cache keys and transcripts."""
        identity = {"model": self.model, "adapter_sha": self.adapter_sha, "api_base": self.api_base}
        if self.chat_template:
            identity["chat_template_sha"] = sha256_file(self.chat_template)[:16]
        return identity
