"""Run a sweep on Ray: the driver side of `mdpt sweep` (stage orchestration).

Stages, in order (``sweeps.expand.expand``): guidance pretraining (Tune, ``pretrain_guidance``) ->
diffusion training (Tune, ``train_policy``; frozen / unfrozen trials get the pretrained artifact of
their seed) -> recombination (saved snapshots x other guidance, through the evaluator pool, no
retraining) -> report (``analysis.report.build_report``). Each Tune stage is its own experiment
under ``RUN_DIR/tune/<stage>``; a resumed driver restores an interrupted stage with
``Tuner.restore`` (finished trials are kept, the others continue from their last checkpoint) after
recreating the evaluator pool.

Exactly-once evaluation (the ledger is the disk, ``trainables/ledger.py``): evaluation rows are
idempotent on their key, so whatever a dead process took with it is found again as a snapshot (or
recombination job) without rows and resubmitted. The driver reconciles (1) when it starts: the
snapshots of finished training trials without rows are resubmitted in the background (the jobs a
dead driver's pool took with it); restored trials resubmit their own; (2) when the training stage
ends: every training trial's snapshots without rows, waited for; (3) in the recombination stage: only
the jobs without rows are submitted. The summary's ``ledger`` entry counts the evaluations the run
directory should hold and names each one still without rows and why (``ledger_summary``).

With ``reuse`` (``mdpt sweep --reuse RUN_DIR``), the matching finished trials of another run are imported
before the stages (``sweeps/reuse.py``) and the Tune stages run only the others (none: no experiment); the
reconcile steps evaluate the imported snapshots that lack rows, and recombination uses them like its own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import tune

from rl_core.errors import ConfigError
from rl_core.evaluation import EvalJob, eval_seed_for
from sweeps.expand import Stage, expand
from sweeps.reuse import check_source, finish_import, import_trials, refuse_with_resume, reused_identities
from sweeps.spec import dump_spec, infer_source, validate_spec
from trainables.callbacks import TrialsTableCallback, live_tensorboard
from trainables.evaluator import EvalClient, coordinator_name, eval_request, rows_path, start_pool
from trainables.ledger import missing, missing_self_evals, self_eval_ledger, snapshot_files
from trainables.results import EvalLabels, ResultStore
from trainables.train import pretrain_guidance, train_policy
from trainables.trial import Runtime, TrialSpec

NAMESPACE = "mdpt"
Printer = Callable[[str], None]


# ----- run directory ---------------------------------------------------------------------------
def write_run_dir(spec: dict, run_dir: Path, datasets: dict[str, dict] | None = None) -> None:
    """RUN_DIR/spec.yaml (resolved spec) and RUN_DIR/run.json (docs/interfaces.md); ``datasets``: task ->
    {"fingerprint", "transitions"} of the data the run trains on (`check_datasets`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "spec.yaml").write_text(dump_spec(spec))
    record = {"sweep": spec["name"], "scale": spec["scale"], "comparisons": spec["report"]["comparisons"],
              "created": time.time()}
    if datasets is not None:
        record["datasets"] = datasets
    (run_dir / "run.json").write_text(json.dumps(record, indent=2))


def read_run_dir(run_dir: Path) -> dict:
    """The resolved spec of an existing run directory (for --resume)."""
    import yaml

    path = run_dir / "spec.yaml"
    if not path.exists():
        raise ConfigError(f"--resume {run_dir}: no spec.yaml there; is it a directory written by `mdpt sweep`?")
    return validate_spec(yaml.safe_load(path.read_text()))


def init_ray(address: str | None) -> None:
    """Connect to ``address`` (``auto`` or HOST:PORT), or start an embedded local Ray."""
    if ray.is_initialized():
        return
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private single-machine cluster
        ray.init(address="local", namespace=NAMESPACE, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    else:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)


def check_local_resources(spec: dict, cpus: float | None = None, gpus: float | None = None) -> None:
    """Fail before any work when an embedded local Ray could never schedule the spec: the evaluator pool
    plus one trial must fit this machine (Ray would otherwise wait forever). Clusters (``--address``) are
    not checked: an autoscaler may add the nodes."""
    if cpus is None or gpus is None:
        import torch

        cpus = float(os.cpu_count() or 1) if cpus is None else cpus
        gpus = float(torch.cuda.device_count()) if gpus is None else gpus
    res = spec["resources"]
    t, ev = res["trial"], res["evaluators"]
    need_cpu, need_gpu = t["cpu"] + ev["count"] * ev["cpu"], t["gpu"] + ev["count"] * ev["gpu"]
    if need_cpu > cpus or need_gpu > gpus:
        raise ConfigError(
            f"spec field `resources`: one trial ({t['cpu']:g} CPU, {t['gpu']:g} GPU) beside the evaluator pool "
            f"({ev['count']} x {ev['cpu']:g} CPU, {ev['gpu']:g} GPU) needs {need_cpu:g} CPUs and {need_gpu:g} GPUs; "
            f"this machine has {cpus:g} and {gpus:g}. Run on a cluster (--address) or lower them, e.g. "
            "--set 'resources={trial: {cpu: 0.75, gpu: 0}, evaluators: {count: 2, cpu: 0.25, gpu: 0}}'")


# ----- trial configs ---------------------------------------------------------------------------
def runtime(spec: dict, run_dir: Path, data_root: str | None) -> Runtime:
    """Where the sweep's trials run (``TrialSpec.runtime``)."""
    res = spec["resources"]["trial"]
    return Runtime(sweep=spec["name"], run_dir=str(run_dir), data_root=data_root,
                   coordinator=coordinator_name(run_dir), threads=max(1, int(res["cpu"])), gpu=res["gpu"])


def _trial_dirname(trial) -> str:
    return trial.trial_id


# ----- progress ---------------------------------------------------------------------------------
class Progress(tune.Callback):
    """Prints trials done / running / failed and the latest eval scores when they change (at most every
    ``every_s`` seconds, and at every trial completion or failure)."""

    def __init__(self, stage: str, printer: Printer = print, every_s: float = 20.0) -> None:
        self.stage, self.printer, self.every_s = stage, printer, every_s
        self.latest: dict[str, str] = {}
        self.last_print, self.last_text = 0.0, ""

    def _label(self, trial) -> str:
        return TrialSpec.from_dict(trial.config["trial"]).label

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        score = result.get("eval/score_mean")
        text = f"step {int(result['step'])}" + (f" score {score:.1f}" if isinstance(score, float) and score == score
                                                else "")
        self.latest[self._label(trial)] = text

    def on_step_end(self, iteration, trials, **info) -> None:
        if time.time() - self.last_print >= self.every_s:
            self.print_status(trials)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.print_status(trials)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.printer(f"[{self.stage}] trial {trial.trial_id} ({self._label(trial)}) failed")
        self.print_status(trials)

    def print_status(self, trials) -> None:
        counts = {s: sum(t.status == s for t in trials) for s in ("TERMINATED", "RUNNING", "ERROR", "PENDING")}
        latest = "; ".join(f"{k}: {v}" for k, v in sorted(self.latest.items())[-4:])
        text = (f"[{self.stage}] {counts['TERMINATED']}/{len(trials)} done, {counts['RUNNING']} running, "
                f"{counts['ERROR']} failed, {counts['PENDING']} pending" + (f" | {latest}" if latest else ""))
        if text != self.last_text:
            self.printer(text)
        self.last_print, self.last_text = time.time(), text


# ----- stages -----------------------------------------------------------------------------------
def run_tune_stage(stage: str, trainable, trials: list[TrialSpec], spec: dict, run_dir: Path, printer: Printer) -> tune.ResultGrid:
    """Run (or restore and finish) one Tune experiment: a grid over the stage's trials."""
    res = spec["resources"]
    wrapped = tune.with_resources(trainable, {"cpu": res["trial"]["cpu"], "gpu": res["trial"]["gpu"]})
    exp = run_dir / "tune" / stage
    if tune.Tuner.can_restore(str(exp)):
        printer(f"[{stage}] restoring {exp}")
        tuner = tune.Tuner.restore(str(exp), wrapped, resume_errored=True)
    else:
        tuner = tune.Tuner(
            wrapped,
            param_space={"trial": tune.grid_search([t.to_dict() for t in trials])},
            tune_config=tune.TuneConfig(max_concurrent_trials=res["max_concurrent_trials"],
                                        trial_dirname_creator=_trial_dirname),
            run_config=tune.RunConfig(
                name=stage, storage_path=str(run_dir / "tune"), verbose=0,
                failure_config=tune.FailureConfig(max_failures=spec["max_failures"]),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                callbacks=[TrialsTableCallback(str(run_dir)), Progress(stage, printer),
                           *live_tensorboard(run_dir, stage)]))
    printer(f"[{stage}] {len(trials)} trial(s)")
    return tuner.fit()


def _terminated(run_dir: Path, stage: str) -> list[dict]:
    """Trials rows of ``stage`` that finished (TERMINATED), with their TrialSpec parsed (``spec``)."""
    rows = ResultStore(run_dir).read("trials").to_pylist()
    return [dict(r, spec=TrialSpec.from_dict(json.loads(r["config_json"]))) for r in rows
            if r["stage"] == stage and r["status"] == "TERMINATED"]


def pretrained_artifacts(run_dir: Path) -> dict[tuple[str, str, int], Path]:
    """(task, pretraining name, seed) -> RUN_DIR/guidance/<trial_id> of finished pretraining trials."""
    out = {}
    for r in _terminated(run_dir, "pretrain"):
        name = r["train_guidance"].split(":", 1)[1]
        out[(r["task"], name, r["seed"])] = run_dir / "guidance" / r["trial_id"]
    return out


def _pick(files: dict[int, Path], step: int, match: str) -> tuple[int, Path]:
    """The final file, or the step-matched one (the latest at or before ``step``, else the first)."""
    if match == "final":
        k = max(files)
    else:
        k = max((s for s in files if s <= step), default=min(files))
    return k, files[k]


def recombine_every(spec: dict) -> int:
    """The recombination stage's checkpoint cadence: the budget's ``recombine_every`` (only the snapshots at its
    multiples are recombined; the papers' double-guidance figures use every 1200 steps), else every checkpoint."""
    b = spec["budget"]
    return int(b.get("recombine_every") or b["eval_every"])


def recombination_jobs(spec: dict, items: list[dict], run_dir: Path, printer: Printer) -> list[dict]:
    """Eval jobs of the recombination stage: every snapshot (at multiples of `recombine_every`) of each diffusion
    run x its paired guidance."""
    trained = {(r["task"], r["algo"], r["train_guidance"], r["seed"]): r for r in _terminated(run_dir, "train")}
    artifacts = pretrained_artifacts(run_dir)
    seeds, jobs = spec["seeds"], []
    every = recombine_every(spec)
    for item in items:
        d, g = item["diffusion"], item["guidance"]
        for i, seed in enumerate(seeds):
            g_seed = seeds[(i + item["seed_shift"]) % len(seeds)]
            diff = trained.get((item["task"], d["algo"], d["train_guidance"], seed))
            if "trained" in g:
                src = trained.get((item["task"], g["trained"]["algo"], g["trained"]["train_guidance"], g_seed))
                g_dir, fmt = (run_dir / "snapshots" / src["trial_id"] if src else None), "snapshot"
            else:
                g_dir, fmt = artifacts.get((item["task"], g["pretrained"], g_seed)), "artifact"
            g_files = snapshot_files(g_dir) if g_dir else {}
            if diff is None or not g_files:
                printer(f"[recombine] {item['name']} seed {seed}: skipped (diffusion or guidance run missing or failed)")
                continue
            ev = diff["spec"].eval
            for step, snap in sorted(snapshot_files(run_dir / "snapshots" / diff["trial_id"]).items()):
                if step % every:
                    continue
                job = EvalJob(snapshot=str(snap), inference=dict(item["inference"]), episodes=ev.episodes,
                              eval_seed=eval_seed_for(seed, step), max_steps=ev.max_steps,
                              guidance=str(_pick(g_files, step, item["match"])[1]), guidance_format=fmt)
                labels = EvalLabels(sweep=spec["name"], trial_id=diff["trial_id"], task=item["task"], algo=d["algo"],
                                    train_guidance=d["train_guidance"], infer_source=infer_source(item),
                                    diffusion_seed=seed, guidance_seed=g_seed, step=step)
                jobs.append(eval_request(run_dir, job, labels))
    return jobs


def run_recombination(client: EvalClient, jobs: list[dict], printer: Printer) -> int:
    """Evaluate the jobs through the pool; returns the number that failed (their reasons are printed and kept
    in ``client.errors``)."""
    counts = {"done": 0, "failed": 0}
    printer(f"[recombine] {len(jobs)} evaluation job(s) to run")

    def on_done(job: dict, reason: str | None) -> None:
        counts["failed" if reason else "done"] += 1
        if reason:
            printer(f"[recombine] {job['labels']['infer_source']} on {job['job']['snapshot']}: failed: {reason}")
        n = counts["done"] + counts["failed"]
        if n % 10 == 0 or n == len(jobs):
            printer(f"[recombine] {n}/{len(jobs)} done, {counts['failed']} failed")

    client.submit_background(jobs)
    client.drain_background(on_done)
    return counts["failed"]


def reconcile(run_dir: Path, client: EvalClient, printer: Printer, statuses: tuple[str, ...] | None = None,
              wait: bool = True) -> int:
    """Resubmit the snapshots of training trials (in ``statuses``; None = all) that have no rows; with ``wait``,
    wait for every background evaluation of ``client`` (failures land in ``client.errors``). Returns how
    many were resubmitted."""
    lost = missing_self_evals(run_dir, statuses)
    if lost:
        trials = sorted({r["labels"]["trial_id"] for r in lost})
        printer(f"[ledger] {len(lost)} snapshot(s) without rows in trial(s) {', '.join(trials)}: resubmitted")
        client.submit_background(lost)
    if wait:
        client.drain_background()
    return len(lost)


def ledger_summary(spec: dict, run_dir: Path, errors: dict[str, str]) -> dict[str, Any]:
    """What the run directory should hold and what it lacks: {snapshots, evaluations, missing: [{trial_id, step,
    infer_source, snapshot, reason}]}. ``errors``: rows path -> reason of evaluations that failed."""
    entries = self_eval_ledger(run_dir)
    items = next((s.items for s in expand(spec) if s.name == "recombine"), [])
    recombined = recombination_jobs(spec, items, run_dir, lambda s: None) if items else []
    out = []
    for r in [e.request for e in entries if not e.done] + missing(recombined):
        lab = r["labels"]
        out.append({"trial_id": lab["trial_id"], "step": lab["step"], "infer_source": lab["infer_source"],
                    "snapshot": r["job"]["snapshot"],
                    "reason": errors.get(str(rows_path(r)), "never evaluated (no failure recorded)")})
    return {"snapshots": len(entries), "evaluations": len(entries) + len(recombined), "missing": out}


def check_datasets(spec: dict, data_root: str | None, resume_of: Path | None = None) -> dict[str, dict]:
    """Make the spec's missing generated datasets (quick budget, shipped policies: deterministic), then load
    every task once, so that a dataset that cannot be used (unknown env, corrupt file) fails here, in one
    line, before any training. Returns task -> {"fingerprint", "transitions"} of the dataset (recorded in
    run.json; what ``--reuse`` matches on). ``resume_of``: the run directory being resumed: its datasets
    (run.json ``datasets``) must be the ones found, else its curves would mix two datasets of one name; one
    it recorded that is missing here is refused before anything is made. (Runs written before run.json
    recorded datasets are not checked.)"""
    from rl_core.data.gen.make import make_datasets
    from rl_core.data.io import KNOWN_TASKS, META_FILE, load_dataset
    from rl_core.data.io import data_root as default_root

    root = Path(data_root) if data_root else default_root()
    recorded = _recorded_datasets(resume_of) if resume_of is not None else {}

    def refuse(task: str, found: str) -> ConfigError:
        was = recorded[task]
        return ConfigError(f"--resume {resume_of}: dataset {task!r} under {root} is not the one this run trained on "
                           f"({found}; the run's: fingerprint {str(was.get('fingerprint'))[:12]}, "
                           f"{was.get('transitions')} transitions); point MDPT_DATA at the run's data, or start "
                           "afresh with another --out")

    missing = [t for t in spec["tasks"] if t in KNOWN_TASKS and not (root / t / META_FILE).exists()]
    for task in missing:
        if task in recorded:
            raise refuse(task, "not there")
    if missing:
        hint = ("; for the papers' dataset sizes stop now and make them first with `mdpt data make TASK --budget "
                "paper`" if spec.get("scale") == "paper" else "")
        print(f"[data] making missing dataset(s) {', '.join(missing)} (quick budget: 100k transitions) in {root}"
              f"{hint}", flush=True)
        make_datasets(missing, root=root)
    out = {}
    for task in spec["tasks"]:
        ds = load_dataset(task, root=root)
        out[task] = {"fingerprint": ds.fingerprint, "transitions": ds.n_transitions}
        if task in recorded and recorded[task].get("fingerprint") != ds.fingerprint:
            raise refuse(task, f"found fingerprint {ds.fingerprint[:12]}, {ds.n_transitions} transitions")
    return out


def _recorded_datasets(run_dir: Path) -> dict[str, dict]:
    """run.json's ``datasets`` (task -> {"fingerprint", "transitions"}); {} when it has none."""
    try:
        got = json.loads((Path(run_dir) / "run.json").read_text()).get("datasets")
    except (OSError, ValueError, AttributeError):
        return {}
    return {t: v for t, v in got.items() if isinstance(v, dict)} if isinstance(got, dict) else {}


def write_references(spec: dict, run_dir: Path, data_root: str | None, printer: Printer = print) -> int:
    """RUN_DIR/results/references/<task>.parquet for every task of the spec that lacks it, or lacks one of the
    lines (a run made before the ``no_progress`` line is rewritten when resumed): the random, zero-action,
    no-forward-progress and behaviour-data reference lines (``trainables.results.record_references``), with
    episodes capped at the spec's ``eval.max_episode_steps``. Returns how many tasks were written."""
    from rl_core.data.envs import ALIVE_BONUS
    from rl_core.data.io import load_dataset
    from trainables.results import REFERENCE_KINDS, read_table, record_references

    cap = int(spec["eval"]["max_episode_steps"])
    kinds: dict[str, set[str]] = {}
    envs: dict[str, str] = {}
    for r in read_table(run_dir, "references").to_pylist():
        if r["max_episode_steps"] == cap:
            kinds.setdefault(r["task"], set()).add(r["reference"])
            envs[r["task"]] = r["env_id"]
    # every line the current code writes: no_progress only for envs whose alive bonus is known
    done = {t for t, k in kinds.items()
            if k >= set(REFERENCE_KINDS) - (set() if envs[t] in ALIVE_BONUS else {"no_progress"})}
    todo = [t for t in spec["tasks"] if t not in done]
    for task in todo:
        t0 = time.perf_counter()
        record_references(run_dir, task, load_dataset(task, root=Path(data_root) if data_root else None), cap)
        printer(f"[references] {task}: random, zero-action, no-progress and dataset reference lines "
                f"({time.perf_counter() - t0:.0f} s)")
    return len(todo)


def run_sweep(spec: dict, run_dir: Path, *, address: str | None = None, resume: bool = False,
              printer: Printer = print, report: bool = True, reuse: Path | None = None) -> dict[str, Any]:
    """Run every stage of a resolved spec into ``run_dir``; returns a summary (paths, counts, timings).
    ``reuse``: another sweep's run directory whose matching finished trials are taken instead of trained
    (``sweeps/reuse.py``; not with ``resume``: a resumed run keeps what it reused)."""
    run_dir = Path(run_dir).resolve()
    refuse_with_resume(resume, reuse)
    if reuse is not None:
        reuse = check_source(reuse, run_dir)
    if address is None and not ray.is_initialized():
        check_local_resources(spec)
    data_root = os.environ.get("MDPT_DATA")
    datasets = check_datasets(spec, data_root, resume_of=run_dir if resume else None)
    fingerprints = {t: d["fingerprint"] for t, d in datasets.items()}
    if not resume:
        write_run_dir(spec, run_dir, datasets)
    reused = import_trials(spec, run_dir, reuse, data_root, printer, fingerprints=fingerprints) \
        if reuse is not None else None
    if resume:
        finish_import(spec, run_dir, data_root, printer, fingerprints=fingerprints)  # a driver that died importing
    write_references(spec, run_dir, data_root, printer)
    init_ray(address)
    ev = spec["resources"]["evaluators"]
    coord = start_pool(run_dir, ev["count"], ev["cpu"], ev["gpu"])
    client = EvalClient(coordinator_name(run_dir))
    summary: dict[str, Any] = {"run_dir": str(run_dir), "results": str(run_dir / "results"), "stages": {}}
    if reused is not None:
        summary["reused"] = reused
    try:
        # the ledger: finished trials' snapshots whose jobs a dead driver's pool took with it (no wait here;
        # restored trials resubmit their own, and the training stage's end waits for all)
        summary["resubmitted"] = reconcile(run_dir, client, printer, statuses=("TERMINATED",), wait=False)
        for stage in expand(spec):
            t0 = time.perf_counter()
            summary["stages"][stage.name] = _run_stage(stage, spec, run_dir, data_root, client, printer)
            summary["stages"][stage.name]["wall_s"] = time.perf_counter() - t0
        client.drain_background()
        summary["ledger"] = ledger_summary(spec, run_dir, client.errors)
        summary["evaluators"] = ray.get(coord.get_stats.remote())
    finally:
        ray.kill(coord)  # release the evaluators' CPUs / GPUs
    if report:
        from analysis.report import build_report

        summary["report"] = str(build_report(run_dir))
    return summary


def _run_stage(stage: Stage, spec: dict, run_dir: Path, data_root: str | None, client: EvalClient,
               printer: Printer) -> dict:
    rt = runtime(spec, run_dir, data_root)
    reused = reused_identities(run_dir, stage.name) if stage.name in ("pretrain", "train") else set()
    if stage.name == "pretrain":
        trials = [t.replace(runtime=rt) for t in stage.items if t.identity not in reused]
        return _tune_summary("pretrain", pretrain_guidance, trials, len(reused), spec, run_dir, printer)
    if stage.name == "train":
        artifacts = pretrained_artifacts(run_dir)
        trials = []
        for t in stage.items:
            if t.identity in reused:
                continue
            i = t.identity
            if i.pretrained is not None:
                found = artifacts.get((i.task, i.pretrained, i.seed))
                if found is None:
                    printer(f"[train] {t.label}: skipped, its pretraining trial ({i.pretrained}, seed {i.seed}) "
                            "did not finish")
                    continue
                t = t.replace(train=dataclasses.replace(t.train, guidance_artifact=str(found / "final.pt")))
            trials.append(t.replace(runtime=rt))
        out = _tune_summary("train", train_policy, trials, len(reused), spec, run_dir, printer)
        out["resubmitted"] = reconcile(run_dir, client, printer)  # the backstop: every trial has ended
        return out
    if stage.name == "recombine":
        jobs = recombination_jobs(spec, stage.items, run_dir, printer)
        todo = missing(jobs)
        if len(todo) < len(jobs):
            printer(f"[recombine] {len(jobs) - len(todo)} of {len(jobs)} evaluation job(s) already have rows")
        return {"jobs": len(jobs), "submitted": len(todo), "failed": run_recombination(client, todo, printer)}
    return {"comparisons": len(stage.items)}


def _tune_summary(stage: str, trainable, trials: list[TrialSpec], reused: int, spec: dict, run_dir: Path,
                  printer: Printer) -> dict[str, Any]:
    """Run the stage's Tune experiment over ``trials`` and summarize it; ``reused``: trials of the stage taken
    from another run (not run). A stage whose trials were all taken runs no Tune experiment."""
    if reused and not trials:
        printer(f"[{stage}] all {reused} trial(s) reused: no Tune experiment")
        return {"trials": 0, "errors": 0, "trial_s": 0.0, "eval_wait_s": 0.0, "reused": reused}
    out = _grid_summary(run_tune_stage(stage, trainable, trials, spec, run_dir, printer))
    return dict(out, reused=reused) if reused else out


def _grid_summary(grid: tune.ResultGrid) -> dict[str, Any]:
    """Trial counts and, over trials, seconds spent in the trainable and waiting on evaluations."""
    frame = [r.metrics or {} for r in grid]
    return {"trials": len(grid), "errors": grid.num_errors,
            "trial_s": sum(float(m.get("time_total_s", 0.0)) for m in frame),
            "eval_wait_s": sum(float(m.get("time/eval_wait_s", 0.0)) for m in frame)}
