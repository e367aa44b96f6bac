"""Markdown tables and the number formatting every report and comparison shares."""

from __future__ import annotations

import math


def fmt(value: float | None, pattern: str = "{:.1f}") -> str:
    """``value`` formatted by ``pattern``; ``-`` for a missing or non-finite value."""
    return "-" if value is None or not math.isfinite(float(value)) else pattern.format(float(value))


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
