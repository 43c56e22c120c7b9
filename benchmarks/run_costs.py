"""What a finished sweep cost, per stage and per arm, and how many training steps each arm needed to reach a
score: the figures behind "the GFDT arm's critic pretraining cost, beside the training it saved".

Reads only the run directory (recomputable from saved data): Tune's ``result.json`` of every trial under
``RUN_DIR/tune/<stage>/`` (``time_total_s``: seconds the trial's trainable ran, summed over its attempts' last
report; ``step``), the ``trials`` table (which arm a trial is) and the ``evals`` table (own evaluations:
seed-mean score per checkpoint, and the evaluator's wall seconds per job). Prints two tables:

1. per stage and arm: trials, gradient steps per trial, seconds per trial (median), seconds per 1k steps;
2. per training arm: the first checkpoint at which the seed-mean score reaches each threshold (and stays at or
   above it at the next checkpoint, so one lucky checkpoint does not count), with the training seconds that step
   costs at the arm's measured rate.

Usage: .venv/bin/python benchmarks/run_costs.py RUN_DIR [--thresholds 50 70 80]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.results import read_table  # noqa: E402  (pyarrow only)


def last_result(trial_dir: Path) -> dict | None:
    lines = [ln for ln in (trial_dir / "result.json").read_text().splitlines() if ln.strip()] \
        if (trial_dir / "result.json").exists() else []
    return json.loads(lines[-1]) if lines else None


def stage_costs(run_dir: Path) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(stage, "task algo/mode") -> [(steps, seconds)] of every trial with a Tune result (trials a run took from
    another with --reuse have none here: their cost is the source run's)."""
    arm_of = {r["trial_id"]: (r["stage"], f"{r['task']} {r['algo']}/{r['train_guidance']}")
              for r in read_table(run_dir, "trials").to_pylist()}
    out: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for stage in ("pretrain", "train"):
        for trial_dir in sorted((run_dir / "tune" / stage).glob("*_*")):
            res = last_result(trial_dir)
            if res and trial_dir.name in arm_of:
                out[arm_of[trial_dir.name]].append((float(res["step"]), float(res["time_total_s"])))
    return out


def first_sustained(steps: list[int], scores: list[float], threshold: float) -> int | None:
    """The first checkpoint whose score and the next checkpoint's are >= threshold (the last may stand alone)."""
    for i, (s, v) in enumerate(zip(steps, scores)):
        if v >= threshold and (i + 1 == len(scores) or scores[i + 1] >= threshold):
            return s
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[50.0, 70.0, 80.0])
    args = ap.parse_args()
    costs = stage_costs(args.run_dir)
    print(f"run {args.run_dir}")
    print(f"{'stage':<9}{'arm':<36}{'trials':>7}{'steps':>8}{'s/trial':>10}{'s/1k steps':>12}")
    rate: dict[str, float] = {}
    for (stage, arm), rows in sorted(costs.items()):
        steps = statistics.median(r[0] for r in rows)
        secs = statistics.median(r[1] for r in rows)
        per_k = 1000 * secs / steps if steps else float("nan")
        if stage == "train":
            rate[arm] = per_k
        print(f"{stage:<9}{arm:<36}{len(rows):>7}{steps:>8.0f}{secs:>10.0f}{per_k:>12.1f}")
    evals = [r for r in read_table(args.run_dir, "evals").to_pylist() if r["infer_source"] == "self"]
    jobs = {(r["trial_id"], r["step"], r["infer_method"], r["infer_scale"], r["inference_precision"]): r["wall_s"]
            for r in evals}  # one evaluation job per key (its rows repeat the job's wall_s)
    if jobs:
        print(f"own evaluations: {len(jobs)} jobs, evaluator wall seconds per job: median "
              f"{statistics.median(jobs.values()):.1f}, total {sum(jobs.values()):.0f}")
    variants = {(r["infer_method"], str(r["infer_scale"]), r["inference_precision"]) for r in evals}
    per: dict[str, dict[int, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in evals:
        arm = f"{r['task']} {r['algo']}/{r['train_guidance']}" + (
            f" [{r['infer_method']} {r['infer_scale']:g} {r['inference_precision']}]" if len(variants) > 1 else "")
        per[arm][r["step"]][r["diffusion_seed"]].append(r["normalized_score"])
    print(f"\nfirst checkpoint where the seed-mean score reaches a threshold and holds at the next one")
    print(f"{'arm':<36}" + "".join(f"{f'>= {t:g}':>18}" for t in args.thresholds))
    for arm, by_step in sorted(per.items()):
        steps = sorted(by_step)
        scores = [statistics.mean(statistics.mean(v) for v in by_step[s].values()) for s in steps]
        cells, base = [], arm.split(" [")[0]
        for t in args.thresholds:
            s = first_sustained(steps, scores, t)
            cells.append("never" if s is None else
                         f"{s} ({s * rate[base] / 1000:.0f} s)" if base in rate else str(s))
        print(f"{arm:<36}" + "".join(f"{c:>18}" for c in cells))
    print("(seconds: training seconds to reach that step at the arm's median s/1k steps, evaluation included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
