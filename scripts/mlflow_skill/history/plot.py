"""--plot: one PNG panel per metric, every run overlaid, min and max marked and labelled exact
or sample. matplotlib is imported only here, only when drawing (start-up time matters)."""

from __future__ import annotations

from mlflow_skill.core.files import write_atomic
from mlflow_skill.core.formatting import fmt_num
from mlflow_skill.history.markdown import fmt_step
from mlflow_skill.history.request import SCRIPT
from mlflow_skill.history.shape import Shaped
from mlflow_skill.history.summary import Summary


def plot_png(path: str, sh: Shaped, force: bool) -> str:
    """One panel per metric, every run overlaid, min and max marked and labelled exact or sample.
    The labels are also in the PNG's Description text chunk. matplotlib is imported here only."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [key for key, series_list in sh.results if series_list]
    fig, axes = plt.subplots(max(1, len(keys)), 1, figsize=(10, 3.2 * max(1, len(keys))), squeeze=False)
    labels: list[str] = []
    for ax, key in zip(axes[:, 0], keys, strict=False):
        labels += plot_metric(ax, key, [summ for summ in sh.summaries if summ.metric == key], sh)
    if not keys:
        axes[0, 0].text(0.5, 0.5, "no points", ha="center", va="center")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Title": f"{SCRIPT} --plot", "Description": "\n".join(labels)})
    plt.close(fig)
    return str(write_atomic(path, buf.getvalue(), force=force, flag="--plot").resolve())


def extreme_label(summ: Summary, which: str, run_name: str) -> str | None:
    """'max 9.5 @31,337 (exact)' or 'sample max 2.1 @0 (of 2,500 sampled points)'."""
    p = getattr(summ, which)
    if p is None or p["value"] is None:
        return None
    if summ.extremes == "exact":
        return f"{run_name}: {which} {fmt_num(p['value'])} @{fmt_step(p['step'])} (exact)"
    return (
        f"{run_name}: sample {which} {fmt_num(p['value'])} @{fmt_step(p['step'])} (of {summ.points:,} sampled points)"
    )


def plot_metric(ax, key: str, summs: list[Summary], sh: Shaped) -> list[str]:
    kinds, labels = set(), []
    steps = [p[0] for summ in summs for p in sh.series_of(summ).points]
    mid = (min(steps) + max(steps)) / 2 if steps else 0
    ax.margins(x=0.03, y=0.15)
    for summ in summs:
        s = sh.series_of(summ)
        kinds.add("exact" if s.exact else "sampled")
        name = sh.names[s.run_id]
        color = ax.plot([p[0] for p in s.points], [p[2] for p in s.points], lw=1, label=name)[0].get_color()
        for which, marker, dy in (("min", "v", -12), ("max", "^", 6)):
            text = extreme_label(summ, which, name)
            if text is None:
                continue
            p = getattr(summ, which)
            ax.plot([p["step"]], [p["value"]], marker=marker, color=color, ms=8, ls="none")
            right = p["step"] > mid  # labels point inwards, so none runs off the panel
            ax.annotate(
                text.split(": ", 1)[1],
                (p["step"], p["value"]),
                textcoords="offset points",
                xytext=(-6 if right else 6, dy),
                ha="right" if right else "left",
                fontsize=8,
                color=color,
            )
            labels.append(f"{key}: {text}")
    ax.set_title(f"{key} ({' / '.join(sorted(kinds))})", fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(summs) > 1:
        ax.legend(fontsize=8)
    return labels
