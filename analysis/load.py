"""Read a run directory's results (Parquet, pyarrow only) and the comparisons to report.

Tables read (layout in docs/interfaces.md; the writer is trainables/results.py, which this
module does not import, so a report can be made from a copied run directory anywhere):

- ``RUN_DIR/results/evals/**.parquet``: one row per evaluated episode with the columns
  ``EVAL_COLUMNS`` (``normalized_score`` is x100).
- ``RUN_DIR/results/trials/*.parquet``: one row per trial (``TRIAL_COLUMNS``).
- ``RUN_DIR/results/guidance_search/<study>/trial_<n>.parquet`` (read recursively): optional, one
  row per finished Optuna trial of the guidance search (``GUIDANCE_SEARCH_COLUMNS``; the writer is
  trainables/search.py). Its trials' eval rows have ``infer_source = search:<study>[...]``
  (``SEARCH_SOURCE_PREFIX``); they are search trials, not compositions, so the default
  comparisons leave them out.

A *variant* is one value of ``VARIANT_KEYS``; a *selector* is a dict over a subset of
``("task", *VARIANT_KEYS)`` that selects eval rows by column equality (``infer_source``
defaults to ``self``). A `Comparison` pairs a method selector with a baseline selector.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analysis.errors import AnalysisError, EmptyRunError

EVAL_COLUMNS = (
    "sweep", "trial_id", "task", "algo", "train_guidance", "infer_source", "infer_method",
    "infer_scale", "diffusion_seed", "guidance_seed", "step", "episode", "eval_seed", "return",
    "normalized_score", "length", "wall_s",
)
TRIAL_COLUMNS = (
    "sweep", "trial_id", "stage", "task", "algo", "train_guidance", "seed", "config_json",
    "status", "failure_reason", "restored_from", "num_failures", "updated_at",
)
VARIANT_KEYS = ("algo", "train_guidance", "infer_source", "infer_method", "infer_scale")
SELECTOR_KEYS = ("task", *VARIANT_KEYS)
GUIDANCE_SEARCH_COLUMNS = (
    "study", "trial", "tune_trial_id", "task", "algo", "train_guidance", "method", "scale", "params_json",
    "inference_json", "objective", "per_seed_json", "state", "reason", "infer_source", "episodes", "updated_at",
)
SEARCH_SOURCE_PREFIX = "search:"  # infer_source of the guidance search's eval rows
EPISODE_KEY = ("trial_id", "step", "episode", "infer_source", "infer_method", "infer_scale")
COMPARISON_KINDS = ("gfdt", "double_guidance", "plug_and_play", "swg_scale", "generic")


@dataclass(frozen=True)
class RunData:
    """Everything a report reads from one run directory."""

    run_dir: Path
    evals: pa.Table  # EVAL_COLUMNS, de-duplicated on EPISODE_KEY
    trials: pa.Table  # TRIAL_COLUMNS (possibly empty)
    guidance_search: pa.Table | None  # None when the run has no guidance search
    spec: dict[str, Any]  # run.json, with spec.yaml's `report` section when run.json lacks one


@dataclass(frozen=True)
class Comparison:
    """Method vs baseline; selectors as in docs/interfaces.md ("report.comparisons")."""

    name: str
    kind: str
    method: dict[str, Any]
    baseline: dict[str, Any]


def _read_dir(directory: Path, required: tuple[str, ...], what: str) -> pa.Table | None:
    """Every ``*.parquet`` under ``directory``, recursively (per-trial / per-study subdirectories),
    skipping hidden files (a writer's temporaries); None when there are none. Raises `AnalysisError`
    when a ``required`` column is missing."""
    files = sorted(p for p in directory.rglob("*.parquet") if not p.name.startswith(".")) if directory.is_dir() else []
    if not files:
        return None
    table = pa.concat_tables([pq.read_table(p) for p in files], promote_options="default")
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise AnalysisError(f"{directory} lacks the {what} columns {missing}; was it written by another mdpt version?")
    return table


def dedupe_evals(evals: pa.Table) -> pa.Table:
    """Keep the last-read row per ``EPISODE_KEY`` (a retried or restored evaluation wins).

    ``evals``: eval rows (``EVAL_COLUMNS``); a null ``infer_scale`` is read as NaN.
    """
    scale = pc.fill_null(evals.column("infer_scale").cast(pa.float64()), math.nan)
    evals = evals.set_column(evals.column_names.index("infer_scale"), "infer_scale", scale)
    indexed = evals.append_column("_row", pa.array(np.arange(evals.num_rows)))
    last = indexed.group_by(list(EPISODE_KEY)).aggregate([("_row", "max")]).column("_row_max")
    return evals.take(pc.sort_indices(last))


def load_run(run_dir: str | Path) -> RunData:
    """Read the result tables and the spec of ``run_dir``; `EmptyRunError` when there are no evals."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EmptyRunError(f"run directory {run_dir} does not exist")
    evals = _read_dir(run_dir / "results" / "evals", EVAL_COLUMNS, "evals")
    if evals is None or evals.num_rows == 0:
        raise EmptyRunError(
            f"{run_dir} has no evaluation results under results/evals; has the sweep evaluated any "
            "checkpoint yet? (`mdpt sweep` writes them every eval_every steps)"
        )
    trials = _read_dir(run_dir / "results" / "trials", TRIAL_COLUMNS, "trials")
    # no required columns here: the report checks GUIDANCE_SEARCH_COLUMNS and shows another table as written
    search = _read_dir(run_dir / "results" / "guidance_search", (), "guidance_search")
    return RunData(run_dir, dedupe_evals(evals.select(list(EVAL_COLUMNS))),
                   trials if trials is not None else pa.table({c: [] for c in TRIAL_COLUMNS}),
                   search, read_spec(run_dir))


def read_spec(run_dir: Path) -> dict[str, Any]:
    """``run.json`` (or {}), with ``report`` taken from ``spec.yaml`` when run.json has no comparisons."""
    spec: dict[str, Any] = {}
    if (run_dir / "run.json").exists():
        spec = json.loads((run_dir / "run.json").read_text())
    if not spec.get("comparisons") and (run_dir / "spec.yaml").exists():
        import yaml

        report = (yaml.safe_load((run_dir / "spec.yaml").read_text()) or {}).get("report") or {}
        spec["comparisons"] = report.get("comparisons") or []
    return spec


# ----- selectors and comparisons ---------------------------------------------------------------
def _check_selector(sel: dict[str, Any], where: str) -> dict[str, Any]:
    bad = sorted(set(sel) - set(SELECTOR_KEYS))
    if bad or not isinstance(sel, dict):
        raise AnalysisError(f"{where}: unknown selector keys {bad}; allowed: {list(SELECTOR_KEYS)}")
    return {"infer_source": "self", **sel}


def comparison_from_dict(d: dict[str, Any], i: int = 0) -> Comparison:
    """One entry of ``report.comparisons`` -> `Comparison` (errors name the entry)."""
    where = f"report.comparisons[{i}]"
    for key in ("method", "baseline"):
        if not isinstance(d.get(key), dict):
            raise AnalysisError(f"{where}.{key} must be a mapping such as {{algo: dql, train_guidance: joint}}")
    kind = d.get("kind", "generic")
    if kind not in COMPARISON_KINDS:
        raise AnalysisError(f"{where}.kind = {kind!r}; allowed: {list(COMPARISON_KINDS)}")
    method = _check_selector(d["method"], f"{where}.method")
    baseline = _check_selector(d["baseline"], f"{where}.baseline")
    name = d.get("name") or f"{selector_label(method)} vs {selector_label(baseline)}"
    return Comparison(name, kind, method, baseline)


def parse_selector(text: str) -> dict[str, Any]:
    """Shorthand ``algo/train_guidance[/infer_source]``; ``algo-idql`` stands for ``algo:idql``."""
    parts = [p for p in text.strip().split("/")]
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise AnalysisError(f"bad selector {text!r}: expected algo/train_guidance[/infer_source], "
                            "e.g. dql/frozen or dql/joint/algo-idql")
    sel: dict[str, Any] = {"algo": parts[0], "train_guidance": parts[1], "infer_source": "self"}
    if len(parts) == 3:
        prefix, _, rest = parts[2].partition("-")
        sel["infer_source"] = f"{prefix}:{rest}" if prefix in ("seed", "algo", "artifact") and rest else parts[2]
    return sel


def parse_compare(text: str) -> Comparison:
    """``METHOD:BASELINE`` shorthand (docs/interfaces.md), e.g. ``dql/frozen:dql/joint``."""
    if text.count(":") != 1:
        raise AnalysisError(f"bad --compare {text!r}: expected METHOD:BASELINE, e.g. dql/frozen:dql/joint")
    m, b = (parse_selector(s) for s in text.split(":"))
    return Comparison(f"{selector_label(m)} vs {selector_label(b)}", infer_kind(m, b), m, b)


def infer_kind(method: dict[str, Any], baseline: dict[str, Any]) -> str:
    """The table a comparison belongs in, guessed from its selectors."""
    src = str(method.get("infer_source", "self"))
    if src.startswith("algo:"):
        return "plug_and_play"
    if src.startswith("seed:"):
        return "double_guidance"
    if method.get("train_guidance") == "frozen" and baseline.get("train_guidance") == "joint":
        return "gfdt"
    return "generic"


def selector_label(sel: dict[str, Any]) -> str:
    """Short label: ``dql/frozen``, ``dql/joint/algo:idql``, ``swg/joint swg s=2``."""
    label = "/".join(str(sel[k]) for k in ("algo", "train_guidance") if k in sel)
    if sel.get("infer_source", "self") != "self":
        label += f"/{sel['infer_source']}"
    if "infer_method" in sel:
        label += f" {sel['infer_method']}"
    if "infer_scale" in sel and not _isnan(sel["infer_scale"]):
        label += f" s={float(sel['infer_scale']):g}"
    if "task" in sel:
        label = f"{sel['task']}: {label}"
    return label


def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def select(evals: pa.Table, sel: dict[str, Any]) -> pa.Table:
    """Rows of ``evals`` matching every key of ``sel`` (NaN ``infer_scale`` matches NaN / None)."""
    mask = pa.array(np.ones(evals.num_rows, dtype=bool))
    for key, value in sel.items():
        col = evals.column(key)
        if key == "infer_scale":
            arr = col.to_numpy(zero_copy_only=False).astype(float)
            hit = np.isnan(arr) if _isnan(value) else np.isclose(arr, float(value))
            mask = pc.and_(mask, pa.array(hit))
        else:
            mask = pc.and_(mask, pc.equal(col, pa.scalar(value).cast(col.type)))
    return evals.filter(mask)


def variants(evals: pa.Table) -> list[dict[str, Any]]:
    """Distinct ``VARIANT_KEYS`` rows of ``evals``, sorted."""
    rows = evals.select(list(VARIANT_KEYS)).group_by(list(VARIANT_KEYS)).aggregate([]).to_pylist()
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in VARIANT_KEYS))


def variant_selector(v: dict[str, Any], evals: pa.Table) -> dict[str, Any]:
    """Selector for variant ``v`` that omits inference keys a shorter selector already pins down."""
    short = {k: v[k] for k in ("algo", "train_guidance", "infer_source")}
    return short if len(variants(select(evals, short))) == 1 else dict(v)


def is_search_source(infer_source: object) -> bool:
    """Whether an ``infer_source`` labels guidance-search trial evaluations (``search:<study>...``)."""
    return str(infer_source).startswith(SEARCH_SOURCE_PREFIX)


def default_comparisons(evals: pa.Table) -> list[Comparison]:
    """Comparisons when neither the spec nor --compare gives any.

    Within each algorithm: every training-guidance mode against ``joint`` when ``joint`` is
    present (otherwise every pair); every recombined inference source against the same
    diffusion variant with its own guidance (``infer_source = self``). Guidance-search trials
    (``infer_source = search:...``) are not compositions and get no comparison.
    """
    out: list[Comparison] = []
    selves = [v for v in variants(evals) if v["infer_source"] == "self"]
    for algo in sorted({v["algo"] for v in selves}):
        mine = [variant_selector(v, evals) for v in selves if v["algo"] == algo]
        joint = [s for s in mine if s["train_guidance"] == "joint"]
        pairs = ([(m, joint[0]) for m in mine if m["train_guidance"] != "joint"] if len(joint) == 1
                 else [(a, b) for i, a in enumerate(mine) for b in mine[i + 1:]])
        out += [Comparison(f"{selector_label(m)} vs {selector_label(b)}", infer_kind(m, b), m, b) for m, b in pairs]
    for v in variants(evals):
        if v["infer_source"] != "self" and not is_search_source(v["infer_source"]):
            m, base = variant_selector(v, evals), variant_selector({**v, "infer_source": "self"}, evals)
            if select(evals, base).num_rows:
                out.append(Comparison(f"{selector_label(m)} vs {selector_label(base)}", infer_kind(m, base), m, base))
    return out


def plug_and_play_partners(comparisons: list[Comparison], evals: pa.Table) -> list[Comparison]:
    """For each plug-and-play comparison (method guided by ``algo:<G>...``), the same method against
    algorithm G's own variant (same training-guidance mode, ``infer_source = self``) when the run has
    it and the comparisons do not already hold it, so cross-algorithm rows face both baselines."""
    out: list[Comparison] = []
    have = {(selector_label(c.method), selector_label(c.baseline)) for c in comparisons}
    for c in comparisons:
        match = re.match(r"algo:([A-Za-z0-9_]+)", str(c.method.get("infer_source", "")))
        if c.kind != "plug_and_play" or not match:
            continue
        base = {"algo": match.group(1), "train_guidance": c.method.get("train_guidance", "joint"),
                "infer_source": "self"}
        key = (selector_label(c.method), selector_label(base))
        if key not in have and select(evals, base).num_rows:
            have.add(key)
            out.append(Comparison(f"{key[0]} vs {key[1]}", "plug_and_play", c.method, base))
    return out


def comparisons_for(run: RunData, compare: list[str] | None) -> list[Comparison]:
    """--compare if given, else the spec's ``report.comparisons``, else `default_comparisons`."""
    if compare:
        return [parse_compare(c) for c in compare]
    listed = run.spec.get("comparisons") or []
    if listed:
        return [comparison_from_dict(d, i) for i, d in enumerate(listed)]
    return default_comparisons(run.evals)
