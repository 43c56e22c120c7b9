"""`mdpt pretrain-guidance`, `mdpt train`, `mdpt evaluate`: one trial at a time, in this process, no Ray.

`mdpt train --out DIR` writes the same run directory as a sweep (docs/interfaces.md "Run directory
layout"): result tables under DIR/results (eval rows for every snapshot, logged training metrics,
one trials row, the task's reference lines), snapshots under DIR/snapshots/<trial_id>/. Each snapshot is evaluated right away,
in-process, with the lockstep evaluator. `mdpt pretrain-guidance --out DIR` writes guidance
artifacts under DIR/guidance/<trial_id>/ (step_XXXXXXXX.pt every --save-every steps, final.pt).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from rl_core.config import ALGORITHMS, GUIDANCE_KINDS, INFERENCE_METHODS, PRECISIONS, TRAIN_GUIDANCE_MODES

FMT = argparse.ArgumentDefaultsHelpFormatter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain-guidance", formatter_class=FMT,
                       help="train a guidance module (critic) from a dataset alone (GFDT stage 1)",
                       description="Train a critic from the dataset alone and save guidance artifacts to "
                                   "OUT/guidance/<trial_id>/ (step_XXXXXXXX.pt every --save-every steps, and final.pt). "
                                   "kind iql: expectile V and Q to V(s'); kind td: SARSA with the dataset's next actions.")
    p.add_argument("--task", required=True, default=argparse.SUPPRESS, help="dataset: a task name (e.g. hopper-medium) or a dataset path")
    p.add_argument("--kind", choices=GUIDANCE_KINDS, default="iql", help="critic kind (td for DQL/EDP, iql for IDQL/SWG)")
    _loop_args(p, steps=5000)
    p.add_argument("--save-every", type=int, default=None, help="also save step-matched artifacts every K steps")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("train", formatter_class=FMT, help="train one diffusion policy and evaluate every snapshot (no Ray)",
                       description="Train one (task, algorithm, training-guidance mode, seed) trial, evaluating each "
                                   "snapshot in-process; writes OUT/results/{evals,train,trials} like a sweep.")
    p.add_argument("--task", required=True, default=argparse.SUPPRESS, help="dataset: a task name (e.g. hopper-medium) or a dataset path")
    p.add_argument("--algo", choices=ALGORITHMS, default="dql", help="algorithm")
    p.add_argument("--guidance", choices=TRAIN_GUIDANCE_MODES, default="joint",
                   help="training-guidance mode (rl_core/modes.py; frozen/unfrozen need --guidance-artifact)")
    p.add_argument("--guidance-artifact", default=None, help="pretrained guidance artifact (from `mdpt pretrain-guidance`)")
    _loop_args(p, steps=2000)
    p.add_argument("--eval-every", type=int, default=400, help="snapshot + evaluation interval, gradient steps")
    p.add_argument("--algo-config", default=None, help="JSON object of algorithm config overrides, e.g. '{\"eta\": 0.5}'")
    p.add_argument("--trial-id", default=None, help="trial id; None = <algo>-<guidance>-s<seed>")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="training precision (TrainConfig.precision): bf16 = bfloat16 autocast of the forward passes "
                        "(parameters, optimiser state, EMA and critic targets stay float32); None = TrainConfig's "
                        "default, fp32 (README \"Precision and speed\")")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the networks (TrainConfig.compile; not bit-identical to eager, the first step "
                        "compiles)")
    _eval_args(p, "--eval-precision")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", formatter_class=FMT, help="evaluate a saved snapshot, optionally with another critic",
                       description="Roll out a snapshot in its dataset's environment; --guidance-artifact plugs in "
                                   "another critic (double guidance, cross-algorithm guidance).")
    p.add_argument("snapshot", help="snapshot file (OUT/snapshots/<trial_id>/step_XXXXXXXX.pt)")
    p.add_argument("--guidance-artifact", default=None, help="guidance artifact to use instead of the snapshot's own critic")
    p.add_argument("--seed", type=int, default=0, help="episode i uses env seed SEED + i")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads; None = torch's choice")
    _eval_args(p, "--precision")
    p.set_defaults(func=cmd_evaluate)


def _loop_args(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--steps", type=int, default=steps, help="gradient steps")
    p.add_argument("--batch-size", type=int, default=256, help="minibatch size")
    p.add_argument("--log-every", type=int, default=100, help="metric logging interval")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads; None = torch's choice")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS, help="run directory")


def _eval_args(p: argparse.ArgumentParser, precision_flag: str) -> None:
    """The evaluation flags; ``precision_flag`` names InferenceConfig.precision's flag (``--eval-precision`` for
    `mdpt train`, whose ``--precision`` is the training precision; ``--precision`` for `mdpt evaluate`)."""
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per snapshot")
    p.add_argument("--method", choices=INFERENCE_METHODS, default=None,
                   help="inference guidance; None = the algorithm's default (InferenceConfig.for_algorithm), or none "
                        "when there is no critic")
    p.add_argument("--scale", type=float, default=None, help="inference scale: softmax inverse temperature (None = 100), "
                   "gradient lambda (None = 1), SWG s (None = 1, exact guidance); unused by none / argmax")
    p.add_argument("--candidates", type=int, default=None, help="candidate actions per state; None = the algorithm config's n_candidates")
    p.add_argument("--max-steps", type=int, default=1000, help="episode step cap")
    p.add_argument(precision_flag, dest="inference_precision", choices=PRECISIONS, default=None,
                   help="evaluation precision (InferenceConfig.precision): bf16 = bfloat16 autocast of the denoiser "
                        "while sampling candidates (the critic scores them in float32); None = InferenceConfig's "
                        "default, fp32")


def _inference(args: argparse.Namespace, algo_cfg: Any, has_guidance: bool) -> Any:
    """InferenceConfig: the algorithm config's defaults (InferenceConfig.for_algorithm) with the CLI flags on top;
    without a critic and without --method, rl_core.modes.without_critic (the same rule as a sweep's trials)."""
    from rl_core.inference import InferenceConfig
    from rl_core.modes import without_critic

    kw: dict[str, Any] = {}
    if args.method:
        kw["method"] = args.method
    if args.scale is not None:
        kw["scale"] = args.scale
    if args.candidates:
        kw["n_candidates"] = args.candidates
    if args.inference_precision:
        kw["precision"] = args.inference_precision
    inference = InferenceConfig.for_algorithm(algo_cfg, **kw)
    if not has_guidance and not args.method:
        inference = InferenceConfig.from_dict(without_critic(inference.to_dict()))
    return inference


def _print_scores(rows: list[dict], prefix: str = "") -> float:
    """Print mean ± std of the episodes' normalized scores (eval rows), return and length; returns the mean."""
    import numpy as np

    scores = np.array([r["normalized_score"] for r in rows])
    print(f"{prefix}normalized score {scores.mean():.1f} ± {scores.std():.1f} over {len(scores)} episodes "
          f"(return {np.mean([r['return'] for r in rows]):.1f}, length {np.mean([r['length'] for r in rows]):.0f})",
          flush=True)
    return float(scores.mean())


def _write_run_json(out: Path, name: str) -> None:
    path = out / "run.json"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"sweep": name, "scale": None, "comparisons": [], "created": time.time()}, indent=2))


def _progress(m: dict[str, float], total: int, extra: str = "") -> None:
    losses = " ".join(f"{k} {v:.4g}" for k, v in m.items() if k.startswith("loss/"))
    print(f"step {int(m['step'])}/{total} | {losses} | {m['time/steps_per_s']:.1f} steps/s{extra}", flush=True)


class _TrainRows:
    """Buffers logged metrics as long-format `train` rows; written at each snapshot and at the end."""

    def __init__(self, store: Any, ident: dict) -> None:
        self.store, self.ident, self.rows = store, ident, []

    def add(self, m: dict[str, float]) -> None:
        from trainables.results import train_rows

        self.rows += train_rows(self.ident, m)

    def flush(self) -> None:
        self.store.write_train(self.rows)
        self.rows = []


def _run_trial(out: Path, ident: dict, stage: str, config: dict, body: Any) -> int:
    """Record the trial as RUNNING, run ``body()``, then TERMINATED (or ERROR with the reason, re-raised)."""
    from trainables.results import ResultStore, trial_row

    store = ResultStore(out)
    _write_run_json(out, out.name)
    store.write_trial(trial_row(ident, stage=stage, config=config, status="RUNNING"))
    try:
        body(store)
    except BaseException as exc:
        store.write_trial(trial_row(ident, stage=stage, config=config, status="ERROR",
                                    failure_reason=f"{type(exc).__name__}: {exc}"))
        raise
    store.write_trial(trial_row(ident, stage=stage, config=config, status="TERMINATED"))
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from rl_core.data.io import load_dataset
    from rl_core.train import PretrainConfig, run_pretraining
    from trainables.trial import Runtime, TrialIdentity, TrialSpec

    ds = load_dataset(args.task)
    cfg = PretrainConfig(task=args.task, kind=args.kind, seed=args.seed, steps=args.steps, batch_size=args.batch_size,
                         save_every=args.save_every, log_every=args.log_every, device=args.device, threads=args.threads)
    trial_id, task = f"guidance-{args.kind}-s{args.seed}", ds.task or args.task
    workdir = args.out / "guidance" / trial_id
    spec = TrialSpec(stage="pretrain", pretrain=cfg, runtime=Runtime(sweep=args.out.name, run_dir=str(args.out)),
                     identity=TrialIdentity(task=task, algo="pretrain", train_guidance=f"pretrain:{args.kind}",
                                            seed=args.seed, guidance_seed=args.seed))
    ident = _ident(spec, trial_id)

    def body(store: Any) -> None:
        rows = _TrainRows(store, ident)

        def report(m: dict[str, float]) -> None:
            rows.add(m)
            _progress(m, cfg.steps)

        final = run_pretraining(cfg, ds, workdir=workdir, report=report,
                                on_artifact=lambda step, path: print(f"saved guidance artifact {path}", flush=True))
        rows.flush()
        print(f"final guidance artifact: {final}")

    return _run_trial(args.out, ident, "pretrain", spec.to_dict(), body)


def _ident(spec: Any, trial_id: str) -> dict:
    i = spec.identity
    return {"sweep": spec.runtime.sweep, "trial_id": trial_id, "task": i.task, "algo": i.algo,
            "train_guidance": i.train_guidance, "seed": i.seed}


def train_config(args: argparse.Namespace) -> Any:
    """The TrainConfig of `mdpt train`'s flags; ``--precision`` / ``--compile`` when given, else TrainConfig's
    defaults."""
    from rl_core.train import TrainConfig

    algo_config = _json_object("--algo-config", args.algo_config)
    given = {"precision": args.precision, "compile": args.compile or None}
    return TrainConfig(task=args.task, algo=args.algo, algo_config=algo_config, train_guidance=args.guidance,
                       guidance_artifact=args.guidance_artifact, seed=args.seed, steps=args.steps,
                       batch_size=args.batch_size, eval_every=args.eval_every, log_every=args.log_every,
                       device=args.device, threads=args.threads, **{k: v for k, v in given.items() if v is not None})


def cmd_train(args: argparse.Namespace) -> int:
    from rl_core.algos import get_algorithm
    from rl_core.data.io import load_dataset
    from rl_core.modes import get_mode
    from rl_core.train import run_training
    from trainables.evaluator import run_request
    from trainables.ledger import self_eval_request
    from trainables.results import record_references
    from trainables.trial import EvalSpec, Runtime, TrialIdentity, TrialSpec

    cfg = train_config(args)  # bad flags before the (slow) dataset load
    ds = load_dataset(args.task)
    mode = get_mode(args.guidance)
    algo_cfg = get_algorithm(args.algo).Config.from_dict(cfg.algo_config)
    inference = _inference(args, algo_cfg, has_guidance=mode.has_critic)
    trial_id = args.trial_id or f"{args.algo}-{args.guidance}-s{args.seed}"
    artifact_seed = _artifact_seed(cfg.guidance_artifact)
    spec = TrialSpec(stage="train", train=cfg, runtime=Runtime(sweep=args.out.name, run_dir=str(args.out)),
                     eval=EvalSpec(inference=inference.to_dict(), episodes=args.episodes, max_steps=args.max_steps),
                     identity=TrialIdentity(task=ds.task or args.task, algo=args.algo, train_guidance=args.guidance,
                                            seed=args.seed, guidance_seed=mode.guidance_seed(args.seed, artifact_seed)))
    ident = _ident(spec, trial_id)
    print(f"trial {trial_id}: {args.algo} on {args.task} ({ds.n_transitions} transitions), guidance {args.guidance}, "
          f"training precision {cfg.precision}{' (compiled)' if cfg.compile else ''}, inference {inference.method} "
          f"in {inference.precision}; writing to {args.out}", flush=True)

    def body(store: Any) -> None:
        import pyarrow.parquet as pq

        rows, latest = _TrainRows(store, ident), {"score": math.nan}

        def report(m: dict[str, float]) -> None:
            rows.add(m)
            _progress(m, cfg.steps, f" | latest score {latest['score']:.1f}")

        def on_snapshot(step: int, path: Path) -> None:
            file, _ = run_request(self_eval_request(spec, trial_id, step, path, args.out), args.device)
            rows.flush()
            latest["score"] = _print_scores(pq.read_table(file).to_pylist(), f"eval @ step {step}: ")

        record_references(args.out, spec.identity.task, ds, args.max_steps)
        run_training(cfg, ds, workdir=args.out / "snapshots" / trial_id, report=report, on_snapshot=on_snapshot)
        rows.flush()

    return _run_trial(args.out, ident, "train", spec.to_dict(), body)


def _json_object(flag: str, text: str | None) -> dict:
    from rl_core.errors import ConfigError

    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError as e:
        raise ConfigError(f"{flag} is not valid JSON ({e}); give an object such as '{{\"eta\": 0.5}}'") from e
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def _artifact_seed(artifact: str | None) -> int | None:
    """The seed recorded in a pretrained guidance artifact (None without one)."""
    if artifact is None:
        return None
    from rl_core.guidance import load_artifact

    return int(load_artifact(artifact)[1]["seed"])


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from rl_core.algos import get_algorithm
    from rl_core.evaluation import EvalJob, run_eval_job
    from rl_core.snapshot import load_snapshot

    if args.threads:
        torch.set_num_threads(args.threads)
    snap = load_snapshot(args.snapshot)
    has_guidance = snap.guidance is not None or args.guidance_artifact is not None
    algo_cfg = get_algorithm(snap.algo).Config.from_dict(snap.algo_config)
    inference = _inference(args, algo_cfg, has_guidance)
    job = EvalJob(snapshot=str(args.snapshot), inference=inference.to_dict(), episodes=args.episodes,
                  eval_seed=args.seed, max_steps=args.max_steps, guidance=args.guidance_artifact)
    results = run_eval_job(job)
    for r in results:
        print(f"episode {r.episode} (env seed {r.eval_seed}): return {r.ret:.1f}, normalized score "
              f"{r.normalized_score:.1f}, length {r.length}")
    source = args.guidance_artifact or "own critic"
    _print_scores([{"return": r.ret, "normalized_score": r.normalized_score, "length": r.length} for r in results],
                  f"{snap.algo} step {snap.step}, {inference.method} ({source}, {inference.precision}): ")
    return 0
