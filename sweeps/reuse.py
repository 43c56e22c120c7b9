"""`mdpt sweep SPEC --reuse RUN_DIR`: take finished trials from another sweep's run directory instead of
retraining them.

A pretraining or training trial of this sweep (``sweeps.expand.expand``) is *reused* when the source run's
trials table has a TERMINATED trial of the same stage whose TrialSpec (``config_json``) has the same identity
and the same training config: ``pretrain`` equal, or ``train`` equal except ``guidance_artifact`` (a path).
A frozen / unfrozen trial is reused only with the pretraining trial of its (task, pretraining name, seed),
and only when the source trial was trained against that very trial's artifact. ``eval`` and ``runtime``
change no training result and do not count, with two exceptions read from the source trial itself: it must have
trained on the same data (the dataset fingerprint in its snapshot / artifact equals this run's dataset's) and on
the same kind of device (CUDA or CPU); and its files must be complete (every snapshot up to ``steps``, or the
artifact's ``final.pt``), so a copy of a run holding only ``results/`` reuses nothing.

Importing a trial (``import_trials``, after the run directory is written, before the stages): its
``snapshots/<trial_id>/`` or ``guidance/<trial_id>/`` files are hard-linked (copied across filesystems),
its ``results/train/<trial_id>/`` files copied, and its trials row written into this run under the same
trial id, with this sweep's name, this run's ``runtime``, this sweep's ``eval`` and (frozen / unfrozen)
``train.guidance_artifact`` pointing at this run's copy of the artifact. Its own evaluations
(``infer_source = self``) are copied when the source trial was evaluated exactly as this sweep evaluates it
(the whole ``eval``: inference, episodes, max_steps); the snapshots left without rows are evaluated by the
driver's reconcile step. Result files are copied with their ``sweep`` column set to this sweep's name (one
sweep per run directory). ``RUN_DIR/run.json`` records ``"reused": {"from": <abs path>, "trials": [ids]}``,
written before the first file is imported; a trial's trials row is written last, and a resumed run first
finishes an interrupted import (`finish_import`); the training stages skip those trials (``reused_identities``),
also when the run is resumed. An imported trial's row starts clean (no failures, not restored): those happened in
the source run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rl_core.errors import ConfigError
from rl_core.fsutil import atomic_write
from trainables.evaluator import rows_path
from trainables.ledger import trial_self_requests
from trainables.results import ResultStore, read_table, trial_row
from trainables.trial import TrialIdentity, TrialSpec

Printer = Callable[[str], None]
STAGE_DIRS = {"pretrain": "guidance", "train": "snapshots"}  # where a stage's trial files live


def refuse_with_resume(resume: bool, reuse: Any) -> None:
    """``--reuse`` starts a run; ``--resume`` continues one, which keeps the trials it reused: not both."""
    if resume and reuse:
        raise ConfigError("--reuse cannot be combined with --resume (a resumed sweep keeps the trials it reused)")


@dataclass(frozen=True)
class Match:
    """A trial of this sweep (``target``, as expanded: no runtime) and the source run's finished trial it takes."""

    target: TrialSpec
    trial_id: str
    source: TrialSpec  # the source trial's TrialSpec (its config_json)
    row: dict  # the source trial's trials row
    same_eval: bool  # the source evaluated its snapshots exactly as this sweep does (own evaluations copied)


# ----- checks ----------------------------------------------------------------------------------
def check_source(source: Path, out: Path) -> Path:
    """The absolute source run directory, or a one-line ConfigError naming what ``source`` is."""
    src = Path(source).resolve()
    if not src.exists():
        raise ConfigError(f"--reuse {source}: no such directory")
    if not src.is_dir():
        raise ConfigError(f"--reuse {source}: is a file, not a run directory written by `mdpt sweep`")
    if src == Path(out).resolve():
        raise ConfigError(f"--reuse {source}: is this sweep's own output directory; reuse another run's trials "
                          "(or choose another --out)")
    if not (src / "spec.yaml").exists():
        what = ("a `mdpt train --out` directory (run.json without spec.yaml)" if (src / "run.json").exists()
                else "no spec.yaml there")
        raise ConfigError(f"--reuse {source}: not a sweep run directory: {what}")
    if not (src / "results" / "trials").is_dir():
        raise ConfigError(f"--reuse {source}: a sweep run directory without results/trials (no trial of it has "
                          "started); nothing to reuse")
    return src


# ----- matching --------------------------------------------------------------------------------
def _canon(obj: Any) -> str:
    """Canonical JSON of a config (or None): equal configs give equal strings."""
    return json.dumps(obj.to_dict() if obj is not None else None, sort_keys=True)


def _parsed(spec: TrialSpec) -> TrialSpec:
    """``spec`` as it reads back from a trials row (lists, defaults), so expanded and stored specs compare."""
    return TrialSpec.from_dict(json.loads(spec.to_json()))


def dataset_fingerprints(spec: dict, data_root: str | None = None) -> dict[str, str]:
    """task -> the fingerprint of the dataset this sweep trains on (loaded from ``data_root``, default
    ``MDPT_DATA``)."""
    from rl_core.data.io import load_dataset

    root = data_root if data_root is not None else os.environ.get("MDPT_DATA")
    return {t: load_dataset(t, root=Path(root) if root else None).fingerprint for t in spec["tasks"]}


def _source_trials(source: Path) -> list[tuple[dict, TrialSpec]]:
    """TERMINATED pretraining / training rows of the source run with their TrialSpecs, by trial id (a row
    whose config no longer reads is left out: it cannot be matched)."""
    out = []
    for r in sorted(read_table(source, "trials").to_pylist(), key=lambda r: r["trial_id"]):
        if r["status"] != "TERMINATED" or r["stage"] not in STAGE_DIRS:
            continue
        try:
            out.append((r, TrialSpec.from_dict(json.loads(r["config_json"]))))
        except (ConfigError, KeyError, TypeError, ValueError):
            continue
    return out


def _no_artifact(spec: TrialSpec) -> str:
    """The training config's canonical JSON without ``guidance_artifact`` (a path of the run it lives in)."""
    return json.dumps(dict(spec.train.to_dict(), guidance_artifact=None), sort_keys=True)


def _trained_on(source: Path, row: dict, spec: TrialSpec) -> str | None:
    """The dataset fingerprint the source trial trained on, read from its files (a snapshot's
    ``dataset_meta.fingerprint``, an artifact's ``meta.dataset_fingerprint``); None when its files are incomplete
    (a training trial needs a snapshot at every multiple of ``eval_every`` up to ``steps``, a pretraining trial its
    ``final.pt``: a copy of a run without them, e.g. only ``results/``, is not reusable) or unreadable."""
    import torch

    from trainables.ledger import snapshot_files

    folder = Path(source) / STAGE_DIRS[spec.stage] / row["trial_id"]
    try:
        if spec.stage == "train":
            files = snapshot_files(folder)
            need = set(range(spec.train.eval_every, spec.train.steps + 1, spec.train.eval_every))
            if not need or not need <= set(files):
                return None
            state = torch.load(files[max(need)], map_location="cpu", weights_only=False)
            return str(state["dataset_meta"]["fingerprint"])
        if not (folder / "final.pt").exists():
            return None
        state = torch.load(folder / "final.pt", map_location="cpu", weights_only=False)
        return str(state["meta"]["dataset_fingerprint"])
    except (OSError, KeyError, TypeError, RuntimeError, ValueError, EOFError):
        return None


def _on_gpu(spec: TrialSpec) -> bool | None:
    return None if spec.runtime is None else spec.runtime.gpu > 0


def plan(spec: dict, source: Path, fingerprints: dict[str, str] | None = None) -> dict[str, list[Match]]:
    """stage (pretrain | train) -> the trials of ``spec`` that would be taken from ``source`` (module docstring).
    A source trial must also have trained on the same data (``fingerprints``: task -> this run's dataset
    fingerprint; default: the datasets loaded from ``MDPT_DATA``), have all its files (`_trained_on`), and have
    trained on the same kind of device (CUDA or CPU: ``resources.trial.gpu`` > 0) as this sweep's trials."""
    from sweeps.expand import expand

    stages = {s.name: s.items for s in expand(spec) if s.name in STAGE_DIRS}
    if fingerprints is None:
        fingerprints = dataset_fingerprints(spec)
    gpu = spec["resources"]["trial"]["gpu"] > 0
    candidates = _source_trials(Path(source))

    def usable(row: dict, s: TrialSpec) -> bool:  # reads the trial's files: asked only of trials that match
        return _on_gpu(s) in (None, gpu) and _trained_on(Path(source), row, s) == fingerprints.get(s.identity.task)

    out: dict[str, list[Match]] = {"pretrain": [], "train": []}
    pre: dict[tuple[str, str, int], str] = {}  # (task, pretraining name, seed) -> reused pretraining trial id
    used: set[str] = set()
    for t in stages.get("pretrain", []):
        t = _parsed(t)
        want = _canon(t.pretrain)
        for row, s in candidates:
            if row["trial_id"] not in used and s.stage == "pretrain" and s.identity == t.identity \
                    and _canon(s.pretrain) == want and usable(row, s):
                out["pretrain"].append(Match(t, row["trial_id"], s, row, same_eval=True))
                pre[(t.identity.task, t.identity.train_guidance.split(":", 1)[1], t.identity.seed)] = row["trial_id"]
                used.add(row["trial_id"])
                break
    for t in stages.get("train", []):
        t, i = _parsed(t), t.identity
        want = _no_artifact(t)
        pre_id = pre.get((i.task, i.pretrained, i.seed)) if i.pretrained is not None else None
        if i.pretrained is not None and pre_id is None:
            continue  # its pretraining trial is retrained, so is it
        for row, s in candidates:
            if row["trial_id"] in used or s.stage != "train" or s.identity != t.identity or _no_artifact(s) != want:
                continue
            if pre_id is not None and Path(s.train.guidance_artifact or "").parent.name != pre_id:
                continue  # trained against another artifact than the one reused
            if not usable(row, s):
                continue
            out["train"].append(Match(t, row["trial_id"], s, row, same_eval=_canon(s.eval) == _canon(t.eval)))
            used.add(row["trial_id"])
            break
    return out


def plan_text(spec: dict, source: Path) -> list[str]:
    """What ``--reuse source`` would take (``mdpt sweep --dry-run --reuse``): one line per stage, one per trial."""
    from sweeps.expand import expand

    sizes = {s.name: len(s.items) for s in expand(spec)}
    matches = plan(spec, source)
    lines = []
    for stage in STAGE_DIRS:
        if not sizes.get(stage):
            continue
        found = matches[stage]
        lines.append(f"reuse {stage}: {len(found)} of {sizes[stage]} trial(s) would be taken from {source}; "
                     f"{sizes[stage] - len(found)} trained")
        lines += [f"  {m.target.label} <- {m.trial_id}"
                  + ("" if m.same_eval else " (evaluated otherwise there: its snapshots are re-evaluated)")
                  for m in found]
    return lines


# ----- import ----------------------------------------------------------------------------------
def _link_tree(src: Path, dst: Path) -> int:
    """Hard-link every file under ``src`` to the same place under ``dst`` (copy when linking fails, e.g. across
    filesystems); returns the number of files."""
    n = 0
    for f in sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith(".")):
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()
        try:
            os.link(f, target)
        except OSError:
            shutil.copy2(f, target)
        n += 1
    return n


def _copy_table_file(src: Path, dst: Path, sweep: str) -> None:
    """Copy one result file, its ``sweep`` column set to ``sweep``, atomically."""
    table = pq.read_table(src)
    if "sweep" in table.column_names:
        i = table.column_names.index("sweep")
        table = table.set_column(i, table.schema.field(i), pa.array([sweep] * table.num_rows, pa.string()))
    atomic_write(dst, lambda tmp: pq.write_table(table, tmp))


def _imported_spec(m: Match, rt, run_dir: Path, pre_ids: dict[tuple[str, str, int], str]) -> TrialSpec:
    """The source TrialSpec with this run's runtime, this sweep's eval and this run's copy of the artifact."""
    s = m.source.replace(runtime=rt)
    if s.stage == "train":
        i, train = s.identity, s.train
        if i.pretrained is not None:
            pre_id = pre_ids[(i.task, i.pretrained, i.seed)]
            train = dataclasses.replace(train, guidance_artifact=str(run_dir / "guidance" / pre_id / "final.pt"))
        s = s.replace(eval=m.target.eval, train=train)
    return s


def import_trials(spec: dict, run_dir: Path, source: Path, data_root: str | None,
                  printer: Printer = print, only: set[str] | None = None,
                  fingerprints: dict[str, str] | None = None) -> dict[str, Any]:
    """Take the matching finished trials of ``source`` into ``run_dir`` (module docstring); returns
    ``{"from": abs source, "trials": [ids], stage: {"reused", "of", "evals"}}``. ``only``: finish an interrupted
    import (`finish_import`): import just these trial ids, keeping run.json's record. ``fingerprints``: the
    datasets' fingerprints when the caller has loaded them (`sweeps.run.check_datasets`); else loaded here."""
    from sweeps.expand import expand
    from sweeps.run import runtime

    run_dir, source = Path(run_dir), Path(source).resolve()
    matches = plan(spec, source, fingerprints if fingerprints is not None else dataset_fingerprints(spec, data_root))
    pre_ids = {(m.target.identity.task, m.target.identity.train_guidance.split(":", 1)[1], m.target.identity.seed):
               m.trial_id for m in matches["pretrain"]}  # all of them: a frozen trial's artifact may be imported
    if only is not None:
        matches = {stage: [m for m in ms if m.trial_id in only] for stage, ms in matches.items()}
    ids = [m.trial_id for stage in STAGE_DIRS for m in matches[stage]]
    record = {"from": str(source), "trials": ids}
    run_json = run_dir / "run.json"
    if only is None:
        run = json.loads(run_json.read_text())
        run["reused"] = record
        atomic_write(run_json, lambda tmp: Path(tmp).write_text(json.dumps(run, indent=2)))

    rt, store, sweep = runtime(spec, run_dir, data_root), ResultStore(run_dir), spec["name"]
    sizes = {s.name: len(s.items) for s in expand(spec)}
    out: dict[str, Any] = dict(record)
    for stage, folder in STAGE_DIRS.items():
        n_evals = 0
        for m in matches[stage]:
            _link_tree(source / folder / m.trial_id, run_dir / folder / m.trial_id)
            for f in sorted((source / "results" / "train" / m.trial_id).glob("*.parquet")):
                _copy_table_file(f, run_dir / "results" / "train" / m.trial_id / f.name, sweep)
            new = _imported_spec(m, rt, run_dir, pre_ids)
            if stage == "train" and m.same_eval:
                for request in trial_self_requests(new, m.trial_id, run_dir):
                    dst = rows_path(request)
                    src = source / dst.relative_to(run_dir)
                    if src.exists():
                        _copy_table_file(src, dst, sweep)
                        n_evals += 1
            i = new.identity
            ident = {"sweep": sweep, "trial_id": m.trial_id, "task": i.task, "algo": i.algo,
                     "train_guidance": i.train_guidance, "seed": i.seed}
            # written last: a trial whose row exists is imported whole (`finish_import` completes the others).
            # Its failures and restores happened in the source run, not here: the row starts clean.
            store.write_trial(trial_row(ident, stage=stage, config=new.to_dict(), status="TERMINATED"))
        if sizes.get(stage):
            n, total = len(matches[stage]), sizes[stage]
            what = "artifacts, logs" if stage == "pretrain" else f"snapshots, logs, {n_evals} own evaluations"
            printer(f"[reuse] {stage}: {n} of {total} trial(s) taken from {source} ({what}); {total - n} retrained")
            out[stage] = {"reused": n, "of": total, "evals": n_evals}
    return out


def finish_import(spec: dict, run_dir: Path, data_root: str | None, printer: Printer = print,
                  fingerprints: dict[str, str] | None = None) -> int:
    """On resume: import the trials run.json records as reused that have no trials row yet (a driver that died
    while importing); returns how many. Without this, a resumed run would retrain them beside their copied
    rows. ConfigError when the source run is gone."""
    path = Path(run_dir) / "run.json"
    record = json.loads(path.read_text()).get("reused") if path.exists() else None
    if not record:
        return 0
    have = {r["trial_id"] for r in read_table(run_dir, "trials").to_pylist()}
    todo = set(record["trials"]) - have
    if not todo:
        return 0
    source = Path(record["from"])
    if not (source / "results" / "trials").is_dir():
        raise ConfigError(f"{run_dir}: {len(todo)} trial(s) were being imported from {source} (run.json `reused`), "
                          "which is gone; restore it, or start the sweep afresh in another --out")
    printer(f"[reuse] finishing an interrupted import: {len(todo)} trial(s) from {source}")
    import_trials(spec, run_dir, source, data_root, printer, only=todo, fingerprints=fingerprints)
    return len(todo)


def reused_identities(run_dir: Path, stage: str) -> set[TrialIdentity]:
    """Identities of the ``stage`` trials this run took from another (``run.json`` ``reused``) that are
    TERMINATED in its trials table: the training stages do not run them."""
    path = Path(run_dir) / "run.json"
    ids = set(json.loads(path.read_text()).get("reused", {}).get("trials", [])) if path.exists() else set()
    if not ids:
        return set()
    out = set()
    for r in read_table(run_dir, "trials").to_pylist():
        if r["trial_id"] in ids and r["stage"] == stage and r["status"] == "TERMINATED":
            out.add(TrialSpec.from_dict(json.loads(r["config_json"])).identity)
    return out
