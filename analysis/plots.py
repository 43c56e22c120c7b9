"""PNG plots of computed report outputs (matplotlib's object API with the Agg canvas; no pyplot state).

Every function takes already-computed arrays (nothing here reads results or computes statistics)
and writes one PNG. Scores are normalized scores x100; every score axis is labelled with the
caller's ``score`` text, which names the scale (`analysis.scales.ScoreScale.axis`, e.g.
"normalized score (mdpt scale, ×100)").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

STEP = "gradient step"


@dataclass(frozen=True)
class Curve:
    """One variant's line on one task: steps (K,), center (K,), band lo/hi (K,) (NaN = no band)."""

    label: str
    steps: np.ndarray
    center: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    color: str | None = None  # a matplotlib color; None = the i-th default color


def _grid(n: int, ncols: int, w: float = 5.2, h: float = 3.6) -> tuple[Figure, list]:
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(w * ncols, h * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _lines(ax, curves: list[Curve], marker: str = "o") -> None:
    for i, c in enumerate(curves):
        color = c.color or f"C{i % 10}"
        ax.plot(c.steps, c.center, marker=marker if len(c.steps) <= 30 else "", ms=3.5, lw=1.6, color=color,
                label=c.label)
        if np.any(~np.isnan(c.lo)):
            ax.fill_between(c.steps, c.lo, c.hi, color=color, alpha=0.2, lw=0)
    ax.grid(alpha=0.3)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


@dataclass(frozen=True)
class ReferenceLine:
    """A horizontal reference line on a task's score axis: ``kind`` (random | stand_still | no_progress |
    dataset) and its score on the plot's scale."""

    kind: str
    score: float


# kind -> (legend text, color, line style); drawn behind the curves
REFERENCE_STYLES = {"dataset": ("dataset (behaviour data)", "0.35", "-."),
                    "no_progress": ("no forward progress (upper bound)", "0.1", "-"),
                    "stand_still": ("zero action (stand-still attempt)", "0.2", "--"),
                    "random": ("random (uniform actions)", "0.55", ":")}
REFERENCE_WIDTHS = {"no_progress": 0.8}  # thin solid: unlike the curves (thicker, coloured); others 1.2


def _reference_lines(ax, refs: list[ReferenceLine]) -> None:
    for r in refs:
        text, color, style = REFERENCE_STYLES[r.kind]
        ax.axhline(r.score, color=color, ls=style, lw=REFERENCE_WIDTHS.get(r.kind, 1.2), zorder=0.5,
                   label=f"{text}: {r.score:.1f}")


def learning_curves_figure(by_task: dict[str, list[Curve]], band: str, *, score: str,
                           references: dict[str, list[ReferenceLine]] | None = None) -> Figure:
    """The figure of `learning_curves` (for callers that inspect it)."""
    fig, axes = _grid(len(by_task), 2)
    for ax, (task, curves) in zip(axes, by_task.items()):
        _reference_lines(ax, (references or {}).get(task, []))
        _lines(ax, curves)
        ax.set(title=task, xlabel=STEP, ylabel=score)
        ax.legend(fontsize=8, title=f"mean over seeds, band = {band}", title_fontsize=8, ncols=2,
                  loc="upper center", bbox_to_anchor=(0.5, -0.16))  # below the panel: lines near 0 stay visible
    fig.suptitle("Learning curves" + (" with reference lines" if references else ""))
    return fig


def learning_curves(by_task: dict[str, list[Curve]], path: Path, band: str, *, score: str,
                    references: dict[str, list[ReferenceLine]] | None = None) -> Path:
    """One panel per task: seed-mean score per checkpoint with a band (described by ``band``), and the task's
    ``references`` as horizontal lines (dashed: zero action, dotted: random, thin solid: no forward progress,
    dash-dot: dataset)."""
    return _save(learning_curves_figure(by_task, band, score=score, references=references), path)


def variance_curves(by_task: dict[str, tuple[list[Curve], list[Curve]]], path: Path, *, ylabel: str) -> Path:
    """Per task, two panels: within-run (across-episode) variance and across-seed variance per checkpoint
    (``ylabel`` names the variance's scale and units, `analysis.scales.ScoreScale.variance_axis`)."""
    fig, axes = _grid(2 * len(by_task), 2)
    for i, (task, pair) in enumerate(by_task.items()):
        for ax, curves, what in zip(axes[2 * i:2 * i + 2], pair, ("within run (across episodes)", "across seeds")):
            _lines(ax, curves)
            ax.set(title=f"{task}: variance {what}", xlabel=STEP, ylabel=ylabel)
            ax.legend(fontsize=8)
    fig.suptitle("Per-checkpoint variance")
    return _save(fig, path)


def interval_estimates(labels: list[str], metrics: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                       path: Path, note: str, colors: list[str] | None = None, *, score: str) -> Path:
    """One panel per aggregate metric: point estimate and 95 % CI per variant (horizontal).

    ``metrics``: name -> (point, lo, hi), each (num_variants,) in the order of ``labels``.
    """
    colors = colors or [f"C{i % 10}" for i in range(len(labels))]
    fig, axes = _grid(len(metrics), len(metrics), w=4.6, h=0.9 + 0.45 * len(labels))
    for j, (ax, (name, (point, lo, hi))) in enumerate(zip(axes, metrics.items())):
        y = np.arange(len(labels))
        for i in y:
            ax.plot([lo[i], hi[i]], [i, i], color=colors[i], lw=7, alpha=0.35, solid_capstyle="butt")
            ax.plot([point[i]], [i], "|", color=colors[i], ms=16, mew=2.5)
        ax.set_yticks(y, labels if j == 0 else [""] * len(labels))
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set(title=name, xlabel=score)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Aggregate scores with 95 % stratified-bootstrap CIs ({note})")
    return _save(fig, path)


def performance_profiles(curves: list[Curve], path: Path, note: str, *, score: str) -> Path:
    """Score distributions: fraction of runs with score > tau, with bootstrap CI bands."""
    fig, (ax,) = _grid(1, 1, w=6.4, h=4.2)
    _lines(ax, curves, marker="")
    ax.set(xlabel=f"threshold τ, {score}", ylabel="fraction of runs with score > τ", ylim=(-0.02, 1.02),
           title=f"Performance profiles ({note})")
    ax.legend(fontsize=8, title="band = 95 % CI", title_fontsize=8)
    return _save(fig, path)


def score_vs_scale(by_task: dict[str, list[Curve]], path: Path, xlabel: str, *, score: str) -> Path:
    """Per task: final score (mean ± std over seeds) against the guidance scale."""
    fig, axes = _grid(len(by_task), 2)
    for ax, (task, curves) in zip(axes, by_task.items()):
        for i, c in enumerate(curves):
            ax.errorbar(c.steps, c.center, yerr=[c.center - c.lo, c.hi - c.center], marker="o", capsize=3,
                        color=c.color or f"C{i % 10}", label=c.label)
        ax.set(title=task, xlabel=xlabel, ylabel=f"final {score}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="mean ± std over seeds", title_fontsize=8)
    fig.suptitle("Score vs guidance scale")
    return _save(fig, path)


@dataclass(frozen=True)
class ScalePanel:
    """One guidance-search study: per parameter point (sorted by scale) the seed mean with its CI,
    the per-seed scores, and the best trial. ``connect``: the points form one series over the
    scale (only the scale was searched), drawn as a line with a CI band; else markers and whiskers."""

    title: str
    xlabel: str
    scale: np.ndarray  # (P,)
    center: np.ndarray  # (P,) mean over seeds
    lo: np.ndarray  # (P,) CI (NaN = none)
    hi: np.ndarray
    seeds: dict[str, tuple[np.ndarray, np.ndarray]]  # seed label -> (scales, scores)
    best: tuple[float, float] | None  # (scale, objective) of the best trial
    connect: bool = True
    note: str = ""  # shown under the title, e.g. failed trials
    point_labels: tuple[str, ...] = ()  # (P,) text beside each point (the other searched parameters), or none


def search_scale(panels: list[ScalePanel], path: Path, band: str, *, score: str) -> Path:
    """One panel per study: objective (mean over seeds) against the searched scale, with per-seed
    points and a CI (described by ``band``); log x axis when the scales span more than 2 decades."""
    fig, axes = _grid(len(panels), 2, w=5.8, h=4.0)
    for ax, p in zip(axes, panels):
        many = len(p.seeds) > 8
        for i, (seed, (x, y)) in enumerate(p.seeds.items()):
            ax.scatter(x, y, s=16, alpha=0.6, color="0.55" if many else f"C{(i + 1) % 10}", zorder=2,
                       marker="o" if many else "os^Dv<>p"[i % 8],
                       label=("per-seed scores" if i == 0 else None) if many else f"seed {seed}")
        has_ci = np.isfinite(p.lo) & np.isfinite(p.hi)
        if p.connect and has_ci.sum() >= 2:
            ax.fill_between(p.scale[has_ci], p.lo[has_ci], p.hi[has_ci], color="C0", alpha=0.18, lw=0, label=band)
        if has_ci.any():
            ax.errorbar(p.scale[has_ci], p.center[has_ci],
                        yerr=[p.center[has_ci] - p.lo[has_ci], p.hi[has_ci] - p.center[has_ci]], fmt="none",
                        ecolor="C0", elinewidth=1, capsize=3, zorder=3,
                        label=None if p.connect and has_ci.sum() >= 2 else band)
        ax.plot(p.scale, p.center, "-o" if p.connect else "o", color="C0", lw=1.6, ms=4.5, zorder=4,
                label="mean over seeds (objective)")
        if p.best is not None:
            ax.plot([p.best[0]], [p.best[1]], "*", color="gold", mec="k", ms=15, zorder=5,
                    label=f"best: scale {p.best[0]:.4g} → {p.best[1]:.1f}")
        for x, y, text in zip(p.scale, p.center, p.point_labels):
            if text:
                ax.annotate(text, (x, y), xytext=(6, -11), textcoords="offset points", fontsize=7, color="0.3")
        finite = p.scale[np.isfinite(p.scale)]
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set(title=p.title + (f"\n{p.note}" if p.note else ""), xlabel=p.xlabel, ylabel=f"mean {score}")
        ax.title.set_fontsize(10)
        ax.margins(x=0.12 if any(p.point_labels) else 0.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="best")
    fig.suptitle("Guidance-scale search: objective vs scale (COMPLETE trials)")
    return _save(fig, path)
