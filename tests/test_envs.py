"""The conda environments: self-contained files, wired to the rules, and pins that pip's
resolver accepts together (checked against the package registries, dry run)."""

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomllib
import yaml

from cbtflow.layout import ENVIRONMENTS, rule_environment

ROOT = Path(__file__).resolve().parents[1]
ENV_FILES = {name: ROOT / "envs" / f"{name}.yaml" for name in ENVIRONMENTS}
# Index URLs CI cannot reach (only the package registries are reachable there): the pins
# are resolved against PyPI instead, which serves the same versions (torch's default Linux
# wheels on PyPI are the CUDA builds these indexes also serve).
UNREACHABLE_INDEXES = ("https://download.pytorch.org/",)


def pip_lines(name: str) -> list[str]:
    spec = yaml.safe_load(ENV_FILES[name].read_text())
    return next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)


def requirements(name: str) -> list[str]:
    return [line for line in pip_lines(name) if not line.startswith("-")]


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_env_files_are_self_contained_and_install_cbtflow_after_deploy(name):
    spec = yaml.safe_load(ENV_FILES[name].read_text())
    assert "python=3.11" in spec["dependencies"]
    for line in pip_lines(name):
        assert not line.startswith(("-e", "--editable")) and ".." not in line, f"{name}: {line}"
        assert "--no-deps" not in line, "pip rejects options on a requirements line"
        if line.startswith("-"):
            assert line.startswith("--extra-index-url "), line
        else:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][^ ]*", line), f"{name}: unpinned {line}"
    hook = ENV_FILES[name].with_name(f"{name}.post-deploy.sh")
    assert hook.exists() and "install-cbtflow.sh" in hook.read_text()
    installer = (ROOT / "envs/install-cbtflow.sh").read_text()
    assert "pip install --no-deps -e" in installer and "CBTFLOW_ROOT" in installer


def test_cpu_env_has_the_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(requirements("cpu")) == sorted(d for d in project if not d.startswith("snakemake"))


def _config(**changes):
    from cbtflow.config import validate_config

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(changes)
    validate_config(config)  # rules read a validated config, defaults filled in
    return config


def test_each_rule_gets_the_right_environment():
    rules = ("prepare_base_model", "profiles", "courses", "dataset", "finetune", "simulate", "judge", "report")
    local = {"kind": "llm", "model": "local/smollm2-135m"}
    api = {"kind": "llm", "model": "gemini/gemini-1.5-pro-002"}
    cpu = _config()
    assert {r: rule_environment(cpu, r, local) for r in rules} == {**{r: "cpu" for r in rules}, "report": "stats"}
    gpu = _config(gpus_per_job=1)
    assert rule_environment(gpu, "finetune") == rule_environment(gpu, "simulate") == "cuda-train"
    assert rule_environment(gpu, "judge", local) == "cuda-train" and rule_environment(gpu, "judge", api) == "cpu"
    assert rule_environment(gpu, "judge", {"kind": "lexicon"}) == "cpu"
    assert rule_environment(gpu, "dataset") == "cpu" and rule_environment(gpu, "report") == "stats"
    vllm = _config(gpus_per_job=1, therapist={**cpu["therapist"], "backend": "vllm"})
    assert rule_environment(vllm, "simulate") == "vllm" and rule_environment(vllm, "finetune") == "cuda-train"


def test_every_rule_names_its_environment_and_lint_is_clean():
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        text = smk.read_text()
        assert text.count("\nrule ") == text.count("    conda:\n"), smk.name
    done = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "Lints for" not in done.stdout + done.stderr, done.stdout[-2000:]


def _resolve(name: str, tmp_path: Path) -> dict:
    lines = [
        line
        for line in pip_lines(name)
        if not line.startswith(tuple(f"--extra-index-url {u}" for u in UNREACHABLE_INDEXES))
    ]
    reqs = tmp_path / f"{name}.txt"
    reqs.write_text("\n".join(lines) + "\n")
    report = tmp_path / f"{name}.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--python-version",
            "3.11",
            "--only-binary",
            ":all:",
            "--report",
            str(report),
            "-r",
            str(reqs),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{name}: pip cannot resolve the pins:\n{done.stderr[-3000:]}"
    return json.loads(report.read_text())


def test_pip_resolves_every_environment_together(tmp_path):
    """pip's resolver, dry run, against the registries: every pin of an env file installs
    together (it found, e.g., that datasets 4.4.1 conflicts with trl 1.15 beside Unsloth)."""
    with ThreadPoolExecutor(max_workers=len(ENVIRONMENTS)) as pool:
        reports = dict(zip(ENVIRONMENTS, pool.map(lambda n: _resolve(n, tmp_path), ENVIRONMENTS)))
    for name, report in reports.items():
        chosen = {
            item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
            for item in report["install"]
        }
        for requirement in requirements(name):
            package, version = requirement.split("==")
            assert chosen[package.lower().replace("_", "-")].split("+")[0] == version, f"{name}: {requirement}"
