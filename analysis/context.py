"""What the report's section builders read (`Context`) and which variants its figures plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from analysis import tables as tb
from analysis.comparisons import Pair, selector_label, variant_selector
from analysis.load import RunData, is_search_source, variants
from analysis.render import write_csv
from analysis.scales import ScoreScale


@dataclass(frozen=True)
class Context:
    """What the section builders read.

    ``run.evals``: the rows with a score on ``scale`` (`analysis.scales.rows_on_scale`; its notes
    in ``scale_notes``); ``ckpt``: `analysis.metrics.checkpoint_stats` of them on ``scale``;
    ``pairs``: the (comparison, task) pairs with data for both arms
    (`analysis.comparisons.pair_curves`); ``palette``: a matplotlib colour per plotted variant
    label (`plotted_selectors`); ``degenerate``: flags degenerate arms (`analysis.tables.ArmFlag`),
    whose tests and variance statistics are then reported as not computable (None: no arm is flagged).
    """

    run: RunData
    ckpt: pa.Table
    pairs: list[Pair]
    out: Path
    palette: dict[str, str]
    reps: int
    seed: int
    alpha: float
    early_frac: float
    scale: ScoreScale
    scale_notes: tuple[str, ...] = ()
    degenerate: tb.ArmFlag | None = None

    def titled(self, title: str) -> str:
        """A section title that names the score scale: ``title — normalized score (mdpt scale)``."""
        return f"{title} — {self.scale.heading}"

    def csv(self, t: pa.Table, name: str, scale: ScoreScale | None = None) -> Path:
        """Write ``t`` as ``name`` into the output directory with a ``score_scale`` column (default: ``scale``)."""
        scale = scale or self.scale
        return write_csv(t.append_column("score_scale", pa.array([scale.name] * t.num_rows, pa.string())),
                         self.out / name)


def plotted_selectors(pairs: list[Pair], ckpt: pa.Table) -> list[dict]:
    """The compared variants (baseline before method, first appearance wins), else every non-search variant."""
    seen: dict[str, dict] = {}
    for pr in pairs:
        for sel in (pr.comparison.baseline, pr.comparison.method):
            seen.setdefault(selector_label(sel), sel)
    return list(seen.values()) or [variant_selector(v, ckpt) for v in variants(ckpt)
                                   if not is_search_source(v["infer_source"])]
