"""How many bars make a year: given by --periods-per-year, or inferred from the timestamps (the
convention for the bar spacing, checked against the bars a year the data itself has).
"""

from __future__ import annotations


def periods_per_year(args, local_index, notes: list[str]) -> tuple[float, str]:
    """(periods per year, how it was decided) for --periods-per-year or the data's own times."""
    if args.periods_per_year is not None:
        return float(args.periods_per_year), "given by --periods-per-year"
    ppy, how = infer_periods_per_year(local_index, notes)
    return ppy, "inferred: " + how


TOLERANCE = 0.10  # measured bars a year vs the calendar's convention
MIN_CHECK_DAYS = 90  # shorter spans measure the calendar too roughly (edge weekends, partial weeks)
MIN_CHECK_BARS = 20


def infer_periods_per_year(index, notes: list[str] | None = None) -> tuple[float, str]:
    """Annualisation from the timestamps (local wall-clock times: weekdays as the data states them):
    (periods per year, how it was inferred). The convention for the bar spacing (252 trading days,
    365 calendar days, 52 weeks, ...) is checked against the bars a year the data itself has; when
    they differ by more than 10 % the measured figure is used, with a note naming the flag."""
    if len(index) < 2:
        return 252.0, "default (too few bars to infer)"
    ppy, how = _convention(index)
    span_days = float((index[-1] - index[0]).total_seconds()) / 86400.0
    if span_days < MIN_CHECK_DAYS or len(index) < MIN_CHECK_BARS:
        return ppy, f"{how} (the data spans {span_days:.3g} days: too short to check against the calendar)"
    measured = (len(index) - 1) / (span_days / 365.25)
    gap = measured / ppy - 1.0
    if abs(gap) <= TOLERANCE:
        return ppy, f"{how}; the data has {measured:.4g} bars a year, within 10 %"
    chosen = float(f"{measured:.4g}")
    if notes is not None:
        notes.append(
            f"periods per year: the data has {measured:.4g} bars a year ({len(index)} bars over "
            f"{span_days / 365.25:.3g} years), "
            f"{gap:+.0%} from the {ppy:g} of its spacing ({how}): irregular or gappy bars, so the measured {chosen:g} "
            f"is used; "
            f"pass --periods-per-year {ppy:g} to use the convention"
        )
    return (
        chosen,
        f"measured: {len(index) - 1} intervals over {span_days:.4g} days; the convention ({how}) differs by {gap:+.0%}",
    )


def _convention(index) -> tuple[float, str]:
    import numpy as np

    diffs = np.diff(index.values).astype("timedelta64[s]").astype(float)
    median_days = float(np.median(diffs)) / 86400.0
    weekend_share = float((index.day_of_week >= 5).mean())
    weekends = weekend_share > 0.05
    if median_days < 0.5:  # intraday
        per_day = index.normalize().value_counts()
        bars = float(np.median(per_day.to_numpy()))
        step = _fmt_step(median_days * 86400)
        if weekends:
            return 365.0 * bars, f"intraday {step} bars, {bars:g} per day, weekend bars present: 365 x {bars:g}"
        return 252.0 * bars, f"intraday {step} bars, {bars:g} per day, no weekend bars: 252 x {bars:g}"
    if median_days < 3.5:
        if weekends:
            return 365.0, f"daily bars incl. weekends ({weekend_share:.0%} on Sat/Sun): 365 calendar days"
        return 252.0, "daily bars without weekends: 252 trading days"
    for low, high, ppy, name in (
        (5, 9, 52.0, "weekly"),
        (25, 35, 12.0, "monthly"),
        (80, 100, 4.0, "quarterly"),
        (350, 380, 1.0, "yearly"),
    ):
        if low <= median_days <= high:
            return ppy, f"{name} bars: {ppy:g}"
    ppy = round(365.25 / median_days, 2)
    return ppy, f"irregular bars (median {median_days:.3g} days apart): 365.25 / {median_days:.3g}"


def _fmt_step(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    if seconds >= 60:
        return f"{seconds / 60:g}min"
    return f"{seconds:g}s"
