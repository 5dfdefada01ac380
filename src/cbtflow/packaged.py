"""Where the installed package keeps the project's data files.

The schemas (``workflow/schemas`` in a checkout) and resources (``resources/``) ship
inside the package as ``cbtflow.schemas`` and ``cbtflow.resources`` (see pyproject), so a
wheel installed anywhere finds them through ``importlib.resources``, and an editable
install finds the checkout's own files. Rules still name ``resources/...`` paths relative
to the workflow, as Snakemake inputs; this module serves the library and the CLI.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _directory(package: str) -> Path:
    # Installed on a file system (wheel or editable), a data package is a real directory.
    return Path(str(files(package)))


def schema_path(name: str) -> Path:
    """The JSON Schema (YAML) of an artifact kind or of the config."""
    return _directory("cbtflow.schemas") / f"{name}.schema.yaml"


RESOURCES = _directory("cbtflow.resources")
DEFAULT_RUBRIC = RESOURCES / "ctrs" / "ctrs.yaml"
# The DOM helper the static pages (viewer, rating kit) share.
PAGE_SCRIPTS = (RESOURCES / "dom.js",)
