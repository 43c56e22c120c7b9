"""`mdpt tune-guidance SPEC_OR_RUN_DIR`: search inference guidance parameters over fixed snapshots.

Optuna (TPE) through Ray Tune, one study per (task, algo, train_guidance) group of a run's
training trials; see sweeps/guidance_search.py for what is searched, stored and resumed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rl_core.errors import ConfigError

FMT = argparse.ArgumentDefaultsHelpFormatter


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune-guidance", formatter_class=FMT,
        help="search inference guidance scales (SWG s, gradient λ, softmax temperature) over saved snapshots",
        description="Search inference-only guidance parameters with Optuna (TPE) through Ray Tune, without "
                    "retraining: every trial evaluates one parameter set on the final snapshot of every seed (one "
                    "study per task/algo/training-guidance group) through the evaluator pool; objective = mean "
                    "normalized score over seeds. The study persists in RUN_DIR/guidance_search/<study>.journal "
                    "(or --study-storage); re-running the same command resumes it up to --trials finished trials. "
                    "Best parameters: RUN_DIR/guidance_search/best.json.")
    p.add_argument("target", metavar="SPEC_OR_RUN_DIR",
                   help="a run directory, or a spec (file or packaged name) whose run is in ./runs/<spec name>")
    p.add_argument("--method", choices=("swg", "gradient", "softmax"), default=None,
                   help="method to search; None = swg for SWG snapshots, gradient otherwise")
    p.add_argument("--trials", type=int, default=12,
                   help="finished trials each study should hold (the grid points are evaluated first)")
    p.add_argument("--concurrency", type=int, default=2, help="trials evaluated at once")
    p.add_argument("--seed", type=int, default=0, help="TPE sampler seed")
    p.add_argument("--startup-trials", type=int, default=10, help="TPE random/grid trials before the model is used")
    p.add_argument("--scale-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help="scale range; None = swg 0-30, gradient 1e-3-100 (log), softmax 0.1-1000 (log)")
    p.add_argument("--scale-log", action=argparse.BooleanOptionalAction, default=None,
                   help="sample the scale log-uniformly; None = the method's default")
    p.add_argument("--points", type=_floats, default=None, metavar="S1,S2,...",
                   help="scales evaluated first; None = the method's grid (swg 1,5,...,30) inside the scale range")
    p.add_argument("--candidates", type=_ints, default=None, metavar="N1,N2,...",
                   help="also search n_candidates among these; None = softmax 1,10,50, others fixed")
    p.add_argument("--temperature-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help="also search the sampler's start temperature in this range")
    p.add_argument("--step", type=int, default=None, help="snapshot step; None = each trial's final snapshot")
    p.add_argument("--episodes", type=int, default=None, help="episodes per snapshot; None = the training trial's")
    p.add_argument("--max-steps", type=int, default=None, help="episode step cap; None = the training trial's")
    p.add_argument("--task", action="append", default=[], help="only this task (repeatable)")
    p.add_argument("--algo", action="append", default=[], help="only this algorithm (repeatable)")
    p.add_argument("--train-guidance", action="append", default=[], help="only this training-guidance mode (repeatable)")
    p.add_argument("--study", default=None, help="study name; None = <method>-<task>-<algo>-<train_guidance>")
    p.add_argument("--study-storage", default=None, metavar="URL",
                   help="Optuna RDB URL (e.g. postgresql://...); None = a journal file in RUN_DIR/guidance_search")
    p.add_argument("--address", default=None, help="Ray cluster: auto or HOST:PORT; default: embedded local Ray")
    p.add_argument("--evaluators", type=int, default=2, help="evaluator actors")
    p.add_argument("--evaluator-cpu", type=float, default=1.0, help="CPUs per evaluator")
    p.add_argument("--evaluator-gpu", type=float, default=0.0, help="GPUs per evaluator")
    p.set_defaults(func=cmd_tune_guidance)


def run_dir_of(target: str) -> Path:
    """A run directory as given, or ./runs/<name> of a spec."""
    path = Path(target)
    if path.is_dir():
        return path
    from sweeps.spec import load_spec, packaged_specs

    if not path.is_file() and target not in packaged_specs():
        raise ConfigError(f"{target}: no such run directory, spec file or packaged spec ({', '.join(packaged_specs())}); "
                          "pass a run directory written by `mdpt sweep`")

    run_dir = Path("runs") / load_spec(target)["name"]
    if not run_dir.is_dir():
        raise ConfigError(f"{target}: its run directory {run_dir} does not exist; run `mdpt sweep {target}` first "
                          "or pass the run directory")
    return run_dir


def search_config(args: argparse.Namespace):
    """SearchConfig from the flags; a custom space starts from the method's default space."""
    from dataclasses import replace

    from sweeps.guidance_search import DEFAULT_SPACES, ParamRange, SearchConfig

    space = None
    custom = (args.scale_range, args.scale_log, args.points, args.candidates, args.temperature_range)
    if any(v is not None for v in custom):
        if args.method is None:
            raise ConfigError("search-space flags (--scale-range, --scale-log, --points, --candidates, "
                              "--temperature-range) need --method")
        base = DEFAULT_SPACES[args.method]
        low, high = args.scale_range or (base.scale.low, base.scale.high)
        scale = ParamRange(low, high, base.scale.log if args.scale_log is None else args.scale_log)
        points = args.points if args.points is not None else tuple(p for p in base.points if low <= p <= high)
        temperature = ParamRange(*args.temperature_range) if args.temperature_range else None
        space = replace(base, scale=scale, points=points, temperature=temperature,
                        n_candidates=base.n_candidates if args.candidates is None else args.candidates)
    return SearchConfig(method=args.method, space=space, trials=args.trials, max_concurrent=args.concurrency,
                        seed=args.seed, startup_trials=args.startup_trials, step=args.step, episodes=args.episodes,
                        max_steps=args.max_steps, tasks=tuple(args.task), algos=tuple(args.algo),
                        train_guidance=tuple(args.train_guidance), study=args.study, storage=args.study_storage,
                        evaluators=args.evaluators, evaluator_cpu=args.evaluator_cpu, evaluator_gpu=args.evaluator_gpu)


def cmd_tune_guidance(args: argparse.Namespace) -> int:
    from sweeps.guidance_search import print_results, run_guidance_search

    t0 = time.perf_counter()
    cfg = search_config(args)
    run_dir = run_dir_of(args.target)
    results = run_guidance_search(run_dir, cfg, address=args.address, printer=lambda s: print(s, flush=True))
    print_results(run_dir, results)
    print(f"total wall time: {time.perf_counter() - t0:.0f} s")
    return 0 if results else 1
