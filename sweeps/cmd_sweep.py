"""`mdpt sweep SPEC` (run a sweep on Ray) and `mdpt status RUN_DIR [--watch]` (where a run stands)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from analysis.budgets import BUDGET_ALIASES, BUDGETS
from rl_core.errors import ConfigError

FMT = argparse.ArgumentDefaultsHelpFormatter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", formatter_class=FMT, help="run an experiment spec on Ray (pretrain, train, recombine, report)",
        description="Validate SPEC (a YAML file or a packaged spec name: quickstart, gfdt, double_guidance, "
                    "cross_algorithm, swg), then run its stages on Ray: guidance pretraining, diffusion training "
                    "with every checkpoint evaluated by the evaluator pool, recombination, and the report. Without "
                    "--address an embedded single-machine Ray is started. Budgets (--scale): smoke = minutes, checks "
                    "the pipeline (policies not trained, statistics not evidence); cpu = one task, 5 seeds, trained "
                    "policies on 2 cores in about 1 to 2 1/4 hours (each packaged spec's header gives its estimate); "
                    "paper = the papers' budgets, for a GPU cluster. "
                    "The sweep prints which budget it runs and what it can show before it starts.")
    p.add_argument("spec", nargs="?", help="spec file or packaged spec name (not needed with --resume)")
    p.add_argument("--scale", choices=BUDGETS + tuple(BUDGET_ALIASES), default="smoke",
                   help="budget of the spec to use (quick: deprecated name of smoke)")
    p.add_argument("--address", default=None, help="Ray cluster: auto or HOST:PORT; default: embedded local Ray")
    p.add_argument("--out", type=Path, default=None, help="run directory; default ./runs/<spec name>")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue an interrupted sweep in RUN_DIR (spec and scale are read from it)")
    p.add_argument("--reuse", type=Path, default=None, metavar="RUN_DIR",
                   help="take the finished trials of another sweep's RUN_DIR whose identity and training config "
                        "match (snapshots, artifacts, logs, matching own evaluations) instead of training them")
    p.add_argument("--no-report", action="store_true", help="skip the report stage")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="overrides",
                   help="override a spec field (VALUE is YAML), validated like the file; repeatable, e.g. "
                        "--set seeds=[0,1,2,3,4] --set tasks=[hopper-medium] --set budgets.smoke.steps=800")
    p.add_argument("--dry-run", action="store_true",
                   help="validate and print the expanded stages and every trial's resolved config; start nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: one JSON object per line")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("status", formatter_class=FMT,
                       help="trials done / running / failed and latest scores of a run directory")
    p.add_argument("run_dir", type=Path, help="run directory written by `mdpt sweep`")
    p.add_argument("--watch", action="store_true", help="refresh the status every --interval seconds until Ctrl-C")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes with --watch")
    p.set_defaults(func=cmd_status)


def cmd_sweep(args: argparse.Namespace) -> int:
    from sweeps.spec import budget_summary, load_spec, resolve

    t0 = time.perf_counter()
    if args.resume and args.reuse:  # before a dry run or a spec is read
        from sweeps.reuse import refuse_with_resume
        refuse_with_resume(args.resume, args.reuse)
    if args.dry_run:
        if not args.spec:
            raise ConfigError("--dry-run needs a SPEC (file or packaged name)")
        spec = resolve(load_spec(args.spec, args.overrides), args.scale, args.overrides)
        if args.json:  # stdout stays one JSON object per line
            print(budget_summary(spec), file=sys.stderr, flush=True)
        print(dry_run_text(spec, as_json=args.json))
        if args.reuse:
            from sweeps.reuse import check_source, plan_text

            source = check_source(args.reuse, args.out or Path("runs") / spec["name"])
            print("\n".join(plan_text(spec, source)), file=sys.stderr if args.json else sys.stdout)
        return 0
    if args.resume and args.overrides:
        raise ConfigError("--set cannot change a sweep being resumed (its spec is read from RUN_DIR/spec.yaml)")
    from sweeps.run import read_run_dir, run_sweep

    if args.resume:
        run_dir, resume = args.resume, True
        spec = read_run_dir(run_dir)
        print(f"resuming sweep {spec['name']!r} ({spec['scale']}) in {run_dir}", flush=True)
        print(budget_summary(spec), flush=True)
    elif args.spec:
        spec = resolve(load_spec(args.spec, args.overrides), args.scale, args.overrides)
        run_dir, resume = args.out or Path("runs") / spec["name"], False
        if (run_dir / "spec.yaml").exists():
            raise ConfigError(f"{run_dir} already holds a sweep; continue it with `mdpt sweep --resume {run_dir}` "
                              "or choose another --out")
        # run_sweep checks the machine's resources, then makes and loads the datasets, before it writes the run
        # directory: a spec this machine cannot run fails before any data is made, and a refused run starts afresh
        print(budget_summary(spec), flush=True)
    else:
        raise ConfigError("give a SPEC (file or packaged name) or --resume RUN_DIR")
    return finish(run_sweep(spec, run_dir, address=args.address, resume=resume, report=not args.no_report,
                            printer=lambda s: print(s, flush=True), reuse=args.reuse), t0)


def dry_run_text(spec: dict, as_json: bool = False) -> str:
    """The expanded stages of a resolved spec and every trial's resolved config (``--dry-run``); the text form
    opens with the sweep's size and `sweeps.spec.budget_summary` (what the budget can show)."""
    from sweeps.expand import expand
    from sweeps.spec import budget_summary

    lines = []
    for stage in expand(spec):
        if as_json:
            for item in stage.items:
                body = item.to_dict() if hasattr(item, "to_dict") else item
                lines.append(json.dumps({"stage": stage.name, "item": body}, sort_keys=True))
            continue
        lines.append(f"stage {stage.name}: {len(stage.items)} item(s)")
        for item in stage.items:
            if hasattr(item, "to_dict"):
                cfg = item.config.to_dict()
                ev = f" | eval {json.dumps(item.eval.to_dict(), sort_keys=True)}" if item.eval else ""
                lines.append(f"  {item.label}: {json.dumps(cfg, sort_keys=True)}{ev}")
            else:
                lines.append(f"  {json.dumps(item, sort_keys=True)}")
    if not as_json:
        b = spec["budget"]
        lines.insert(0, f"sweep {spec['name']!r}, scale {spec['scale']}: {len(spec['tasks'])} task(s), "
                        f"{len(spec['algorithms'])} algorithm(s), modes {spec['train_guidance']}, seeds {spec['seeds']}; "
                        f"budget {json.dumps(b, sort_keys=True)}")
        lines.insert(1, budget_summary(spec))
    return "\n".join(lines)


def finish(summary: dict, t0: float | None) -> int:
    """Print where the results and the report are, the time breakdown and the evaluation ledger; exit status 1
    if trials failed or evaluations are missing."""
    print(f"results: {summary['results']}")
    if "report" in summary:
        print(f"report:  {summary['report']}")
    failed = 0
    for name, s in summary["stages"].items():
        if "trials" in s:
            failed += s["errors"]
            print(f"stage {name}: {s['trials']} trials" + (f" (+ {s['reused']} reused)" if s.get("reused") else "")
                  + f", {s['errors']} failed, {s['wall_s']:.0f} s wall; "
                  f"trials ran {s['trial_s']:.0f} s, of which {s['eval_wait_s']:.0f} s waiting on evaluations")
        elif "jobs" in s:
            print(f"stage {name}: {s['jobs']} evaluation jobs, {s['failed']} failed, {s['wall_s']:.0f} s wall")
    ev = summary.get("evaluators", {})
    if ev:
        print(f"evaluators: {ev['jobs']} jobs ({ev['skipped']} already done), busy {ev['busy_s']:.0f} s, "
              f"{ev['replaced']} replaced" + (f", {ev['lost_with_node']} lost with their node" if ev.get("lost_with_node")
                                            else "")
              + (f", {ev['fallback']} run by the coordinator (no evaluator could start)" if ev.get("fallback") else ""))
    ledger = summary.get("ledger")
    if ledger is not None:
        lost = ledger["missing"]
        print(f"ledger: {len(lost)} snapshots without rows ({ledger['snapshots']} snapshots of training trials, "
              f"{ledger['evaluations']} evaluations expected{', all written' if not lost else ''})")
        for m in lost:
            print(f"  missing: trial {m['trial_id']} step {m['step']} [{m['infer_source']}] ({m['snapshot']}): "
                  f"{m['reason']}")
        failed += len(lost)
    if t0 is not None:
        print(f"total wall time: {time.perf_counter() - t0:.0f} s")
    print(f"status: mdpt status {summary['run_dir']}")
    return 1 if failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    if not args.watch:
        print(status_text(args.run_dir))
        return 0
    if not args.interval > 0:
        raise ConfigError(f"--interval {args.interval:g}: must be a positive number of seconds")
    try:
        watch_status(args.run_dir, args.interval)
    except KeyboardInterrupt:  # the way out of --watch
        pass
    return 0


def watch_status(run_dir: Path, interval: float, rounds: int | None = None, out=None, sleep=time.sleep) -> None:
    """Print ``status_text`` every ``interval`` seconds (``rounds`` times; None = until interrupted), each time
    after clearing the terminal when ``out`` (default: stdout) is one."""
    import sys

    out = out or sys.stdout
    clear = "\033[H\033[J" if out.isatty() else ""
    n = 0
    while rounds is None or n < rounds:
        if n:
            sleep(interval)
        text = status_text(run_dir)
        out.write(f"{clear}{text}\n[{time.strftime('%H:%M:%S')}] refreshing every {interval:g} s; Ctrl-C to stop\n")
        out.flush()
        n += 1


def status_text(run_dir: Path) -> str:
    """A plain-text summary of a run directory: trials per stage and status, failures, latest scores, and the
    evaluation ledger: snapshots without rows, outstanding (their trial still runs: queued or being
    evaluated) or missing (``mdpt sweep --resume RUN_DIR`` evaluates them), and recombination jobs."""
    from trainables.results import read_table

    if not (run_dir / "run.json").exists():
        raise ConfigError(f"{run_dir} has no run.json; is it a run directory written by `mdpt sweep`?")
    run = json.loads((run_dir / "run.json").read_text())
    trials = read_table(run_dir, "trials").to_pylist()
    evals = read_table(run_dir, "evals").to_pylist()
    lines = [f"run {run_dir}: sweep {run['sweep']!r}, scale {run['scale']}"]
    for stage in ("pretrain", "train"):
        rows = [t for t in trials if t["stage"] == stage]
        if rows:
            counts = {s: sum(t["status"] == s for t in rows) for s in sorted({t["status"] for t in rows})}
            lines.append(f"{stage}: {len(rows)} trials: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for t in trials:
        if t["status"] == "ERROR" or t["num_failures"]:
            lines.append(f"  {t['trial_id']} {t['algo']}/{t['train_guidance']} s{t['seed']}: {t['status']}, "
                         f"{t['num_failures']} failure(s), restored from step {t['restored_from']}: {t['failure_reason']}")
    latest: dict[tuple, tuple[int, list[float]]] = {}
    for r in evals:
        key = (r["task"], r["algo"], r["train_guidance"], r["infer_source"], r["diffusion_seed"])
        step, scores = latest.get(key, (-1, []))
        if r["step"] > step:
            latest[key] = (r["step"], [r["normalized_score"]])
        elif r["step"] == step:
            scores.append(r["normalized_score"])
    lines.append(f"evals: {len(evals)} episode rows")
    for (task, algo, mode, source, seed), (step, scores) in sorted(latest.items()):
        lines.append(f"  {task} {algo}/{mode} [{source}] seed {seed}: step {step}, "
                     f"score {sum(scores) / len(scores):.1f} over {len(scores)} episodes")
    lines += ledger_lines(run_dir)
    if (run_dir / "tensorboard").is_dir():
        lines.append(f"live curves: tensorboard --logdir {run_dir / 'tensorboard'}")
    report = run_dir / "report" / "report.md"
    lines.append(f"report: {report}" if report.exists() else "report: not yet written (mdpt report RUN_DIR)")
    return "\n".join(lines)


def ledger_lines(run_dir: Path) -> list[str]:
    """The evaluation ledger of ``status_text`` (trainables/ledger.py): snapshots of training trials without rows
    and recombination jobs without rows."""
    import yaml

    from sweeps.spec import validate_spec
    from trainables.ledger import missing, self_eval_ledger

    entries = self_eval_ledger(run_dir)
    without = [e for e in entries if not e.done]
    outstanding = [e for e in without if e.status in ("RUNNING", "PENDING")]
    lost = [e for e in without if e.status not in ("RUNNING", "PENDING")]
    lines = [f"ledger: {len(entries)} snapshots of training trials, {len(without)} without rows: "
             f"{len(outstanding)} outstanding (trial running: queued or being evaluated), {len(lost)} missing"]
    lines += [f"  outstanding: trial {e.trial_id} step {e.step}" for e in outstanding]
    lines += [f"  missing: trial {e.trial_id} step {e.step} (trial {e.status}): `mdpt sweep --resume {run_dir}` "
              "evaluates it" for e in lost]
    spec_file = run_dir / "spec.yaml"
    spec = validate_spec(yaml.safe_load(spec_file.read_text())) if spec_file.exists() else {}
    if spec.get("recombination"):
        from sweeps.run import recombination_jobs
        from sweeps.expand import expand

        items = next(s.items for s in expand(spec) if s.name == "recombine")
        jobs = recombination_jobs(spec, items, run_dir, lambda s: None)
        todo = missing(jobs)
        lines.append(f"recombination: {len(jobs)} jobs of finished trials, {len(todo)} without rows")
    return lines
