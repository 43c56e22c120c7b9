"""The report's checks of the policies themselves: reference lines (random, zero action, no forward progress, the
dataset) on the report's scale, and degenerate-policy flags (`analysis.degenerate`) per arm and per comparison --
the flags whose arms' statistics `analysis.tables` refuses (`arm_reasons`)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analysis import plots
from analysis import tables as tb
from analysis.comparisons import Pair, selector_label, variant_selector
from analysis.context import Context
from analysis.degenerate import KINDS, DegenerateFlag, degenerate_flag, thresholds_text
from analysis.load import REFERENCE_KINDS, is_search_source, select, variants
from analysis.render import Section, p, table


def reference_lines_by_task(ctx: Context) -> dict[str, list[plots.ReferenceLine]]:
    """Per task, its reference lines with a score on the report's scale (none when the run has no references)."""
    refs = ctx.run.references
    if refs is None:
        return {}
    out: dict[str, list[plots.ReferenceLine]] = {}
    for r in refs.to_pylist():
        v = r[ctx.scale.column]
        if v is not None and np.isfinite(v) and r["reference"] in REFERENCE_KINDS:
            out.setdefault(r["task"], []).append(plots.ReferenceLine(r["reference"], float(v)))
    return out


def reference_lines(ctx: Context) -> Section:
    """The reference lines of every task on the report's scale (references.csv)."""
    title = ctx.titled("Reference lines")
    refs = ctx.run.references
    if refs is None or refs.num_rows == 0:
        return Section(title, [p("This run has no reference lines (results/references is absent: runs made before "
                                 "mdpt wrote them); the learning curves have none and the degenerate-policy checks "
                                 "use episode lengths and returns only.")])
    order = {k: i for i, k in enumerate(REFERENCE_KINDS)}
    rows = sorted(refs.to_pylist(), key=lambda r: (r["task"], order.get(r["reference"], 99)))
    view = pa.Table.from_pylist([{**r, "score_x100": r[ctx.scale.column],
                                  "ret": f"{r['return_mean']:.1f} ± {r['return_std']:.1f}"} for r in rows])
    csv = ctx.csv(view.drop_columns(["ret"]), "references.csv")
    missing = sorted({r["task"] for r in rows if r[ctx.scale.column] is None or not np.isfinite(r[ctx.scale.column])})
    caps = sorted({r["max_episode_steps"] for r in rows})
    return Section(title, [
        table(view, [("task", "Task"), ("reference", "Reference"), ("policy", "Policy"),
                     ("score_x100", "Score (×100)"), ("ret", "Return (mean ± std)"), ("length_mean", "Mean length"),
                     ("episodes", "Episodes"), ("source", "Source")]),
        p("Drawn on every learning curve. random = uniform random actions, stand_still = the zero action at every "
          f"step, each over a fixed seed's episodes capped at {', '.join(map(str, caps))} steps (the run's evaluation "
          "cap), measured once when the dataset was made (or at run start for datasets without them); dataset = the "
          "behaviour data's own episodes. The zero action does not stand still: on hopper, walker2d and ant the "
          "robot falls within ~20-40 steps, so its line is a floor, not a standing policy. no_progress = the most "
          "an episode can return without moving forward (the alive bonus at every step of the cap; computed, not "
          "measured; the alive bonus is +1 per step and every other reward term is a cost or the forward progress): "
          "a score above it proves the policy moved forward; below it, the score alone cannot tell (moving costs "
          "electricity, a large term on halfcheetah and walker2d: medium policies that do move score below it)."
          + (" On mdpt's scale the random policy is the 0 of the scale by definition (its reference score comes from "
             "more episodes, so this line is near, not at, 0)." if ctx.scale.name == "mdpt" else "")
          + (f" No {ctx.scale.label} score for {', '.join(missing)}." if missing else ""))], files=(csv,))


def _step_cap(ctx: Context, task: str) -> int | None:
    """The evaluation step cap of ``task``'s trials (their config's eval.max_steps), None when unknown."""
    caps = set()
    for r in ctx.run.trials.to_pylist():
        if r["task"] == task and r.get("config_json"):
            try:
                ev = json.loads(r["config_json"]).get("eval") or {}
            except (ValueError, AttributeError):
                continue
            if ev.get("max_steps"):
                caps.add(int(ev["max_steps"]))
    return max(caps) if caps else None


def arm_flag(ctx: Context, sel: dict, task: str, step: int | None = None,
             seeds: list[int] | None = None) -> DegenerateFlag:
    """`degenerate_flag` of the eval rows of ``sel`` on ``task`` (only ``seeds`` when given) at ``step``
    (default: the arm's last checkpoint), on the report's scale, with the run's reference lines."""
    rows = select(ctx.run.evals, {**sel, "task": task})
    if seeds is not None:
        rows = rows.filter(pc.is_in(rows.column("diffusion_seed"), pa.array(seeds, rows.column("diffusion_seed").type)))
    return degenerate_flag(rows, ctx.run.references, step=step, cap=_step_cap(ctx, task), score=ctx.scale.column)


def arm_reasons(ctx: Context) -> tb.ArmFlag:
    """The report's `analysis.tables.ArmFlag`: the reasons of `pair_flags` (the flags shown beside each
    comparison, judged at its horizon on its seeds), so the statistics refused are those of the arms shown
    as degenerate; computed once per pair."""
    cache: dict[int, tuple[str, str]] = {}

    def reasons(pr: Pair) -> tuple[str, str]:
        if id(pr) not in cache:
            cache[id(pr)] = tuple(f"{f.label}: {f.evidence}" if f.kind else ""  # type: ignore[assignment]
                                  for f in pair_flags(ctx, pr))
        return cache[id(pr)]

    return reasons


def pair_flags(ctx: Context, pr: Pair) -> tuple[DegenerateFlag, DegenerateFlag]:
    """The flags of a comparison's method and baseline arms at its horizon, on the seeds it compares."""
    return tuple(arm_flag(ctx, sel, pr.task, pr.horizon, pr.seeds)  # type: ignore[return-value]
                 for sel in (pr.comparison.method, pr.comparison.baseline))


def policy_checks(ctx: Context) -> Section:
    """Degenerate-policy flags of every arm (task × variant) at its last checkpoint (policy_checks.csv)."""
    rows = []
    for task in sorted(set(ctx.run.evals.column("task").to_pylist())):
        for v in variants(select(ctx.run.evals, {"task": task})):
            if is_search_source(v["infer_source"]):
                continue
            f = arm_flag(ctx, v, task)
            rows.append({"task": task, "variant": selector_label(variant_selector(v, ctx.run.evals)), "step": f.step,
                         "flag": f.kind or "", "flag_text": f.label or "–", "evidence": f.evidence})
    if not rows:
        return Section(ctx.titled("Degenerate-policy checks"), [p("No arm to check (only guidance-search rows).")])
    checks = pa.Table.from_pylist(rows)
    csv = ctx.csv(checks.drop_columns(["flag_text"]), "policy_checks.csv")
    flagged = [r for r in rows if r["flag"]]
    if flagged:
        lead = (f"**Warning: {len(flagged)} of {len(rows)} arm(s) are degenerate at their last checkpoint**: "
                + "; ".join(f"{r['task']} {r['variant']} {r['flag_text']} ({r['evidence']})" for r in flagged)
                + ". Comparisons that use them are marked in their tables.")
    else:
        lead = f"No arm is degenerate at its last checkpoint ({len(rows)} arm(s) checked)."
    return Section(ctx.titled("Degenerate-policy checks"), [
        p(lead), table(checks, [("task", "Task"), ("variant", "Variant"), ("step", "Step"), ("flag_text", "Flag"),
                                ("evidence", "Evidence")]),
        p(thresholds_text())], files=(csv,))


def flags_cell(method: DegenerateFlag, baseline: DegenerateFlag) -> str:
    """The "Degenerate arms" cell of a comparison row: M / B and the flag of each flagged arm, else "–"."""
    marks = [f"{arm}: {f.label}" for arm, f in (("M", method), ("B", baseline)) if f.flagged]
    return "; ".join(marks) or "–"


def degenerate_notes(rows: list[dict]) -> list[str]:
    """One sentence per comparisons.csv row with a degenerate arm (``flag_*`` columns): which arm, and why."""
    out = []
    for r in rows:
        arms = [f"{r[arm]} {KINDS[r[f'flag_{what}']]} ({r[f'flag_{what}_evidence']})"
                for arm, what in (("method", "method"), ("baseline", "baseline")) if r[f"flag_{what}"]]
        if arms:
            out.append(f"**Degenerate arm** in {r['comparison']} on {r['task']}: " + "; ".join(arms)
                       + ". The comparison is between policies that have not learned to act; read it as such.")
    return out
