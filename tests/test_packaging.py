"""cbtflow works installed, not only from a checkout: its data ship inside the package."""

from pathlib import Path

import tomllib

from cbtflow.config import load_schema
from cbtflow.packaged import DEFAULT_RUBRIC, RESOURCES, schema_path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_under_src_is_listed_for_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(init.parent.relative_to(ROOT / "src").parts) for init in (ROOT / "src").rglob("__init__.py")}
    assert on_disk <= listed, f"not in pyproject's packages: {sorted(on_disk - listed)}"
    assert {"cbtflow.schemas", "cbtflow.resources"} <= listed


def test_package_data_globs_cover_every_tracked_resource_and_schema():
    import fnmatch
    import subprocess

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    tracked = subprocess.run(
        ["git", "ls-files", "resources", "workflow/schemas"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for path in tracked:
        if path.endswith("__init__.py"):
            continue
        package, rel = (
            ("cbtflow.schemas", path.removeprefix("workflow/schemas/"))
            if path.startswith("workflow/schemas/")
            else ("cbtflow.resources", path.removeprefix("resources/"))
        )
        assert any(fnmatch.fnmatch(rel, glob) for glob in data[package]), f"{path} would be missing from the wheel"


def test_data_are_found_through_the_package():
    assert load_schema("config")["type"] == "object"
    assert schema_path("transcript").exists() and DEFAULT_RUBRIC.exists()
    assert (RESOURCES / "prompts").is_dir()
