"""Fine-tuning: each adapter's backend, steps, loss and speed."""

from __future__ import annotations

from cbtflow.report.format import fmt as _fmt
from cbtflow.report.inputs import ReportInputs
from cbtflow.report.tables import markdown_table


def section(inputs: ReportInputs) -> list[str]:
    header = ["adapter", "backend", "steps", "first-quarter loss", "last-quarter loss", "tokens/s", "peak MB"]
    rows = [
        [name, log["backend"], log["steps"], _fmt(log["first_quarter_loss"]), _fmt(log["last_quarter_loss"])]
        + [_fmt(log["tokens_per_second"]), _fmt(log["peak_memory_mb"])]
        for name, log in sorted(inputs.train_logs.items())
    ]
    return ["## Fine-tuning", "", *markdown_table(header, rows), ""]
