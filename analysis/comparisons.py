"""Comparisons: method vs baseline selectors, the default ones, and the (comparison, task) pairs of curves.

A `Comparison` pairs a method selector with a baseline selector (selectors: `analysis.load`);
comparisons come from ``--compare`` shorthands, the spec's ``report.comparisons`` or
`default_comparisons`. `pair_curves` turns each comparison into one `Pair` per task that both
arms ran: the arms' `analysis.metrics.Curves` truncated to their common step horizon, on the checkpoints
both have (`analysis.metrics.shared_steps`: a recombination evaluated every 1200 steps is compared with its
baseline's checkpoints at those steps only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from analysis import metrics as mt
from analysis.errors import AnalysisError, MissingBaselineError
from analysis.load import DEFAULTED_EVAL_COLUMNS, SELECTOR_KEYS, RunData, is_nan, is_search_source, select, variants

COMPARISON_KINDS = ("gfdt", "double_guidance", "plug_and_play", "swg_scale", "generic")


@dataclass(frozen=True)
class Comparison:
    """Method vs baseline; selectors as in docs/interfaces.md ("report.comparisons")."""

    name: str
    kind: str
    method: dict[str, Any]
    baseline: dict[str, Any]


# ----- building comparisons --------------------------------------------------------------------
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
    """Short label: ``dql/frozen``, ``dql/joint/algo:idql``, ``swg/joint swg s=2``, ``dql/joint softmax s=100 bf16``."""
    label = "/".join(str(sel[k]) for k in ("algo", "train_guidance") if k in sel)
    if sel.get("infer_source", "self") != "self":
        label += f"/{sel['infer_source']}"
    if "infer_method" in sel:
        label += f" {sel['infer_method']}"
    if "infer_scale" in sel and not is_nan(sel["infer_scale"]):
        label += f" s={float(sel['infer_scale']):g}"
    if sel.get("inference_precision") not in (None, DEFAULTED_EVAL_COLUMNS["inference_precision"]):
        label += f" {sel['inference_precision']}"  # fp32 (the default) is not named: labels stay as they were
    if "task" in sel:
        label = f"{sel['task']}: {label}"
    return label


def variant_selector(v: dict[str, Any], evals: pa.Table) -> dict[str, Any]:
    """Selector for variant ``v`` that omits inference keys a shorter selector already pins down."""
    short = {k: v[k] for k in ("algo", "train_guidance", "infer_source")}
    return short if len(variants(select(evals, short))) == 1 else dict(v)


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


# ----- pairs of curves ---------------------------------------------------------------------------
NO_ROWS = "no rows for this seed (e.g. its guidance run is missing)"


@dataclass(frozen=True)
class DroppedSeed:
    """A diffusion seed only one arm of a pair has: ``missing_from`` ("method" / "baseline") has no
    eval rows for it; ``reason`` says why (the failed trial's ``failure_reason``, or `NO_ROWS`)."""

    seed: int
    missing_from: str
    reason: str


@dataclass(frozen=True)
class Pair:
    """Both arms of one comparison on one task, on the diffusion seeds both have, truncated to their
    common horizon, on the checkpoints both have. ``dropped``: the seeds only one arm has (left out of every
    statistic)."""

    comparison: Comparison
    task: str
    method: mt.Curves
    baseline: mt.Curves
    horizon: int
    last_steps: tuple[int, int]  # the arms' last checkpoints before truncation to the horizon
    dropped: tuple[DroppedSeed, ...] = ()

    @property
    def seeds(self) -> list[int]:
        """The diffusion seeds compared (those of both arms), ascending."""
        return sorted({int(s) for s in self.method.seeds})


def pair_curves(ckpt: pa.Table, comparisons: list[Comparison], horizon: int | None = None,
                strict: bool = True, trials: pa.Table | None = None) -> tuple[list[Pair], list[str]]:
    """The (comparison, task) pairs with rows for both arms, and a note per comparison left out.

    ``ckpt``: `analysis.metrics.checkpoint_stats` rows; ``trials``: the trials table
    (``TRIAL_COLUMNS``), read for the reason a seed is missing from an arm. Each pair keeps the
    diffusion seeds present in both arms on its task (`DroppedSeed` for the others). A comparison
    that cannot be computed (an arm selects nothing: `MissingBaselineError`; the arms share no seed;
    an arm matches several inference settings; no common horizon) raises when ``strict``, else it
    is left out with a note.
    """
    pairs, notes = [], []
    for comp in comparisons:
        try:
            pairs += _pairs(ckpt, comp, horizon, trials)
        except AnalysisError as exc:
            if strict:
                raise
            notes.append(str(exc))
    return pairs, notes


def _pairs(ckpt: pa.Table, comp: Comparison, horizon: int | None, trials: pa.Table | None) -> list[Pair]:
    m_rows, b_rows = select(ckpt, comp.method), select(ckpt, comp.baseline)
    tasks = sorted(set(m_rows.column("task").to_pylist()) & set(b_rows.column("task").to_pylist()))
    if not tasks:
        arm, sel = ("method", comp.method) if m_rows.num_rows == 0 else ("baseline", comp.baseline)
        have = sorted({selector_label(r) for r in ckpt.select(["algo", "train_guidance", "infer_source"]).to_pylist()})
        raise MissingBaselineError(
            f"comparison {comp.name!r}: its {arm} {selector_label(sel)} has no evaluation rows"
            + ("" if m_rows.num_rows == 0 or b_rows.num_rows == 0 else " on the method's tasks")
            + f"; the run has {have}")
    out = []
    for task in tasks:
        what = f"comparison {comp.name!r} on {task}"
        m_task, b_task = select(m_rows, {"task": task}), select(b_rows, {"task": task})
        common, dropped = pair_seeds(comp, task, m_task, b_task, trials)
        m = mt.curves_from_checkpoints(_with_seeds(m_task, common), f"{what} (method)")
        b = mt.curves_from_checkpoints(_with_seeds(b_task, common), f"{what} (baseline)")
        last = (int(m.steps.max()), int(b.steps.max()))
        h = mt.common_horizon(m.steps, b.steps, horizon)
        m, b = mt.shared_steps(mt.truncate(m, h), mt.truncate(b, h))
        h = int(m.steps.max())  # the last checkpoint both arms have (<= h; == h when they share every step)
        out.append(Pair(comp, task, m, b, h, last, dropped))
    return out


def _seeds(rows: pa.Table) -> set[int]:
    return {int(s) for s in rows.column("diffusion_seed").to_pylist()}


def _with_seeds(rows: pa.Table, seeds: list[int]) -> pa.Table:
    """The rows of ``rows`` whose ``diffusion_seed`` is in ``seeds``."""
    column = rows.column("diffusion_seed")
    return rows.filter(pc.is_in(column, pa.array(seeds, column.type)))


def pair_seeds(comp: Comparison, task: str, m_rows: pa.Table, b_rows: pa.Table,
               trials: pa.Table | None) -> tuple[list[int], tuple[DroppedSeed, ...]]:
    """(the diffusion seeds both arms' rows on ``task`` have, the `DroppedSeed` of every other seed).

    `AnalysisError` when the arms share no seed.
    """
    sm, sb = _seeds(m_rows), _seeds(b_rows)
    common = sorted(sm & sb)
    if not common:
        raise AnalysisError(f"comparison {comp.name!r} on {task}: the arms share no diffusion seed "
                            f"(method seeds {sorted(sm)}, baseline seeds {sorted(sb)})")
    dropped = []
    for s in sorted(sm ^ sb):
        arm, sel = ("method", comp.method) if s not in sm else ("baseline", comp.baseline)
        dropped.append(DroppedSeed(s, arm, missing_reason(trials, sel, task, s)))
    return common, tuple(dropped)


def missing_reason(trials: pa.Table | None, sel: dict[str, Any], task: str, seed: int) -> str:
    """Why the arm ``sel`` has no eval rows for ``seed`` on ``task``, from the trials table.

    Its trials (same task, seed and the selector's algo / train_guidance) with status ERROR give
    their ``failure_reason``; a trial in another state gives that state; no trial gives `NO_ROWS`,
    followed by any failed pretraining trial of that task and seed.
    """
    rows = [] if trials is None else [
        r for r in trials.to_pylist() if r["task"] == task and r["seed"] == seed
        and all(r[k] == sel[k] for k in ("algo", "train_guidance") if k in sel)]
    failed = [r for r in rows if r["status"] == "ERROR"]
    if failed:
        return "; ".join(f"trial {r['trial_id']} ({r['stage']}) failed: {r['failure_reason'] or 'no reason recorded'}"
                         for r in failed)
    if rows:
        return "; ".join(f"no rows for this seed (trial {r['trial_id']} is {r['status']})" for r in rows)
    pre = [] if trials is None else [
        r for r in trials.to_pylist() if r["task"] == task and r["seed"] == seed and r["status"] == "ERROR"
        and str(r["stage"]) == "pretrain"]
    return NO_ROWS + "".join(f"; pretraining trial {r['trial_id']} ({r['train_guidance']}) failed: "
                             f"{r['failure_reason'] or 'no reason recorded'}" for r in pre)


def dropped_text(dropped: tuple[DroppedSeed, ...]) -> str:
    """One line: ``seed 2 (no method rows: <reason>); ...`` ("" when nothing was dropped)."""
    return "; ".join(f"seed {d.seed} (no {d.missing_from} rows: {d.reason})" for d in dropped)
