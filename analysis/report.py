"""Build the report of a run directory: report.md, a self-contained report.html, CSV tables, PNG plots.

`build_report` reads only ``RUN_DIR/results`` (and run.json / spec.yaml for the comparisons),
pairs the comparisons' curves (`analysis.comparisons`), lets each builder of `analysis.sections`
write its tables and plots and return its section, and renders the sections to Markdown and HTML
(`analysis.render`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from analysis import metrics as mt
from analysis import checks
from analysis import sections as sec
from analysis.context import Context, plotted_selectors
from analysis.comparisons import comparisons_for, pair_curves, plug_and_play_partners, selector_label
from analysis.load import RunData, load_run
from analysis.render import Section, write_report
from analysis.scales import rows_on_scale, score_scale as get_scale


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, compare: list[str] | None = None, *,
                 reps: int = 2000, seed: int = 0, alpha: float = 0.05, early_frac: float = 0.2,
                 horizon: int | None = None, score_scale: str = "mdpt") -> Path:
    """Write the report of ``run_dir`` into ``out_dir`` (default RUN_DIR/report); returns report.md's path.

    ``compare``: ``METHOD:BASELINE`` shorthands; without them the spec's ``report.comparisons``
    or the default comparisons are used (`analysis.comparisons.comparisons_for`). Explicit comparisons
    that cannot be computed raise (`MissingBaselineError`, ...), and so does every comparison when
    ``horizon`` is given; otherwise spec/default ones are left out with a note. Plug-and-play
    comparisons also get the guidance algorithm's own variant as a second baseline.
    ``reps`` bootstrap replications, seeded by ``seed``; ``early_frac`` of the horizon is "Early".
    ``score_scale``: ``mdpt`` (column ``normalized_score``) or ``d4rl`` (``normalized_score_d4rl``,
    D4RL's bullet reference scores): the scale of every score shown (`analysis.scales`); tasks
    without scores on it are left out with a note, and `ScoreScaleError` is raised when none has any.
    """
    scale = get_scale(score_scale)
    run = load_run(run_dir)
    evals, scale_notes = rows_on_scale(run.evals, scale)
    run = dataclasses.replace(run, evals=evals)
    rngs = np.random.default_rng(seed).spawn(3)  # aggregates, probability of improvement, profiles
    comps = comparisons_for(run, compare)
    comps += plug_and_play_partners(comps, run.evals)
    ckpt = mt.checkpoint_stats(run.evals, scale.column)
    pairs, skipped = pair_curves(ckpt, comps, horizon, strict=bool(compare) or horizon is not None, trials=run.trials)
    out = Path(out_dir) if out_dir else run.run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    palette = {selector_label(sel): f"C{i % 10}" for i, sel in enumerate(plotted_selectors(pairs, ckpt))}
    ctx = Context(run, ckpt, pairs, out, palette, reps, seed, alpha, early_frac, scale, tuple(scale_notes))
    ctx = dataclasses.replace(ctx, degenerate=checks.arm_reasons(ctx))  # flagged arms' statistics are refused
    sections: list[Section] = [
        sec.header(ctx), sec.run_status(ctx), checks.policy_checks(ctx),
        sec.comparisons_overview(ctx, len(comps), _source(run, compare), skipped),
        *sec.comparison_tables(ctx), *sec.variance(ctx), *sec.plug_and_play(ctx), sec.learning_curves(ctx),
        checks.reference_lines(ctx),
        *sec.aggregates(ctx, *rngs), *sec.swg_scale(ctx), *sec.guidance_search(ctx), sec.definitions(ctx)]
    return write_report(sections, out, title=sections[0].title)


def _source(run: RunData, compare: list[str] | None) -> str:
    """Where the comparisons come from, for the overview."""
    if compare:
        return "--compare"
    if run.spec.get("comparisons"):
        return "the sweep spec (report.comparisons)"
    return "the defaults (every training-guidance mode vs joint within an algorithm; recombined guidance vs own)"
