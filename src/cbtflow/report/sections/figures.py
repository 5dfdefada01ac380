"""The figures, listed at the end of the report."""

from __future__ import annotations

from pathlib import Path

from cbtflow.report.inputs import ReportInputs


def section(inputs: ReportInputs) -> list[str]:
    return (
        ["## Figures", ""] + [f"![{name}](figures/{Path(file).name})" for name, file in inputs.figures.items()] + [""]
    )
