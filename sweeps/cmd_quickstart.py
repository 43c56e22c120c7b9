"""`mdpt quickstart`: the default dataset, the packaged quickstart sweep on an embedded Ray, the report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from analysis.budgets import BUDGET_ALIASES, BUDGETS
from rl_core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="generate hopper-medium if needed, run the quickstart sweep (DQL joint vs GFDT), write the report",
        description="Make sure the default dataset (hopper-medium) exists (generated on first use), run the "
                    "packaged quickstart spec (DQL with joint vs pretrained-frozen guidance) on an embedded Ray, "
                    "and write the report. The default budget, laptop (2 seeds x 3,200 steps), takes at most about "
                    "15 minutes on 2 cores and its policies learn to hop; smoke is a few minutes and checks the "
                    "pipeline only; cpu (5 seeds x 8,000 steps) is about 1 1/4 hours. Re-running continues an "
                    "interrupted quickstart.")
    p.add_argument("--out", type=Path, default=Path("runs") / "quickstart", help="run directory")
    p.add_argument("--scale", choices=BUDGETS + tuple(BUDGET_ALIASES), default="laptop",
                   help="budget of the spec to use (quick: deprecated name of smoke)")
    p.add_argument("--address", default=None, help="Ray cluster: auto or HOST:PORT; default: embedded local Ray")
    p.set_defaults(func=cmd_quickstart)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from rl_core.data.gen.make import ensure_dataset
    from sweeps.cmd_sweep import finish
    from sweeps.run import read_run_dir, run_sweep
    from sweeps.spec import budget_summary, load_spec, resolve

    t0 = time.perf_counter()
    spec = resolve(load_spec("quickstart"), args.scale)
    print(budget_summary(spec), flush=True)
    resume = (args.out / "spec.yaml").exists()
    if resume:  # checked before any dataset is made
        saved = read_run_dir(args.out)
        if saved != spec:
            same = saved["name"] == spec["name"] and saved["scale"] != spec["scale"]
            raise ConfigError(f"{args.out} holds a different sweep ({saved['name']}, scale {saved['scale']}); "
                              + (f"continue it with `mdpt quickstart --scale {saved['scale']}` or " if same else "")
                              + "choose another --out")
        print(f"continuing the quickstart in {args.out}", flush=True)
    for task in spec["tasks"]:
        ds = ensure_dataset(task)
        print(f"dataset {task}: {ds.n_transitions} transitions ({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = run_sweep(spec, args.out, address=args.address, resume=resume, printer=lambda s: print(s, flush=True))
    print(score_table(Path(summary["run_dir"])))
    return finish(summary, t0)


def score_table(run_dir: Path) -> str:
    """Final-checkpoint normalized score per (task, algorithm, training guidance): mean ± std over seeds."""
    import numpy as np

    from trainables.results import read_table

    rows = [r for r in read_table(run_dir, "evals").to_pylist() if r["infer_source"] == "self"]
    last = {}
    for r in rows:
        key = (r["task"], r["algo"], r["train_guidance"])
        last[key] = max(last.get(key, 0), r["step"])
    lines = [f"{'task':<16}{'algo':<6}{'guidance':<10}{'step':>7}  final score (mean ± std over seeds)"]
    for key, step in sorted(last.items()):
        per_seed: dict[int, list[float]] = {}
        for r in rows:
            if (r["task"], r["algo"], r["train_guidance"]) == key and r["step"] == step:
                per_seed.setdefault(r["diffusion_seed"], []).append(r["normalized_score"])
        means = np.array([np.mean(v) for v in per_seed.values()])
        lines.append(f"{key[0]:<16}{key[1]:<6}{key[2]:<10}{step:>7}  {means.mean():6.1f} ± {means.std():.1f} "
                     f"({len(means)} seeds)")
    return "\n".join(lines)
