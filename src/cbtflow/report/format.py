"""Formatting shared by the report's sections: numbers, confidence intervals, PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cbtflow.io import write_bytes_atomic  # noqa: E402


def save(fig, path: Path) -> None:
    """Render to memory, then write atomically: a killed job leaves no half PNG."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if abs(value) < 1e-12:  # numerical zero, e.g. an ICC of two judges that never agree
            value = 0.0
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def ordered(present, order) -> list[str]:
    """Items in the rubric's order (``stats["item_order"]``), anything else after, sorted."""
    return [i for i in order if i in present] + sorted(set(present) - set(order))


def fmt_df(value: Any) -> str:
    """Degrees of freedom as they can mean something: a whole number as one, a
    Satterthwaite df to one decimal (1.930 says no more than 1.9)."""
    if value is None:
        return "—"
    value = float(value)
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"


def ci(pair: list[float] | None) -> str:
    return f"[{fmt(pair[0])}, {fmt(pair[1])}]" if pair else "—"
