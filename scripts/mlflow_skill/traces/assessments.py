"""Feedback over many traces: pass/fail verdicts from booleans and yes/no words, pass rates or
means per feedback name, and how one assessment's value or a summary reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlflow_skill.core.formatting import fmt_num, fmt_percent, truncate

PASS_WORDS = {
    "true": True,
    "yes": True,
    "pass": True,
    "passed": True,
    "false": False,
    "no": False,
    "fail": False,
    "failed": False,
}


def verdict(value: Any) -> bool | None:
    """A feedback value as pass/fail: booleans and yes/no, pass/fail, true/false words; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return PASS_WORDS.get(value.strip().lower())
    return None


@dataclass
class FeedbackTally:
    """One feedback name counted over traces."""

    n: int = 0
    errors: int = 0
    passed: int = 0
    judged: int = 0  # values read as pass/fail
    numbers: list[float] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)

    def add(self, assessment: dict) -> None:
        self.n += 1
        self.sources.add((assessment.get("source") or "").split(":")[0])
        value = assessment["value"]
        if assessment["error"] and value is None:
            self.errors += 1
            return
        passed = verdict(value)
        if passed is not None:
            self.judged += 1
            self.passed += int(passed)
        elif isinstance(value, (int, float)):
            self.numbers.append(float(value))

    def summary(self) -> dict:
        return {
            "n": self.n,
            "errors": self.errors,
            "pass_rate": self.passed / self.judged if self.judged else None,
            "passed": self.passed if self.judged else None,
            "mean": sum(self.numbers) / len(self.numbers) if self.numbers else None,
            "sources": sorted(x for x in self.sources if x),
        }


def summarize_assessments(traces: list[dict]) -> dict[str, dict]:
    """Per feedback name over trace summaries: n, errors, and pass rate or mean (valid ones only)."""
    tallies: dict[str, FeedbackTally] = {}
    for t in traces:
        for a in t.get("assessments") or []:
            if a["kind"] != "feedback" or a.get("valid") is False:
                continue
            tallies.setdefault(a["name"], FeedbackTally()).add(a)
    return {name: tally.summary() for name, tally in sorted(tallies.items())}


def fmt_assessment_summary(s: dict | None) -> str:
    if not s:
        return ""
    parts = []
    if s["pass_rate"] is not None:
        parts.append(f"{fmt_percent(s['pass_rate'])} pass")
    if s["mean"] is not None:
        parts.append(f"mean {fmt_num(s['mean'], 3)}")
    text = " · ".join(parts) or "—"
    text += f" (n={s['n']}"
    return text + (f", {s['errors']} err)" if s["errors"] else ")")


def assessment_value_text(a: dict, width: int = 40) -> str:
    if a["value"] is None and a["error"]:
        return "error: " + truncate(a["error"], width)
    value = a["value"]
    return truncate(value if isinstance(value, str) else json.dumps(value, default=str), width)
