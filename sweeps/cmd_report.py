"""`mdpt report RUN_DIR [--out DIR] [--compare METHOD:BASELINE ...] [--score-scale mdpt|d4rl]`: statistics,
tables and plots of a run."""

from __future__ import annotations

import argparse
from pathlib import Path


def make_report(run_dir: str | Path, out_dir: str | Path | None = None, compare: list[str] | None = None,
                **options) -> Path:
    """Write report.md, report.html, CSV tables and PNG plots of ``run_dir``; returns report.md's path.

    ``out_dir`` defaults to RUN_DIR/report; ``compare`` holds ``METHOD:BASELINE`` shorthands
    (e.g. ``dql/frozen:dql/joint``), default: the spec's ``report.comparisons``. ``options`` go to
    `analysis.report.build_report` (reps, seed, alpha, early_frac, horizon, score_scale).
    """
    from analysis.report import build_report

    return build_report(run_dir, out_dir, compare, **options)


def _run(args: argparse.Namespace) -> int:
    path = make_report(args.run_dir, args.out, args.compare, reps=args.reps, seed=args.seed, alpha=args.alpha,
                       early_frac=args.early_frac, horizon=args.horizon, score_scale=args.score_scale)
    print(f"report written: {path} (and report.html, CSV tables, PNG plots in {path.parent})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the statistics report (Markdown, HTML, CSV, PNG) of a run directory",
                       description="Compute Peak / AUC / Early gains, Mann-Whitney and Levene tests, the variance "
                                   "table and rliable-style aggregates of a run directory's results, and write "
                                   "report.md, a self-contained report.html, every table as CSV and the plots.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `mdpt sweep` or `mdpt train --out`")
    p.add_argument("--out", metavar="DIR", help="output directory (default: RUN_DIR/report)")
    p.add_argument("--compare", metavar="METHOD:BASELINE", nargs="+", action="extend",
                   help="comparisons as algo/train_guidance[/infer_source] pairs, ':' in a source written '-', "
                        "e.g. dql/frozen:dql/joint, dql/joint/algo-idql:dql/joint, dql/joint/seed-+1-final:dql/joint "
                        "(default: report.comparisons of the sweep spec, else every training-guidance mode vs "
                        "joint within each algorithm)")
    p.add_argument("--horizon", type=int, metavar="STEPS",
                   help="compare arms up to this step (default: the last checkpoint both arms reach)")
    p.add_argument("--early-frac", type=float, default=0.2,
                   help="Early window as a fraction of the horizon (default 0.2)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap replications (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap generator (default 0)")
    p.add_argument("--score-scale", default="mdpt", metavar="mdpt|d4rl",
                   help="score scale of every table and plot: mdpt = normalized with the reference returns stored "
                        "with each mdpt dataset (column normalized_score); d4rl = with D4RL's bullet reference "
                        "returns (column normalized_score_d4rl; tasks that are not D4RL bullet tasks are left "
                        "out) (default mdpt)")
    p.set_defaults(func=_run)
