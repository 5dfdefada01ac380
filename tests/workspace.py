"""A throwaway copy of the workflow with a tiny config, for the tests that run it for real."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Every stage on the embedded model, as small as each stage allows.
TINY = {
    "cache_dir": ".cache",
    "bases": {"smollm2-135m": {"source": "embedded"}},
    "models": {
        "tiny": {
            "base": "smollm2-135m",
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
            "training": {"learning_rate": 1e-3, "epochs": 2, "batch_size": 1, "max_seq_length": 256},
        }
    },
    "conditions": ["instruct", "cbt", "prompted"],
    "seeds": [1],
    "profiles": {
        "seed": 3,
        "train": 2,
        "eval": 2,
        "styles": ["plain", "reserved"],
        "crisis": {"share": 0.5, "kinds": ["passive_ideation"], "patient_turn": 1},
    },
    "courses": {
        "mode": "turns",
        "sessions": 1,
        "turns_per_session": 4,
        "min_turns": 2,
        # Enough attempts that the 135M generator leaves a training set whatever the
        # rounding of the machine's precision and thread count (gates fail it about half the time).
        "max_attempts": 8,
        "parallel_attempts": 4,
        "on_exhausted": "drop",
    },
    "dataset": {"validation_fraction": 0.5, "seed": 0},
    "roles": {
        "generator": {
            "name": "smollm2",
            "model": "local/smollm2-135m",
            "sampling": {
                "temperature": 0.5,
                "top_p": 0.9,
                "max_tokens": 24,
                "repetition_penalty": 1.1,
                "no_repeat_ngram_size": 4,
            },
        },
        "patient": {"model": "local/smollm2-135m", "sampling": {"temperature": 0.5, "max_tokens": 32}},
    },
    "therapist": {"sampling": {"temperature": 0.5, "max_tokens": 24, "repetition_penalty": 1.1}},
    "simulation": {"max_turns": 4, "measures": ["mood", "alliance"]},
    "judges": {"lexicon": {"kind": "lexicon"}, "smollm2": {"kind": "llm", "model": "local/smollm2-135m"}},
    "judging": {"rubric_variant": "ctrs-modified"},
    # Two perturbations keep the local judge's card short; the default run has them all.
    "validation": {"perturbations": ["drop_agenda", "filler_padding"]},
    "report": {"primary_judge": "lexicon"},
}

# Set in every workflow run's environment; the secret test looks for it in every file.
PLANTED_KEY = "sk-planted-0123456789abcdef"


def make_workspace(work: Path, config: dict, embedded_model: str) -> Path:
    """Copy the workflow into `work` with `config`, and seed its cache with the wheel the
    test session already fetched, so no run downloads it again."""
    for name in ("Snakefile", "workflow", "scripts", "profiles", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    shutil.copytree(ROOT / "resources", work / "resources", ignore=shutil.ignore_patterns("models"))
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    wheels = Path(embedded_model).parents[1] / "wheels"
    (work / ".cache").mkdir()
    shutil.copytree(wheels, work / ".cache" / "wheels")
    return work


def snakemake(
    workdir: Path, *args: str, timeout: int = 1200, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`snakemake --cores 2 ARGS` in `workdir`, with planted fake API keys in the environment."""
    env = {**os.environ, "OPENAI_API_KEY": PLANTED_KEY, "GEMINI_API_KEY": PLANTED_KEY, **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
