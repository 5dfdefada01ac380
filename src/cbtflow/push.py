"""``cbtflow push``: the adapters and the training set to the Hugging Face Hub.

Each adapter directory (``results/adapters/<model>/seed<seed>``, with its model card) becomes
a private model repository ``<namespace>/cbtflow-<model>-seed<seed>``; each training set
(``results/datasets/<generator>.hf``, with its dataset card) a private dataset repository
``<namespace>/cbtflow-<generator>-cbt-courses``. ``--dry-run`` lists exactly what would be
uploaded and makes no call; a real push reads the token from ``HF_TOKEN`` only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Upload:
    repo_id: str
    repo_type: str  # model | dataset
    folder: Path
    files: tuple[str, ...]  # relative to folder, sorted


def _files(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()))


def plan(results: str | Path, namespace: str, adapters: bool, dataset: bool) -> list[Upload]:
    """What a push uploads. Raises ValueError naming the directory that lacks its card, and
    when there is nothing to upload."""
    if not namespace or "/" in namespace:
        raise ValueError(f"--namespace: a Hub user or organisation name, not {namespace!r}")
    root = Path(results)
    uploads: list[Upload] = []
    if adapters:
        for folder in sorted(root.glob("adapters/*/seed*")):
            if not folder.is_dir() or folder.name.endswith(".partial"):
                continue
            if not (folder / "README.md").is_file():
                raise ValueError(f"{folder}: no model card (README.md); rerun its finetune job, which writes it")
            uploads.append(
                Upload(f"{namespace}/cbtflow-{folder.parent.name}-{folder.name}", "model", folder, _files(folder))
            )
    if dataset:
        for folder in sorted(root.glob("datasets/*.hf")):
            if not (folder / "README.md").is_file():
                raise ValueError(f"{folder}: no dataset card (README.md); rerun the dataset rule, which writes it")
            name = folder.name[: -len(".hf")]
            uploads.append(Upload(f"{namespace}/cbtflow-{name}-cbt-courses", "dataset", folder, _files(folder)))
    if not uploads:
        raise ValueError(f"{root}: nothing to push (no adapters or datasets found; pass --adapters and/or --dataset)")
    return uploads


def describe(uploads: list[Upload]) -> str:
    lines = []
    for u in uploads:
        lines.append(f"{u.repo_type} {u.repo_id} (private) <- {u.folder}")
        lines += [f"  {name}" for name in u.files]
    return "\n".join(lines)


def push(uploads: list[Upload]) -> list[str]:
    """Create each private repository (if new) and upload its folder. Unverified against the
    real Hub from this project's machines (no network); the token comes from HF_TOKEN."""
    from huggingface_hub import HfApi

    token = os.environ.get("HF_TOKEN")
    if not token:
        raise ValueError("set HF_TOKEN to a Hub token with write access (or use --dry-run)")
    api = HfApi(token=token)
    urls = []
    for u in uploads:
        api.create_repo(u.repo_id, repo_type=u.repo_type, private=True, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(u.folder), repo_id=u.repo_id, repo_type=u.repo_type, commit_message="cbtflow push"
        )
        urls.append(str(commit))
    return urls
