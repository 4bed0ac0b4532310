"""Whether a column read as returns can be returns: price levels and all-positive percent numbers
are refused before anything is created (QuantStats would read them as prices for some metrics and
as returns for others, and log both kinds of figure side by side), naming the flag that reads them
right. Nothing here talks to the store.
"""

from __future__ import annotations

import math

from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import fmt_num

PLAUSIBLE_MEDIAN = 0.2  # a median bar return above 20 %, every bar positive: not fractional returns
SMOOTH_STEP = 0.05  # price levels move a few percent from one bar to the next; percent returns jump


def refuse_levels(values, where: str, prices_flag: str) -> None:
    """Refuse a column whose every value is positive and that cannot be fractional returns: values
    of 1 (+100 % a bar) or more, or a median above 20 %. Price levels (each value close to the one
    before) are told to pass `prices_flag`; other all-positive numbers (percent returns of a
    strategy that never lost a bar) --percent. `values` in time order; NaN (a late start) skipped."""
    import numpy as np

    finite = values[np.isfinite(values)]
    if len(finite) < 2 or float(finite.min()) <= 0:
        return
    median = float(np.median(finite))
    if float(finite.max()) < 1 and median <= PLAUSIBLE_MEDIAN:
        return
    step = float(np.median(np.abs(finite[1:] / finite[:-1] - 1.0)))
    span = f"from {fmt_num(float(finite.min()))} to {fmt_num(float(finite.max()))}"
    if step < SMOOTH_STEP:
        raise UsageError(
            f"{where} looks like price levels, not returns: every value is positive ({span}) and each is within "
            f"{_pct(step)} of the one before (median); read as returns every bar would gain {_pct(median)}. "
            f"Pass {prices_flag} if the column holds prices (or equity), --percent if it holds percent returns"
        )
    raise UsageError(
        f"{where} holds only positive numbers ({span}, median {fmt_num(median)}): as fractional returns "
        f"(0.01 = 1 %) every bar would gain, {_pct(median)} typically. Pass --percent if they are percent numbers "
        f"(1.5 = 1.5 %), {prices_flag} if they are prices"
    )


def check_scale(series, ppy: float, notes: list[str], label: str) -> None:
    """A note when the returns' statistics are implausible for fractions (0.01 = 1 %): percent
    numbers read as fractions give a median bar move above 20 % or an annualised volatility above
    100 % (crypto can reach that: the note says to check, it changes nothing)."""
    import numpy as np

    vals = series.to_numpy(dtype=float)
    median = float(np.median(np.abs(vals)))
    vol = float(np.std(vals, ddof=1)) * math.sqrt(ppy) if len(vals) > 1 else 0.0
    if median > 0.2 or vol > 1.0:
        notes.append(
            f"{label}: median absolute return {median:.3g} per bar, annualised volatility {vol:.0%}: implausible for "
            "fractional returns (0.01 = 1 %); if the column holds percent numbers (1.5 = 1.5 %), pass --percent"
        )


def _pct(fraction: float) -> str:
    return f"{fmt_num(fraction * 100, 3)} %"


SMALL_SAMPLE_BARS = 30


def small_sample_note(bars: int, ppy: float) -> str | None:
    """A note for a handful of bars: every annualised figure extrapolates them to a year."""
    if bars >= SMALL_SAMPLE_BARS:
        return None
    return (
        f"small sample: {bars} bars ({bars / ppy:.2g} years at {fmt_num(ppy)} a year); CAGR, volatility, Sharpe and "
        f"every annualised figure extrapolate them to a year and their standard errors are large (the Sharpe "
        f"ratio's is about sqrt((1 + SR^2/2) / {bars - 1}) per bar): read them as indicative only"
    )
