"""What a statistic over runs left out, and why: a value logged as NaN is not a run that never
logged the metric, and an answer says which of the two it skipped, and how many (aggregate,
overfit, best, compare's asked-for metrics, health)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Skipped:
    """Counts of values a statistic could not use: `nan` logged as NaN, `missing` never logged,
    `infinite` logged as ±inf (only where the statistic skips those too)."""

    nan: int = 0
    missing: int = 0
    infinite: int = 0

    def usable(self, value: float | None, skip_infinite: bool = False) -> bool:
        """Count `value` if it is skipped; True when the statistic can use it."""
        if value is None:
            self.missing += 1
        elif math.isnan(value):
            self.nan += 1
        elif skip_infinite and math.isinf(value):
            self.infinite += 1
        else:
            return True
        return False

    def add(self, other: Skipped) -> None:
        self.nan += other.nan
        self.missing += other.missing
        self.infinite += other.infinite

    @property
    def total(self) -> int:
        return self.nan + self.missing + self.infinite

    def words(self) -> str:
        """'3 NaN, 1 without a value' ('' when nothing was skipped)."""
        parts = [f"{self.nan} NaN"] if self.nan else []
        parts += [f"{self.infinite} infinite"] if self.infinite else []
        parts += [f"{self.missing} without a value"] if self.missing else []
        return ", ".join(parts)

    def record(self) -> dict[str, int]:
        out = {"nan": self.nan, "missing": self.missing}
        return out | ({"infinite": self.infinite} if self.infinite else {})


def details(by_metric: dict[str, Skipped]) -> str:
    """'sharpe 3 NaN, 1 without a value; cagr 2 NaN' ('' when nothing was skipped)."""
    return "; ".join(f"{metric} {s.words()}" for metric, s in by_metric.items() if s.total)


def skipped_line(what: str, by_metric: dict[str, Skipped]) -> str:
    """'skipped in mean/min/max: sharpe 3 NaN, 1 without a value; cagr 2 NaN' ('' when none)."""
    text = details(by_metric)
    return f"skipped in {what}: {text}" if text else ""
