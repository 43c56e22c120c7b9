"""The report's sections: one builder per section, each returning `analysis.render.Section` (title,
paragraphs / tables / figures, the CSV files it wrote).

Every builder takes an `analysis.context.Context` (the loaded run, its checkpoint statistics, the
comparison pairs, the output directory and the report options); builders write their CSV and PNG files into
``Context.out`` and compute nothing beyond calling `analysis.tables`, `analysis.metrics` and
`analysis.plots`. The reference-line and degenerate-policy sections are in `analysis.checks`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analysis import aggregate as agg
from analysis import budgets
from analysis import metrics as mt
from analysis import plots
from analysis import tables as tb
from analysis.comparisons import selector_label
from analysis.checks import degenerate_notes, flags_cell, pair_flags, reference_lines_by_task
from analysis.context import Context, plotted_selectors
from analysis.errors import AnalysisError
from analysis.load import SEARCH_SOURCE_PREFIX, is_search_source, select, variants
from analysis.render import Block, Section, fmt, img, p, table, write_csv
from analysis.scales import SCORE_SCALES
from analysis.stats import MIN_POINTS, NEAR_CONSTANT_REL

KIND_TITLES = {"gfdt": "GFDT (frozen pretrained guidance) vs baseline", "double_guidance": "Double guidance",
               "plug_and_play": "Plug-and-play guidance", "swg_scale": "SWG guidance-scale comparisons",
               "generic": "Other comparisons"}
SEARCH_XLABEL = {"swg": "SWG guidance scale s", "gradient": "gradient-guidance scale λ",
                 "softmax": "softmax inverse temperature w (scale)"}


# ----- header, run status, comparisons overview ---------------------------------------------------
def header(ctx: Context) -> Section:
    """Title, what the run holds, the score scale and the tasks it leaves out; writes checkpoints.csv."""
    ev, steps = ctx.run.evals, ctx.ckpt.column("step").to_numpy()
    tasks = sorted(set(ev.column("task").to_pylist()))
    n_search = sum(is_search_source(v["infer_source"]) for v in variants(ev))
    searched = f" ({n_search} of them guidance-search parameter sets)" if n_search else ""
    csv = ctx.csv(ctx.ckpt, "checkpoints.csv")
    other = next(sc for sc in SCORE_SCALES.values() if sc != ctx.scale)
    budget = budgets.budget_name(ctx.run.spec.get("scale"))  # run.json records the sweep's budget
    banner = budgets.banner(budget)
    return Section(f"mdpt report: {ctx.run.spec.get('sweep') or ctx.run.run_dir.name}", [
        *([p(banner)] if banner else []),
        p(f"Run directory `{ctx.run.run_dir}`. {ev.num_rows} evaluated episodes of "
          f"{len(set(ev.column('trial_id').to_pylist()))} trial(s), {len(variants(ev))} variant(s){searched} on "
          f"task(s) {', '.join(tasks)}; checkpoints at steps {int(steps.min())}..{int(steps.max())}"
          + (f"; budget `{budget}`." if budget else ".")),
        p(f"Scores: {ctx.scale.heading} = 100 (R − ref_min)/(ref_max − ref_min) of the episode return R, with "
          f"{ctx.scale.reference}: 0 = random reference, 100 = expert reference. Every score column, table and plot "
          "is on this scale "
          f"(`_x100`; variances in (×100)², `_x100sq`; the CSV files say so in `score_scale`). "
          f"`--score-scale {other.name}` shows the {other.label} instead."),
        *(p(f"Left out on the {ctx.scale.label}: {n}") for n in ctx.scale_notes)], level=1, files=(csv,))


def run_status(ctx: Context) -> Section:
    """Trial counts by status and the trials that failed, are unfinished or were restored (run_health.csv)."""
    trials = ctx.run.trials
    if trials.num_rows == 0:
        return Section("Run status", [p("No trials table in results/trials: trial status unknown.")])
    counts: dict[str, int] = {}
    for s in trials.column("status").to_pylist():
        counts[s] = counts.get(s, 0) + 1
    health = tb.run_health_table(trials)
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    blocks = [p(f"{trials.num_rows} trial(s): {status}" + ("." if health.num_rows == 0 else
              f". **Warning: {health.num_rows} trial(s) failed, are unfinished or were restored from a "
              "checkpoint**; their curves may be truncated or resumed (see run_health.csv)."))]
    if not health.num_rows:
        return Section("Run status", blocks)
    csv = write_csv(health, ctx.out / "run_health.csv")
    return Section("Run status", blocks + [table(health, [(c, c) for c in health.column_names])], files=(csv,))


def comparisons_overview(ctx: Context, n_comparisons: int, source: str, skipped: list[str]) -> Section:
    """How many comparisons, where they come from, which were left out, which horizons were cut."""
    blocks = [p(f"{n_comparisons} comparison(s), from {source}; "
                f"{len(ctx.pairs)} (comparison, task) pair(s) with data for both arms.")]
    blocks += [p(f"Left out: {n}") for n in skipped]
    blocks += [p(f"{pr.comparison.name} on {pr.task}: compared up to step {pr.horizon}, the last checkpoint both "
                 f"arms reach (method evaluated up to {pr.last_steps[0]}, baseline up to {pr.last_steps[1]}).")
               for pr in ctx.pairs if max(pr.last_steps) > pr.horizon]
    return Section("Comparisons", blocks)


# ----- comparison tables -----------------------------------------------------------------------
COMPARISON_COLUMNS = [
    ("task", "Task"), ("method_mark", "Method"), ("baseline", "Baseline"), ("seeds", "Seeds M/B"),
    ("dropped", "Seeds dropped"),
    ("horizon_step", "Horizon (steps)"), ("peak_m_x100", "Peak M (×100)"), ("peak_b_x100", "Peak B (×100)"),
    ("peak_gain_pct", "Peak gain %"), ("auc_gain_pct", "AUC gain %"), ("early_m_x100", "Early M (×100)"),
    ("early_b_x100", "Early B (×100)"), ("early_gain_x100", "Early gain (×100)"), ("levene_w", "Levene F"),
    ("levene_p", "Levene p"), ("mwu_p_holm", "MWU p (Holm)"), ("mwu_cles", "CLES"),
    ("seed_test", "per-seed MWU p (method)"), ("seed_mwu_p_min", "min attainable p"), ("flags", "Degenerate arms")]
NOT_COMPUTABLE = "not computable"  # the cell of a statistic refused on degenerate input (reason in a note)
TEST_NAMES = {"levene": "Levene", "mwu": "checkpoint MWU", "early_mwu": "early-window MWU", "seed_mwu": "per-seed MWU"}


def comparison_tables(ctx: Context) -> list[Section]:
    """One table per comparison kind (`KIND_TITLES`), the test notes under the last; writes comparisons.csv."""
    if not ctx.pairs:
        return []
    flags = [pair_flags(ctx, pr) for pr in ctx.pairs]  # comparison_table keeps the order of ctx.pairs
    comp = tb.comparison_table(ctx.pairs, ctx.early_frac, ctx.alpha, ctx.degenerate)
    for col, vals in (("flag_method", [m.kind or "" for m, _ in flags]), ("flag_baseline", [b.kind or "" for _, b in flags]),
                      ("flag_method_evidence", [m.evidence if m.kind else "" for m, _ in flags]),
                      ("flag_baseline_evidence", [b.evidence if b.kind else "" for _, b in flags])):
        comp = comp.append_column(col, pa.array(vals, pa.string()))
    csv = ctx.csv(comp, "comparisons.csv")
    rows = comp.to_pylist()
    view = pa.Table.from_pylist([{**r, "method_mark": r["method"] + (" †" if r["significant"] else ""),
                                  "seeds": f"{r['runs_m']}/{r['runs_b']}",
                                  "dropped": ", ".join(map(str, r["seeds_dropped"])) or "–",
                                  "seed_test": NOT_COMPUTABLE if r["seed_mwu_reason"] else
                                  f"{fmt(r['seed_mwu_p'], 'p')} ({r['seed_mwu_method']})",
                                  "flags": flags_cell(*f),
                                  **{c: NOT_COMPUTABLE for c, t in (("levene_w", "levene"), ("levene_p", "levene"),
                                                                    ("mwu_p_holm", "mwu"), ("mwu_cles", "mwu"))
                                     if r[f"{t}_reason"]}} for r, f in zip(rows, flags)])
    sections = []
    for kind, title in KIND_TITLES.items():
        sub = view.filter(pc.equal(view.column("kind"), kind))
        if sub.num_rows:
            sections.append(Section(ctx.titled(title), [table(sub, COMPARISON_COLUMNS)]
                                    + [p(t) for t in dropped_seed_notes(sub.to_pylist())]
                                    + [p(t) for t in not_computable_notes(sub.to_pylist())]
                                    + [p(t) for t in degenerate_notes(sub.to_pylist())]))
    sections[-1].blocks.append(p(
        f"† = two-sided Mann-Whitney U on the seed-mean checkpoint scores within the horizon, "
        f"significant at α = {ctx.alpha} after Holm correction over all {len(rows)} comparison rows "
        "(checkpoints of one run are autocorrelated: read it as descriptive). Levene = "
        "Brown-Forsythe (center = median) on the same checkpoint scores. The per-seed test "
        "compares one AUC per seed and is the inferential one; comparisons.csv holds U, "
        "the exact/asymptotic method, CLES, rank-biserial r, the early-window test and all "
        "Holm-adjusted p-values."))
    sections[-1].blocks.extend(p(w) for w in seed_warnings(rows, ctx.alpha))
    return [Section(s.title, s.blocks, files=(csv,) if i == 0 else ()) for i, s in enumerate(sections)]


def dropped_seed_notes(rows: list[dict]) -> list[str]:
    """One sentence per comparisons.csv row that dropped seeds: which, why, and the seeds compared."""
    return [f"**Seeds dropped** from {r['comparison']} on {r['task']}: {r['seeds_dropped_reasons']}; compared on "
            f"the seeds both arms have ({', '.join(map(str, r['seeds_used']))})." for r in rows if r["seeds_dropped"]]


def not_computable_notes(rows: list[dict]) -> list[str]:
    """One sentence per comparisons.csv row with a test refused on degenerate input: which tests and why."""
    out = []
    for r in rows:
        why = [f"{name}: {r[f'{key}_reason']}" for key, name in TEST_NAMES.items() if r[f"{key}_reason"]]
        if why:
            out.append(f"**Not computable** in {r['comparison']} on {r['task']} (degenerate input, no statistic "
                       f"shown): {'; '.join(why)}.")
    return out


def seed_warnings(rows: list[dict], alpha: float) -> list[str]:
    """One sentence per test and distinct sample sizes whose smallest attainable p cannot be significant.

    ``rows``: comparisons.csv rows (``runs_m/_b``, ``checkpoints_m/_b``, ``*_p_min``, ``*_can_reach_alpha``).
    """
    out, m = [], len(rows)
    tests = (("seed_mwu", "runs_m", "runs_b", "seeds", "per-seed test"),
             ("mwu", "checkpoints_m", "checkpoints_b", "checkpoints", "checkpoint test (†)"))
    for key, n_m, n_b, unit, test in tests:
        for nm, nb, pmin in sorted({(r[n_m], r[n_b], r[f"{key}_p_min"]) for r in rows
                                    if not r[f"{key}_can_reach_alpha"]}):
            why = (f"so the {test} cannot reach p < {alpha} even before correction" if pmin >= alpha else
                   f"so after Holm correction over {m} comparisons (which needs p < {alpha}/{m} = "
                   f"{fmt(alpha / m, 'p')} for the smallest p) the {test} cannot be significant")
            out.append(f"**Too few {unit} for significance:** with {nm} vs {nb} {unit} the smallest attainable "
                       f"two-sided Mann-Whitney p-value is {fmt(pmin, 'p')}, {why}. Read these rows as descriptive"
                       + ("; more seeds per arm (5 allow p = 0.0079, 10 allow p ≈ 2e-4) or fewer comparisons "
                          "are needed for a significant result." if unit == "seeds" else "."))
    return out


def variance(ctx: Context) -> list[Section]:
    """The double-guidance variance table (variance.csv); none without pairs. Statistics refused on degenerate
    input (`analysis.metrics.variance_comparison`) show as "not computable", with the reasons below the table."""
    if not ctx.pairs:
        return []
    var = tb.variance_table(ctx.pairs, ctx.degenerate, np.random.default_rng(ctx.seed), ctx.reps)
    csv = ctx.csv(var, "variance.csv")
    cols = [("task", "Task"), ("method", "Method"), ("baseline", "Baseline"), ("level", "Variance")]
    for s, h in (("median", "Median Var"), ("iqr", "IQR"), ("max", "Max Var")):
        cols += [(f"{s}_m_x100sq", f"{h} M"), (f"{s}_b_x100sq", f"{h} B"), (f"{s}_reduction_pct", f"{h} ↓%"),
                 (f"{s}_ci", "95% CI")]
    cols += [("cv_m", "CV M"), ("cv_b", "CV B"), ("cv_reduction_pct", "CV ↓%"), ("cv_ci", "95% CI")]
    rows = [{**r, **{f"{s}_ci": _interval(r[f"{s}_reduction_lo"], r[f"{s}_reduction_hi"]) for s in mt.VARIANCE_STATS}}
            for r in var.to_pylist()]
    def refused(r: dict) -> dict:  # the refused cells: every reduction with a reason, and NaN statistics beside it
        unit = {s: "" if s == "cv" else "_x100sq" for s in mt.VARIANCE_STATS}
        return {c: NOT_COMPUTABLE for s in mt.VARIANCE_STATS if r[f"{s}_reason"]
                for c in (f"{s}_reduction_pct", f"{s}_m{unit[s]}", f"{s}_b{unit[s]}")
                if c.endswith("_pct") or r[c] is None or np.isnan(r[c])}

    view = pa.Table.from_pylist([{**r, **refused(r)} for r in rows])
    notes = []
    for r in rows:
        why = {r[f"{s}_reason"] for s in mt.VARIANCE_STATS if r[f"{s}_reason"]}
        if why:
            stats_named = ", ".join(mt.VARIANCE_LABELS[s] for s in mt.VARIANCE_STATS if r[f"{s}_reason"])
            notes.append(f"**Not computable** ({r['method']} vs {r['baseline']} on {r['task']}, {r['level']}; "
                         f"{stats_named}): {'; '.join(sorted(why))}.")
    return [Section(ctx.titled("Variance table (double-guidance layout)"), [
        table(view, cols),
        p("Statistics over the checkpoints within the horizon of the per-checkpoint variance, "
          "(×100)² units: within-run = variance across evaluation episodes (ddof 0), mean over "
          "seeds; across-seed = variance over seeds of the checkpoint means (ddof 1). "
          "↓% = 100 (S_B − S_M)/S_B: positive means the method varies less; 95% CI = percentile bootstrap "
          f"over the runs ({ctx.reps} replications, seed {ctx.seed}; paired by seed when both arms have the same "
          "seeds), a range that holds 0 shows no reduction."), *(p(n) for n in notes)],
        files=(csv,))]


def _interval(lo: float | None, hi: float | None) -> str:
    """A reduction's interval as text, "–" when not computable."""
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "–"
    return f"[{lo:+.0f}%, {hi:+.0f}%]"


def plug_and_play(ctx: Context) -> list[Section]:
    """Final score ± std and early convergence of plug-and-play pairs (plug_and_play.csv); none without them."""
    pnp = tb.plug_and_play_table(ctx.pairs, ctx.early_frac)
    if not pnp.num_rows:
        return []
    csv = ctx.csv(pnp, "plug_and_play.csv")
    view = pa.Table.from_pylist([{**r, "fm": f"{r['final_m_x100']:.1f} ± {fmt(r['final_m_std_x100'])}",
                                  "fb": f"{r['final_b_x100']:.1f} ± {fmt(r['final_b_std_x100'])}"}
                                 for r in pnp.to_pylist()])
    return [Section(ctx.titled("Plug-and-play table"), [table(view, [
        ("task", "Task"), ("method", "Method"), ("baseline", "Baseline"), ("fm", "Final M (×100, ± std)"),
        ("fb", "Final B (×100, ± std)"), ("early_m_x100", "Early M (×100)"), ("early_b_x100", "Early B (×100)"),
        ("early_gain_x100", "Early gain (×100)"), ("steps_to_near_peak_m", "Steps to within 10% of B's peak, M"),
        ("steps_to_near_peak_b", "… B")])], files=(csv,))]


# ----- learning curves -------------------------------------------------------------------------
def _band(label: str, steps, center, spread, color: str | None = None) -> plots.Curve:
    return plots.Curve(label, steps, center, center - spread, center + spread, color)


def _variant_curves(ctx: Context) -> dict[str, list[tuple[str, mt.Curves]]]:
    """Per task, (label, curves) of every plotted variant that ran it."""
    out: dict[str, list[tuple[str, mt.Curves]]] = {}
    selectors = plotted_selectors(ctx.pairs, ctx.ckpt)
    for task in sorted(set(ctx.ckpt.column("task").to_pylist())):
        for sel in selectors:
            rows = select(ctx.ckpt, {**sel, "task": task})
            if rows.num_rows:
                out.setdefault(task, []).append(
                    (selector_label(sel), mt.curves_from_checkpoints(rows, f"{task}: {selector_label(sel)}")))
    return out


def learning_curves(ctx: Context) -> Section:
    """Seed-mean learning curves (± 1 std across seeds) and per-checkpoint variances (two PNGs)."""
    by_task = _variant_curves(ctx)

    def line(lab: str, c: mt.Curves, y: np.ndarray, spread: np.ndarray | None = None) -> plots.Curve:
        return _band(f"{lab} (n={len(c.runs)})", c.steps, y, np.full(y.shape, np.nan) if spread is None else spread,
                     ctx.palette[lab])

    lc = {t: [line(lab, c, mt.seed_mean(c), np.sqrt(mt.across_seed_var(c))) for lab, c in cs]
          for t, cs in by_task.items()}
    var = {t: ([line(lab, c, mt.within_run_var(c)) for lab, c in cs],
               [line(lab, c, mt.across_seed_var(c)) for lab, c in cs]) for t, cs in by_task.items()}
    refs = reference_lines_by_task(ctx)
    return Section(ctx.titled("Learning curves and variance"), [
        img(plots.learning_curves(lc, ctx.out / "learning_curves.png", "± 1 std across seeds", score=ctx.scale.axis,
                                  references=refs),
            f"Seed-mean {ctx.scale.heading} per checkpoint; band = ± 1 std across seeds"
            + ("; horizontal lines = the task's reference policies (dashed: zero action, dotted: random, thin "
               "solid: no forward progress (upper bound), dash-dot: the behaviour data; see Reference lines)."
               if refs else "; this run has no reference lines.")),
        img(plots.variance_curves(var, ctx.out / "variance.png", ylabel=ctx.scale.variance_axis),
            "Per-checkpoint variance within runs (across evaluation episodes, mean over seeds) and across seeds.")])


# ----- aggregates ------------------------------------------------------------------------------
def aggregates(ctx: Context, rng_agg: np.random.Generator, rng_poi: np.random.Generator,
               rng_prof: np.random.Generator) -> list[Section]:
    """rliable-style aggregates of final scores across tasks (aggregates.csv, improvement.csv, two PNGs)."""
    if not ctx.pairs:
        return []
    title = ctx.titled("Aggregates across tasks (rliable protocol)")
    mats, tasks, notes = tb.score_matrices(ctx.pairs)
    if not mats:
        return [Section(title, [p("No task is shared by every compared variant: no aggregate. " + " ".join(notes))])]
    labels = [lab for lab in ctx.palette if lab in mats]
    mats = {lab: mats[lab] for lab in labels}
    aggt = tb.aggregate_table(mats, rng_agg, ctx.reps)
    poi = tb.improvement_table(ctx.pairs, mats, rng_poi, ctx.reps)
    files = (ctx.csv(aggt, "aggregates.csv"), ctx.csv(poi, "improvement.csv"))
    note = f"{len(tasks)} task(s), final scores"
    r = aggt.to_pylist()
    view = pa.Table.from_pylist([{**x, **{k: f"{fmt(x[k + '_x100'])} [{fmt(x[k + '_lo'])}, {fmt(x[k + '_hi'])}]"
                                          for k in ("iqm", "mean", "median", "optimality_gap")}} for x in r])
    blocks = [
        p(f"Per run, the final score (last checkpoint within the horizon); score matrices are "
          f"(runs × tasks) over {', '.join(tasks)}. 95 % CIs: percentile stratified bootstrap "
          f"({ctx.reps} replications, runs resampled within each task). " + " ".join(notes)),
        table(view, [("variant", "Variant"), ("runs", "Runs"), ("tasks", "Tasks"), ("iqm", "IQM (×100) [95% CI]"),
                     ("mean", "Mean [95% CI]"), ("median", "Median [95% CI]"),
                     ("optimality_gap", "Optimality gap (γ=100) [95% CI]")]),
        img(_interval_plot(ctx, r, note), "IQM, mean and median of final scores with 95 % CIs."),
        img(_profile_plot(ctx, mats, labels, note, rng_prof),
            "Performance profiles: fraction of (run, task) final scores above τ.")]
    if poi.num_rows:
        blocks += [p("Probability of improvement P(method > baseline), averaged over tasks (Mann-Whitney "
                     "U / (n_M n_B) per task), with a 95 % CI from independent stratified bootstraps. "
                     "A CI that excludes 0.5 indicates an improvement (or a deterioration)."),
                   table(poi, [("method", "Method"), ("baseline", "Baseline"), ("tasks", "Tasks"),
                               ("p_improvement", "P(M > B)"), ("lo", "CI low"), ("hi", "CI high")])]
    return [Section(title, blocks, files=files)]


def _interval_plot(ctx: Context, rows: list[dict], note: str) -> Path:
    metrics = {f"{n} (×100)": tuple(np.array([x[f"{k}{s}"] for x in rows]) for s in ("_x100", "_lo", "_hi"))
               for k, n in (("iqm", "IQM"), ("mean", "Mean"), ("median", "Median"))}
    return plots.interval_estimates([x["variant"] for x in rows], metrics, ctx.out / "aggregates.png", note,
                                    [ctx.palette[x["variant"]] for x in rows], score=ctx.scale.axis)


def _profile_plot(ctx: Context, mats: dict[str, np.ndarray], labels: list[str], note: str,
                  rng: np.random.Generator) -> Path:
    allv = np.concatenate([m.ravel() for m in mats.values()])
    taus = np.linspace(min(0.0, allv.min()), max(100.0, allv.max()), 81)
    cis = {lab: agg.bootstrap_ci(mats[lab], lambda s: agg.score_distribution(s, taus), rng, max(200, ctx.reps // 10))
           for lab in labels}
    prof = [plots.Curve(lab, taus, ci.point, ci.lower, ci.upper, ctx.palette[lab]) for lab, ci in cis.items()]
    return plots.performance_profiles(prof, ctx.out / "performance_profiles.png", note, score=ctx.scale.axis)


# ----- SWG scales, guidance search, definitions --------------------------------------------------
def swg_scale(ctx: Context) -> list[Section]:
    """Final score against the SWG guidance scale (swg_scale.csv, swg_scale.png); none without SWG rows."""
    if not select(ctx.ckpt, {"infer_method": "swg"}).num_rows:
        return []
    swg = tb.swg_scale_table(ctx.ckpt)
    csv = ctx.csv(swg, "swg_scale.csv")
    by_task: dict[str, list[plots.Curve]] = {}
    rows = sorted(swg.to_pylist(), key=lambda r: r["infer_scale"])
    for key in sorted({(r["task"], r["algo"], r["train_guidance"], r["infer_source"]) for r in rows}):
        rs = [r for r in rows if (r["task"], r["algo"], r["train_guidance"], r["infer_source"]) == key]
        mean, std = (np.array([r[k] for r in rs]) for k in ("final_x100", "final_std_x100"))
        label = selector_label(dict(zip(("algo", "train_guidance", "infer_source"), key[1:])))
        by_task.setdefault(key[0], []).append(
            _band(label, np.array([r["infer_scale"] for r in rs]), mean, np.nan_to_num(std)))
    return [Section(ctx.titled("SWG guidance scale"), [
        table(swg, [("task", "Task"), ("algo", "Algorithm"), ("train_guidance", "Training guidance"),
                    ("infer_source", "Guidance source"), ("infer_scale", "Scale s"), ("runs", "Seeds"),
                    ("last_step", "Last step"), ("final_x100", "Final (×100)"), ("final_std_x100", "± std"),
                    ("peak_x100", "Peak (×100)")]),
        img(plots.score_vs_scale(by_task, ctx.out / "swg_scale.png", "SWG guidance scale s", score=ctx.scale.axis),
            "Final score against the SWG guidance scale (mean ± std over seeds).")], files=(csv,))]


def guidance_search(ctx: Context) -> list[Section]:
    """Guidance-scale search: best parameters per study (table + CSV) and objective vs scale (PNG)."""
    gs = ctx.run.guidance_search
    if gs is None or gs.num_rows == 0:
        return []
    mdpt = SCORE_SCALES["mdpt"]  # the search objective is computed from normalized_score (trainables/search.py)
    title = f"Guidance-scale search (Optuna) — {mdpt.heading}"
    raw = write_csv(gs, ctx.out / "guidance_search.csv")
    try:
        trials = tb.search_trials(gs)
    except AnalysisError as exc:
        return [Section(title, [p(f"{exc}; its {gs.num_rows} row(s) are shown as written (first 30; all in "
                                  "guidance_search.csv)."),
                                table(gs.slice(0, 30), [(c, c) for c in gs.column_names])], files=(raw,))]
    best = tb.search_best_table(trials)
    csv = ctx.csv(best, "guidance_search_best.csv", mdpt)
    best_sec = Section(f"Best scale per task and algorithm — {mdpt.heading}", [
        table(_search_view(best), [
            ("task", "Task"), ("algo", "Algorithm"), ("train_guidance", "Training guidance"),
            ("method", "Method"), ("study", "Study"), ("best_trial", "Best trial"), ("scale_txt", "Scale"),
            ("other", "Other params"), ("objective_x100", "Objective (×100)"), ("ci", "95% CI over seeds"),
            ("per_seed", "Per-seed scores (seed: ×100)"), ("trials_complete", "Trials complete"),
            ("trials_failed", "Trials failed"), ("range", "Scales searched")]),
        p("Best = the COMPLETE trial with the highest objective (ties: the earliest trial). 95% CI = "
          "Student-t interval over seeds, mean ± t(0.975, n−1)·sd/√n of the per-seed scores "
          "(none with one seed); with 3 seeds it is wide. Failed trials count in the table only. "
          "guidance_search_best.csv holds these rows.")], files=(csv,))
    panels = _search_panels(trials, best)
    if panels:
        best_sec.blocks.append(_search_figure(ctx, panels))
    return [Section(title, [_search_summary(ctx, trials, best)], files=(raw,)), best_sec]


def _search_summary(ctx: Context, trials: list[dict], best: pa.Table) -> Block:
    n_fail = sum(r["state"] != "COMPLETE" for r in trials)
    n_ev = int(pc.sum(pc.starts_with(ctx.run.evals.column("infer_source"), SEARCH_SOURCE_PREFIX)).as_py() or 0)
    best_json = ctx.run.run_dir / "guidance_search" / "best.json"
    return p(
        f"{len(trials)} finished trial(s) of {best.num_rows} {'study' if best.num_rows == 1 else 'studies'} from "
        f"results/guidance_search ({len(trials) - n_fail} COMPLETE, {n_fail} FAIL; all rows in guidance_search.csv). "
        "Each trial evaluates one parameter set on one fixed snapshot per seed; objective = mean over seeds of the "
        f"per-seed mean {SCORE_SCALES['mdpt'].axis}"
        + ("" if ctx.scale.name == "mdpt" else f"; the search scores on the mdpt scale, not the {ctx.scale.label}")
        + ". Their evaluation episodes are the evals rows with infer_source = "
        f"`search:<study>…` ({n_ev} episodes): search trials, not compositions, so they get no default comparison "
        "and are not in the SWG scale table."
        + (" The best parameters as complete inference settings (a spec's `eval.inference.<algo>` entry) are in "
           "`guidance_search/best.json`." if best_json.exists() else ""))


def _search_view(best: pa.Table) -> pa.Table:
    return pa.Table.from_pylist([{
        **r, "ci": "–" if np.isnan(r["ci_lo_x100"]) else f"[{fmt(r['ci_lo_x100'])}, {fmt(r['ci_hi_x100'])}]",
        "per_seed": ", ".join(f"{k}: {v:.1f}" for k, v in json.loads(r["per_seed_json"]).items()) or "–",
        "range": "–" if np.isnan(r["scale_min"]) else f"{r['scale_min']:.4g} … {r['scale_max']:.4g}",
        "other": r["other_params"] or "–", "scale_txt": "–" if np.isnan(r["scale"]) else f"{r['scale']:.4g}"}
        for r in best.to_pylist()])


def _search_panels(trials: list[dict], best: pa.Table) -> list[plots.ScalePanel]:
    """One `plots.ScalePanel` per study with COMPLETE trials."""
    panels = []
    for key, pts in tb.search_points(trials).items():
        row = next(r for r in best.to_pylist() if tuple(r[k] for k in tb.STUDY_KEYS) == key)
        task, algo, tg, method, study = key
        seeds: dict[str, tuple[list, list]] = {}
        for pt in pts:
            for sd, v in pt["per_seed"].items():
                seeds.setdefault(sd, ([], []))[0].append(pt["scale"])
                seeds[sd][1].append(v)
        arr = {k: np.array([pt[k] for pt in pts], float) for k in ("scale", "mean", "lo", "hi")}
        notes = ([f"{row['trials_failed']} failed trial(s) not shown"] if row["trials_failed"] else []) + \
            (["one seed: no CI"] if len(seeds) < 2 else [])
        panels.append(plots.ScalePanel(
            f"{task}: {algo}/{tg}, {method} (study {study})", SEARCH_XLABEL.get(method, f"{method} scale"),
            arr["scale"], arr["mean"], arr["lo"], arr["hi"],
            {sd: (np.array(x), np.array(y))
             for sd, (x, y) in sorted(seeds.items(), key=lambda kv: tb._seed_order(kv[0]))},
            None if row["best_trial"] is None or np.isnan(row["scale"]) else (row["scale"], row["objective_x100"]),
            connect=not any(pt["params"] for pt in pts), note="; ".join(notes),
            point_labels=tuple(", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                                         for k, v in json.loads(pt["params"]).items()) if pt["params"] else ""
                               for pt in pts)))
    return panels


def _search_figure(ctx: Context, panels: list[plots.ScalePanel]) -> Block:
    multi = any(not pn.connect for pn in panels)
    return img(plots.search_scale(panels, ctx.out / "guidance_search.png", "95% t-CI over seeds",
                                  score=SCORE_SCALES["mdpt"].axis), (
        f"Objective (mean over seeds, {SCORE_SCALES['mdpt'].axis}) against the searched scale, COMPLETE trials only: "
        "markers = per-seed scores, line = mean over seeds, band and whiskers = 95% Student-t CI over seeds "
        "at each scale (a parameter set evaluated twice counts each seed once), star = best trial; log x axis "
        "when the scales span more than 2 decades."
        + (" Where other parameters were searched too, points are not joined (see the table)." if multi else "")))


def definitions(ctx: Context) -> Section:
    """The metric and test definitions with this report's parameters."""
    return Section("Definitions", [p(
        f"Scores: {ctx.scale.heading}, ×100. Per checkpoint k of a run: m_k = mean and v_k = variance (ddof 0) of "
        "the episode scores; m̄_k = mean of m_k over seeds. Horizon H = the last checkpoint both arms reach. "
        "Peak = max m̄_k; AUC = step-normalised trapezoid of m̄ (the time-averaged score); Early = mean m̄_k over "
        f"t_k ≤ {ctx.early_frac:g}·H (the first checkpoint when none is that early). Peak / AUC gain % = "
        f"100 (M − B)/|B|; Early gain = E_M − E_B in score points (×100). Tests are two-sided at α = {ctx.alpha}; "
        "Mann-Whitney uses the exact null for small samples without ties, the exact permutation null for small "
        "samples with ties, else the tie- and continuity-corrected normal approximation. Statistics on degenerate "
        "input are not computed (\"not computable\", with the reason): Levene with fewer than "
        f"{MIN_POINTS['levene']} values per arm, variance statistics over fewer than {MIN_POINTS['variance']} "
        "checkpoints, any test or variance statistic on an arm flagged degenerate, on constant or tied values, or on "
        f"variances that are zero within numerical noise (values within {NEAR_CONSTANT_REL:g} × the scores' scale, "
        "max(1, largest |score|), count as equal). Bootstraps: "
        f"{ctx.reps} replications, seed {ctx.seed}.")])
