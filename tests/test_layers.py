"""The layering is a contract (pyproject.toml, [tool.importlinter]): a back-arrow between
the pipeline's layers, an import cycle inside a package, or a library import of Snakemake
fails here, naming the import that broke it."""

import shutil
import subprocess
import sys
from pathlib import Path

from workspace import ROOT


def lint_imports(*args: str) -> subprocess.CompletedProcess:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command, "import-linter is a test dependency: pip install -e '.[test]'"
    return subprocess.run([command, "--no-cache", *args], cwd=ROOT, capture_output=True, text=True)


def test_the_library_keeps_its_layers_and_has_no_cycle():
    result = lint_imports()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_a_back_arrow_is_caught(tmp_path):
    """The contract can fail: a copy of the library in which a low layer imports the report."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src", copy)
    io = copy / "cbtflow" / "io.py"
    io.write_text(io.read_text(encoding="utf-8") + "\nfrom cbtflow.report import build  # noqa\n", encoding="utf-8")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [command, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(copy)}
    )
    assert result.returncode != 0
    assert "cbtflow.io -> cbtflow.report.build" in result.stdout
