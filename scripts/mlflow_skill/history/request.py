"""The command line's request: step window, metric names and run ids checked before the first
request to the store, the metrics to show, and the command that asks for exact figures."""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from mlflow_skill.core.errors import NotFoundError, UsageError
from mlflow_skill.core.formatting import truncate
from mlflow_skill.core.secrets import uri_without_secrets
from mlflow_skill.history.series import STEP_MAX, STEP_MIN, Window

SCRIPT = "get_metric_history.py"
DEFAULT_METRIC_CAP = 12  # metrics shown when --metrics is not given
FOLLOW_ONLY = ("every", "deadline", "stall", "patience", "diverge", "fail_on_anomaly")


@dataclass(frozen=True)
class Request:
    window: Window | None  # --steps
    wanted: list[str] | None  # --metrics; None: every metric
    run_ids: list[str]


def parse_steps(text: str | None) -> Window | None:
    if not text:
        return None
    match = re.fullmatch(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*", text)
    if not match or (match.group(1) is None and match.group(2) is None):
        raise UsageError(f"--steps takes START:END (e.g. 1000:5000, 1000: or :5000), got {text!r}")
    start = int(match.group(1)) if match.group(1) is not None else STEP_MIN
    end = int(match.group(2)) if match.group(2) is not None else STEP_MAX
    if not STEP_MIN <= start <= STEP_MAX or not STEP_MIN <= end <= STEP_MAX:
        raise UsageError(f"--steps {text}: steps are 64-bit integers (at most {STEP_MAX})")
    if start > end:
        raise UsageError(f"--steps {text}: START must not be greater than END")
    return start, end


def fmt_window(window: Window) -> str:
    lo = "" if window[0] == STEP_MIN else str(window[0])
    hi = "" if window[1] == STEP_MAX else str(window[1])
    return f"{lo}:{hi}"


def split_metrics(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--metrics is empty: pass names like --metrics loss,val_loss")
    return list(dict.fromkeys(names))


def check_args(args) -> Request:
    """Every usage error before the first request."""
    window = parse_steps(args.steps)
    wanted = split_metrics(args.metrics)
    if args.output and not args.full:
        raise UsageError("--output writes every point: add --full")
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".json"):
        raise UsageError(f"--output {args.output}: the name must end in .csv or .json")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise UsageError(f"--plot {args.plot}: the name must end in .png")
    if args.max_points is not None and args.max_points < 2:
        raise UsageError("--max-points must be at least 2 (the first and the last point)")
    for flag, target in (("--output", args.output), ("--plot", args.plot)):
        if target and Path(target).exists() and not args.force:  # fail before the slow part
            raise UsageError(f"{target} exists: pass --force to overwrite it, or choose another {flag}")
        if target and not Path(target).resolve().parent.is_dir():
            raise UsageError(f"folder {Path(target).parent} does not exist: create it or choose another {flag}")
    run_ids = list(dict.fromkeys(r.strip() for r in args.run_id if r.strip()))
    if not run_ids:
        raise UsageError("--run-id is empty")
    return Request(window, wanted, run_ids)


def check_not_following(args) -> None:
    given = [f"--{name.replace('_', '-')}" for name in FOLLOW_ONLY if getattr(args, name, None) not in (None, False)]
    if given and not args.follow:
        raise UsageError(f"{', '.join(given)} only apply to a follow: add --follow")


def choose_metrics(
    keys_by_run: dict[str, list[str]], wanted: list[str] | None, full: bool
) -> tuple[list[str], list[str]]:
    """(metrics to show, metrics hidden by the default cap); an unknown name is NotFoundError."""
    all_keys = sorted({k for ks in keys_by_run.values() for k in ks}, key=lambda k: (k.startswith("system/"), k))
    if wanted is None:
        if len(all_keys) > DEFAULT_METRIC_CAP and not full:
            return all_keys[:DEFAULT_METRIC_CAP], all_keys[DEFAULT_METRIC_CAP:]
        return all_keys, []
    for key in wanted:
        if key not in all_keys:
            which = "the run" if len(keys_by_run) == 1 else "any of the runs"
            close = difflib.get_close_matches(key, all_keys, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(k) for k in close)}?" if close else ""
            listing = ", ".join(truncate(k, 40) for k in all_keys[:30]) or "(none)"
            more = f" and {len(all_keys) - 30} more" if len(all_keys) > 30 else ""
            raise NotFoundError(f"{which} has no metric {key!r}{hint} (its metrics: {listing}{more})")
    return wanted, []


def exact_command(tracking_uri: str | None, run_ids: list[str], key: str, window: Window | None) -> str:
    """The command line that reads these runs' series whole (offered beside sampled figures)."""
    args = ["uv", "run", f"scripts/{SCRIPT}", "--run-id", *run_ids, "--metrics", key, "--exact"]
    if window:
        args.append(f"--steps={fmt_window(window)}")
    if tracking_uri:
        args += ["--tracking-uri", uri_without_secrets(tracking_uri)]
    return shlex.join(args)
