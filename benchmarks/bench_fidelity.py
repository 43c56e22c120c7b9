"""Fidelity of bf16: DQL trained in fp32 vs bf16, and the same snapshots evaluated in fp32 vs bf16.

Not a test: a resumable experiment whose result decides the precision defaults (README "Precision").
For each seed and training precision, ``run_training`` trains DQL (joint critic, default config but
``--algo-config``, by default ``ema_warmup="copy"``) on
``--task`` for ``--steps`` gradient steps with a snapshot every ``--eval-every`` steps; every snapshot is
evaluated with the default DQL inference (softmax over 50 candidates) in each evaluation precision on
the same ``--episodes`` episodes (env seeds ``eval_seed_for(seed, step) + i``, as the sweeps do).

Everything is written under ``--out`` and reused on a rerun: a finished training run is skipped, an
interrupted one resumes from its last checkpoint, an evaluation already on disk is read back. So the
work can be split over processes (``--train-precisions fp32`` in one, ``bf16`` in another, same
``--out``) and the report recomputed at any time (``--report-only``).

Statistics (the project's, ``analysis.aggregate``; normalised scores x 100):
- training precision: per seed, the last snapshot's mean score and the time-averaged score (AUC over
  the snapshot grid); bf16 - fp32 with a percentile-bootstrap 95 % CI (seeds resampled independently
  per arm, ``bootstrap_ci_pair``), both arms evaluated in fp32; the learning curves side by side;
- evaluation precision: the same snapshot and the same env seeds in both precisions, so the
  difference is paired per episode: mean of (bf16 - fp32) with a bootstrap CI over the episode pairs
  (``bootstrap_ci``), over all snapshots of all seeds, and at the last snapshot only.

    .venv/bin/python benchmarks/bench_fidelity.py --out runs/fidelity [--seeds 0 1 2] [--steps 8000]
        [--eval-every 1000] [--episodes 10] [--threads 1] [--train-precisions fp32 bf16]
        [--eval-precisions fp32 bf16] [--algo-config '{"ema_warmup": "copy"}'] [--report-only]

The dataset comes from ``$MDPT_DATA`` (``mdpt data make hopper-medium``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sysinfo import describe_machine  # noqa: E402


def train_run(out: Path, task: str, seed: int, precision: str, steps: int, eval_every: int, threads: int,
              algo_config: dict) -> Path:
    """Train (or resume, or skip) one run; returns its snapshot folder."""
    import torch  # noqa: F401

    from rl_core.data.io import load_dataset
    from rl_core.train import TrainConfig, run_training

    workdir = out / "train" / precision / f"seed{seed}"
    final = workdir / f"step_{steps:08d}.pt"
    if final.exists():
        return workdir
    cfg = TrainConfig(task=task, algo="dql", algo_config=algo_config, seed=seed, steps=steps, eval_every=eval_every,
                      log_every=eval_every, threads=threads, precision=precision)
    ckpts = sorted((workdir / "checkpoints").glob("step_*"))
    resume = ckpts[-1] if ckpts else None
    t0 = time.perf_counter()
    log = []
    run_training(cfg, load_dataset(task), workdir=workdir, resume_from=resume, report=log.append)
    rate = [m["time/steps_per_s"] for m in log]
    print(f"  trained {precision} seed {seed}: {steps} steps in {time.perf_counter() - t0:.0f} s "
          f"(resumed from {resume.name if resume else 'scratch'}; steps/s per window {np.round(rate, 1).tolist()})",
          flush=True)
    return workdir


def eval_snapshot(snapshot: Path, out_file: Path, seed: int, step: int, precision: str, episodes: int) -> dict:
    """Evaluate one snapshot in ``precision`` (or read the result written before)."""
    if out_file.exists():
        return json.loads(out_file.read_text())
    from rl_core.evaluation import EvalJob, eval_seed_for, run_eval_job
    from rl_core.fsutil import atomic_write
    from rl_core.inference import InferenceConfig

    inference = InferenceConfig.defaults("dql", precision=precision).to_dict()
    job = EvalJob(snapshot=str(snapshot), inference=inference, episodes=episodes, eval_seed=eval_seed_for(seed, step))
    t0 = time.perf_counter()
    res = run_eval_job(job)
    d = {"scores": [r.normalized_score for r in res], "lengths": [r.length for r in res],
         "eval_seed": job.eval_seed, "inference": inference, "wall_s": time.perf_counter() - t0}
    atomic_write(out_file, lambda tmp: Path(tmp).write_text(json.dumps(d)))
    print(f"  eval {snapshot.parent.parent.name}/{snapshot.parent.name}/step {step} in {precision}: "
          f"{np.mean(d['scores']):6.1f} (mean length {np.mean(d['lengths']):.0f}, {d['wall_s']:.0f} s)", flush=True)
    return d


def load_results(out: Path) -> dict:
    """{(train_p, eval_p, seed, step): scores list} of every evaluation on disk."""
    res = {}
    for f in (out / "evals").glob("*/seed*/step_*_*.json"):
        train_p, seed = f.parent.parent.name, int(f.parent.name[4:])
        step, eval_p = f.stem.split("_")[1], f.stem.split("_")[2]
        res[(train_p, eval_p, seed, int(step))] = json.loads(f.read_text())["scores"]
    return res


def report(out: Path, reps: int = 5000) -> str:
    """The comparison tables (markdown) from everything on disk."""
    from analysis.aggregate import bootstrap_ci, bootstrap_ci_pair

    res = load_results(out)
    if not res:
        return "no evaluations yet"
    rng = np.random.default_rng(0)
    lines = []
    steps = sorted({k[3] for k in res})
    seeds = sorted({k[2] for k in res})
    arms = sorted({(k[0], k[1]) for k in res})
    n_eps = sorted({len(v) for v in res.values()})
    lines.append(f"seeds {seeds}, snapshots at steps {steps}, episodes per evaluation {n_eps}")
    lines.append("")
    lines.append("Learning curves (mean normalised score over seeds; per-seed means in brackets):")
    lines.append("")
    lines.append("| train / eval | " + " | ".join(str(s) for s in steps) + " |")
    lines.append("|---|" + "---|" * len(steps))
    for tp, ep in arms:
        cells = []
        for s in steps:
            per_seed = [np.mean(res[(tp, ep, sd, s)]) for sd in seeds if (tp, ep, sd, s) in res]
            cells.append(f"{np.mean(per_seed):.1f} [{', '.join(f'{x:.0f}' for x in per_seed)}]" if per_seed else "–")
        lines.append(f"| {tp} / {ep} | " + " | ".join(cells) + " |")

    def per_seed_stats(tp: str, ep: str) -> tuple[np.ndarray, np.ndarray]:
        last, auc = [], []
        for sd in seeds:
            curve = [np.mean(res[(tp, ep, sd, s)]) for s in steps if (tp, ep, sd, s) in res]
            if len(curve) == len(steps):
                last.append(curve[-1])
                auc.append(np.trapezoid(curve, steps) / (steps[-1] - steps[0]) if len(steps) > 1 else curve[0])
        return np.asarray(last)[:, None], np.asarray(auc)[:, None]

    lines.append("")
    lines.append("Training precision (both arms evaluated in fp32; difference bf16 - fp32, 95 % bootstrap CI over seeds):")
    lines.append("")
    lines.append("| statistic | fp32 training | bf16 training | difference [95 % CI] |")
    lines.append("|---|---|---|---|")
    a_last, a_auc = per_seed_stats("fp32", "fp32")
    b_last, b_auc = per_seed_stats("bf16", "fp32")
    diff = lambda x, y: float(np.mean(y) - np.mean(x))  # noqa: E731
    for name, a, b in (("last snapshot", a_last, b_last), ("time-averaged (AUC)", a_auc, b_auc)):
        if len(a) and len(b):
            ci = bootstrap_ci_pair(a, b, diff, rng, reps=reps)
            lines.append(f"| {name} | {np.mean(a):.1f} (n={len(a)}) | {np.mean(b):.1f} (n={len(b)}) | "
                         f"{float(ci.point):+.1f} [{float(ci.lower):+.1f}, {float(ci.upper):+.1f}] |")
    lines.append("")
    lines.append("Evaluation precision (same snapshots, same env seeds; paired per episode, bf16 - fp32, 95 % bootstrap CI "
                 "over episode pairs):")
    lines.append("")
    lines.append("| snapshots | pairs | fp32 eval | bf16 eval | difference [95 % CI] | identical episodes |")
    lines.append("|---|---|---|---|---|---|")
    for tp in sorted({k[0] for k in res}):
        for label, sel in (("all", steps), ("last", steps[-1:])):
            x, y = [], []
            for sd in seeds:
                for s in sel:
                    if (tp, "fp32", sd, s) in res and (tp, "bf16", sd, s) in res:
                        x += res[(tp, "fp32", sd, s)]
                        y += res[(tp, "bf16", sd, s)]
            if x:
                d = (np.asarray(y) - np.asarray(x))[:, None]
                ci = bootstrap_ci(d, lambda m: float(np.mean(m)), rng, reps=reps)
                same = int(np.sum(np.asarray(x) == np.asarray(y)))
                lines.append(f"| {tp}-trained, {label} | {len(x)} | {np.mean(x):.1f} | {np.mean(y):.1f} | "
                             f"{float(ci.point):+.1f} [{float(ci.lower):+.1f}, {float(ci.upper):+.1f}] | {same} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="results folder (reused on a rerun)")
    p.add_argument("--task", default="hopper-medium")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--eval-precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--algo-config", type=json.loads, default={"ema_warmup": "copy"},
                   help="DQLConfig overrides as JSON (default: the EMA tracks the online net before ema_start, "
                        "as the quickstart does: with CleanDiffuser's 'hold' a run of a few thousand steps is "
                        "evaluated with a nearly untrained EMA actor)")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    import torch

    torch.set_num_threads(args.threads)
    print(describe_machine())
    print(f"fidelity: DQL on {args.task}, seeds {args.seeds}, {args.steps} steps, snapshots every {args.eval_every}, "
          f"{args.episodes} episodes, train {args.train_precisions}, eval {args.eval_precisions}, {args.threads} thread(s), "
          f"algo_config {json.dumps(args.algo_config)}", flush=True)
    if not args.report_only:
        for seed in args.seeds:
            for tp in args.train_precisions:
                workdir = train_run(out, args.task, seed, tp, args.steps, args.eval_every, args.threads, args.algo_config)
                for snap in sorted(workdir.glob("step_*.pt")):
                    step = int(snap.stem.split("_")[1])
                    for ep in args.eval_precisions:
                        eval_snapshot(snap, out / "evals" / tp / f"seed{seed}" / f"step_{step:08d}_{ep}.json",
                                      seed, step, ep, args.episodes)
    text = report(out)
    (out / "report.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
