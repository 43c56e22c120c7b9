"""SWG exact-guidance check on 2-D toy tasks (CEP / SWG toys): distances to the exact target.

For each task and beta, fit a small SWG model on (x, w_beta(x)) and print the squared energy
distance (swg_toy.py, eq. 2) to the exact target pi ∝ w_beta mu of SWG samples at s = 1 (guided)
and s = 0 (unguided), beside the noise floor (D^2 between two independent target samples of the
same size: mean and 95th percentile) and the model-fit reference D^2(s = 0 samples, behaviour). Saves a PNG: behaviour | target | s = 0 | s = 1 per row.

    .venv/bin/python benchmarks/bench_swg_toy.py                      # defaults below
    .venv/bin/python benchmarks/bench_swg_toy.py --steps 500 --betas 2  # a quick look
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from swg_toy import TOY_TASKS, ToyConfig, ToyResult, run_toy  # benchmarks/swg_toy.py, beside this script


def plot(rows: list[tuple[str, float, ToyResult]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 3 * len(rows)), squeeze=False)
    for ax_row, (task, beta, r) in zip(axes, rows):
        panels = [("behaviour mu", r.behaviour), ("exact target", r.target),
                  (f"SWG s=0  D²={r.d_unguided:.3f}", r.unguided), (f"SWG s=1  D²={r.d_guided:.3f}", r.guided)]
        for ax, (title, pts) in zip(ax_row, panels):
            ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
            ax.set(xlim=(-6, 6), ylim=(-6, 6), aspect="equal", xticks=[], yticks=[])
            ax.set_title(f"{task} β={beta:g}: {title}" if ax is ax_row[0] else title, fontsize=9)
    fig.suptitle("SWG self-guidance vs exact target (noise floor q95 per row in the table)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TOY_TASKS), choices=TOY_TASKS)
    p.add_argument("--betas", nargs="+", type=float, default=[1.0, 2.0, 4.0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--n-eval", type=int, default=1000)
    p.add_argument("--n-boot", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("swg_toy.png"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base = ToyConfig(steps=args.steps, hidden=args.hidden, n_eval=args.n_eval, n_boot=args.n_boot, seed=args.seed)
    print(f"config: {base.to_dict()}")
    print(f"{'task':<11} {'beta':>5} {'D2 s=1':>9} {'D2 s=0':>9} {'floor':>8} {'floor95':>8} {'s=1 in floor':>12} {'fit s=0~mu':>10} {'s':>6}")
    rows = []
    for task in args.tasks:
        for beta in args.betas:
            t0 = time.perf_counter()
            r = run_toy(replace(base, task=task, beta=beta))
            rows.append((task, beta, r))
            print(f"{task:<11} {beta:>5g} {r.d_guided:>9.4f} {r.d_unguided:>9.4f} {r.floor_mean:>8.4f} "
                  f"{r.floor_q95:>8.4f} {str(r.d_guided <= r.floor_q95):>12} {r.d_fit:>10.4f} {time.perf_counter() - t0:>6.0f}", flush=True)
    plot(rows, args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
