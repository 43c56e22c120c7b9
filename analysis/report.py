"""Build the report of a run directory: report.md, a self-contained report.html, CSV tables, PNG plots.

`build_report` reads only ``RUN_DIR/results`` (and run.json / spec.yaml for the comparisons),
computes the tables of `analysis.tables` and the plots of `analysis.plots`, and renders one list of
blocks (headings, paragraphs, tables, images) to both Markdown and HTML.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from analysis import aggregate as agg
from analysis import metrics as mt
from analysis import plots
from analysis import tables as tb
from analysis.errors import AnalysisError
from analysis.load import (SEARCH_SOURCE_PREFIX, RunData, comparisons_for, is_search_source, load_run,
                           plug_and_play_partners, select, selector_label, variant_selector, variants)

KIND_TITLES = {"gfdt": "GFDT (frozen pretrained guidance) vs baseline", "double_guidance": "Double guidance",
               "plug_and_play": "Plug-and-play guidance", "swg_scale": "SWG guidance-scale comparisons",
               "generic": "Other comparisons"}


@dataclass(frozen=True)
class Block:
    """One piece of the report: kind is "h1", "h2", "p", "table" or "img"."""

    kind: str
    text: str = ""
    rows: list[list[str]] | None = None  # table: header row first
    image: Path | None = None


# ----- formatting ------------------------------------------------------------------------------
def _fmt(v: object, col: str = "") -> str:
    """A table cell: percentages signed, p-values to 3 significant digits, scores to 2 decimals."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)) or not isinstance(v, float):
        return str(v)
    if col.endswith("pct"):
        return f"{v:+.1f}%"
    if col.endswith("_p") or "_p_" in col or col in ("p", "lo", "hi", "p_improvement") or "cles" in col:
        return f"{v:.3g}" if abs(v) >= 1e-3 else f"{v:.2e}"
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"


def _view(table: pa.Table, columns: list[tuple[str, str]]) -> list[list[str]]:
    """Header + formatted rows of the given (column, header) pairs."""
    return [[h for _, h in columns]] + [[_fmt(r.get(c), c) for c, _ in columns] for r in table.to_pylist()]


def _write_csv(table: pa.Table, path: Path) -> Path:
    """CSV of ``table``; nested columns (lists, structs, maps) are written as JSON text."""
    for i, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            text = [None if v is None else json.dumps(v, default=str) for v in table.column(i).to_pylist()]
            table = table.set_column(i, field.name, pa.array(text, pa.string()))
    pacsv.write_csv(table, path)
    return path


# ----- computations feeding the plots ---------------------------------------------------------
def _variant_curves(ckpt: pa.Table, selectors: list[dict]) -> dict[str, list[tuple[str, mt.Curves]]]:
    out: dict[str, list[tuple[str, mt.Curves]]] = {}
    for task in sorted(set(ckpt.column("task").to_pylist())):
        for sel in selectors:
            rows = select(ckpt, {**sel, "task": task})
            if rows.num_rows:
                out.setdefault(task, []).append(
                    (selector_label(sel), mt.curves_from_checkpoints(rows, f"{task}: {selector_label(sel)}")))
    return out


def _band(label: str, steps, center, spread, color: str | None = None) -> plots.Curve:
    return plots.Curve(label, steps, center, center - spread, center + spread, color)


def _plot_curves(by_task: dict[str, list[tuple[str, mt.Curves]]], out: Path, palette: dict[str, str]) -> list[Path]:
    def line(lab: str, c: mt.Curves, y: np.ndarray, spread: np.ndarray | None = None) -> plots.Curve:
        return _band(f"{lab} (n={len(c.runs)})", c.steps, y, np.full(y.shape, np.nan) if spread is None else spread,
                     palette[lab])

    lc = {t: [line(lab, c, mt.seed_mean(c), np.sqrt(mt.across_seed_var(c))) for lab, c in cs]
          for t, cs in by_task.items()}
    var = {t: ([line(lab, c, mt.within_run_var(c)) for lab, c in cs],
               [line(lab, c, mt.across_seed_var(c)) for lab, c in cs]) for t, cs in by_task.items()}
    return [plots.learning_curves(lc, out / "learning_curves.png", "± 1 std across seeds"),
            plots.variance_curves(var, out / "variance.png")]


# ----- the report ------------------------------------------------------------------------------
def build_report(run_dir: str | Path, out_dir: str | Path | None = None, compare: list[str] | None = None, *,
                 reps: int = 2000, seed: int = 0, alpha: float = 0.05, early_frac: float = 0.2,
                 horizon: int | None = None) -> Path:
    """Write the report of ``run_dir`` into ``out_dir`` (default RUN_DIR/report); returns report.md's path.

    ``compare``: ``METHOD:BASELINE`` shorthands; without them the spec's ``report.comparisons``
    or the default comparisons are used (`analysis.load.comparisons_for`). Explicit comparisons
    that cannot be computed raise (`MissingBaselineError`, ...), and so does every comparison when
    ``horizon`` is given; otherwise spec/default ones are left out with a note. Plug-and-play
    comparisons also get the guidance algorithm's own variant as a second baseline.
    ``reps`` bootstrap replications, seeded by ``seed``; ``early_frac`` of the horizon is "Early".
    """
    run = load_run(run_dir)
    rng_agg, rng_poi, rng_prof = np.random.default_rng(seed).spawn(3)
    comps = comparisons_for(run, compare)
    comps += plug_and_play_partners(comps, run.evals)
    ckpt = mt.checkpoint_stats(run.evals)
    pairs, skipped = tb.pair_curves(ckpt, comps, horizon, strict=bool(compare) or horizon is not None)
    out = Path(out_dir) if out_dir else run.run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    source = "--compare" if compare else "the sweep spec (report.comparisons)" if run.spec.get("comparisons") else \
        "the defaults (every training-guidance mode vs joint within an algorithm; recombined guidance vs own)"

    blocks = _header(run, ckpt) + _health(run, out)
    blocks += [Block("h2", "Comparisons"), Block("p", f"{len(comps)} comparison(s), from {source}; "
                     f"{len(pairs)} (comparison, task) pair(s) with data for both arms.")]
    blocks += [Block("p", f"Left out: {n}") for n in skipped]
    blocks += [Block("p", f"{p.comparison.name} on {p.task}: compared up to step {p.horizon}, the last checkpoint both "
                          f"arms reach (method evaluated up to {p.last_steps[0]}, baseline up to {p.last_steps[1]}).")
               for p in pairs if max(p.last_steps) > p.horizon]
    _write_csv(ckpt, out / "checkpoints.csv")
    if pairs:
        blocks += _comparison_sections(pairs, out, early_frac, alpha)
    selectors = _plotted_selectors(pairs, ckpt)
    palette = {selector_label(sel): f"C{i % 10}" for i, sel in enumerate(selectors)}
    blocks += [Block("h2", "Learning curves and variance")]
    blocks += [Block("img", cap, image=p) for p, cap in zip(
        _plot_curves(_variant_curves(ckpt, selectors), out, palette),
        ("Seed-mean normalized score per checkpoint; band = ± 1 std across seeds.",
         "Per-checkpoint variance within runs (across evaluation episodes, mean over seeds) and across seeds."))]
    if pairs:
        blocks += _aggregate_section(pairs, out, reps, palette, rng_agg, rng_poi, rng_prof)
    blocks += _swg_section(run, ckpt, out)
    blocks += _search_section(run, out)
    blocks += _definitions(early_frac, alpha, reps, seed)
    md = out / "report.md"
    md.write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, title=f"mdpt report: {run.spec.get('sweep') or run.run_dir.name}"))
    return md


def _plotted_selectors(pairs: list[tb.Pair], ckpt: pa.Table) -> list[dict]:
    seen: dict[str, dict] = {}
    for p in pairs:
        for sel in (p.comparison.baseline, p.comparison.method):
            seen.setdefault(selector_label(sel), sel)
    return list(seen.values()) or [variant_selector(v, ckpt) for v in variants(ckpt)
                                   if not is_search_source(v["infer_source"])]


def _header(run: RunData, ckpt: pa.Table) -> list[Block]:
    ev = run.evals
    tasks = sorted(set(ev.column("task").to_pylist()))
    steps = ckpt.column("step").to_numpy()
    n_search = sum(is_search_source(v["infer_source"]) for v in variants(ev))
    searched = f" ({n_search} of them guidance-search parameter sets)" if n_search else ""
    return [Block("h1", f"mdpt report: {run.spec.get('sweep') or run.run_dir.name}"),
            Block("p", f"Run directory `{run.run_dir}`. {ev.num_rows} evaluated episodes of "
                       f"{len(set(ev.column('trial_id').to_pylist()))} trial(s), {len(variants(ev))} variant(s){searched} on "
                       f"task(s) {', '.join(tasks)}; checkpoints at steps {int(steps.min())}..{int(steps.max())}."),
            Block("p", "Scores are D4RL-normalized returns ×100 (0 = random reference, 100 = expert reference); "
                       "every score column is on this scale (`_x100`), variances in (×100)² (`_x100sq`).")]


def _health(run: RunData, out: Path) -> list[Block]:
    blocks = [Block("h2", "Run status")]
    if run.trials.num_rows == 0:
        return blocks + [Block("p", "No trials table in results/trials: trial status unknown.")]
    counts = {}
    for s in run.trials.column("status").to_pylist():
        counts[s] = counts.get(s, 0) + 1
    health = tb.run_health_table(run.trials)
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    blocks.append(Block("p", f"{run.trials.num_rows} trial(s): {status}"
                        + ("." if health.num_rows == 0 else
                           f". **Warning: {health.num_rows} trial(s) failed, are unfinished or were restored from a "
                           "checkpoint**; their curves may be truncated or resumed (see run_health.csv).")))
    if health.num_rows:
        _write_csv(health, out / "run_health.csv")
        blocks.append(Block("table", rows=_view(health, [(c, c) for c in health.column_names])))
    return blocks


def _comparison_sections(pairs: list[tb.Pair], out: Path, early_frac: float, alpha: float) -> list[Block]:
    comp = tb.comparison_table(pairs, early_frac, alpha)
    _write_csv(comp, out / "comparisons.csv")
    cols = [("task", "Task"), ("method_mark", "Method"), ("baseline", "Baseline"), ("seeds", "Seeds M/B"),
            ("horizon_step", "Horizon (steps)"), ("peak_m_x100", "Peak M (×100)"), ("peak_b_x100", "Peak B (×100)"),
            ("peak_gain_pct", "Peak gain %"), ("auc_gain_pct", "AUC gain %"), ("early_m_x100", "Early M (×100)"),
            ("early_b_x100", "Early B (×100)"), ("early_gain_x100", "Early gain (×100)"),
            ("levene_w", "Levene F"), ("levene_p", "Levene p"), ("mwu_p_holm", "MWU p (Holm)"),
            ("mwu_cles", "CLES"), ("seed_test", "per-seed MWU p (method)"), ("seed_mwu_p_min", "min attainable p")]
    rows = comp.to_pylist()
    view = pa.Table.from_pylist([{**r, "method_mark": r["method"] + (" †" if r["significant"] else ""),
                                  "seeds": f"{r['runs_m']}/{r['runs_b']}",
                                  "seed_test": f"{_fmt(r['seed_mwu_p'], 'p')} ({r['seed_mwu_method']})"} for r in rows])
    blocks: list[Block] = []
    for kind, title in KIND_TITLES.items():
        sub = view.filter(pc.equal(view.column("kind"), kind))
        if sub.num_rows:
            blocks += [Block("h2", title), Block("table", rows=_view(sub, cols))]
    blocks.append(Block("p", f"† = two-sided Mann-Whitney U on the seed-mean checkpoint scores within the horizon, "
                             f"significant at α = {alpha} after Holm correction over all {len(rows)} comparison rows "
                             "(checkpoints of one run are autocorrelated: read it as descriptive). Levene = "
                             "Brown-Forsythe (center = median) on the same checkpoint scores. The per-seed test "
                             "compares one AUC per seed and is the inferential one; comparisons.csv holds U, "
                             "the exact/asymptotic method, CLES, rank-biserial r, the early-window test and all "
                             "Holm-adjusted p-values."))
    blocks += [Block("p", w) for w in _seed_warnings(rows, alpha)]
    var = tb.variance_table(pairs)
    _write_csv(var, out / "variance.csv")
    vcols = [("task", "Task"), ("method", "Method"), ("baseline", "Baseline"), ("level", "Variance")]
    for s, h in (("median", "Median Var"), ("iqr", "IQR"), ("max", "Max Var")):
        vcols += [(f"{s}_m_x100sq", f"{h} M"), (f"{s}_b_x100sq", f"{h} B"), (f"{s}_reduction_pct", f"{h} ↓%")]
    vcols += [("cv_m", "CV M"), ("cv_b", "CV B"), ("cv_reduction_pct", "CV ↓%")]
    blocks += [Block("h2", "Variance table (double-guidance layout)"), Block("table", rows=_view(var, vcols)),
               Block("p", "Statistics over the checkpoints within the horizon of the per-checkpoint variance, "
                          "(×100)² units: within-run = variance across evaluation episodes (ddof 0), mean over "
                          "seeds; across-seed = variance over seeds of the checkpoint means (ddof 1). "
                          "↓% = 100 (S_B − S_M)/S_B: positive means the method varies less.")]
    pnp = tb.plug_and_play_table(pairs, early_frac)
    if pnp.num_rows:
        _write_csv(pnp, out / "plug_and_play.csv")
        view = pa.Table.from_pylist([{**r, "fm": f"{r['final_m_x100']:.1f} ± {_fmt(r['final_m_std_x100'])}",
                                      "fb": f"{r['final_b_x100']:.1f} ± {_fmt(r['final_b_std_x100'])}"}
                                     for r in pnp.to_pylist()])
        blocks += [Block("h2", "Plug-and-play table"), Block("table", rows=_view(view, [
            ("task", "Task"), ("method", "Method"), ("baseline", "Baseline"), ("fm", "Final M (×100, ± std)"),
            ("fb", "Final B (×100, ± std)"), ("early_m_x100", "Early M (×100)"), ("early_b_x100", "Early B (×100)"),
            ("early_gain_x100", "Early gain (×100)"), ("steps_to_near_peak_m", "Steps to within 10% of B's peak, M"),
            ("steps_to_near_peak_b", "… B")]))]
    return blocks


def _seed_warnings(rows: list[dict], alpha: float) -> list[str]:
    """One sentence per test and distinct sample sizes whose smallest attainable p cannot be significant."""
    out, m = [], len(rows)
    tests = (("seed_mwu", "runs_m", "runs_b", "seeds", "per-seed test"),
             ("mwu", "checkpoints_m", "checkpoints_b", "checkpoints", "checkpoint test (†)"))
    for key, n_m, n_b, unit, test in tests:
        for nm, nb, pmin in sorted({(r[n_m], r[n_b], r[f"{key}_p_min"]) for r in rows
                                    if not r[f"{key}_can_reach_alpha"]}):
            why = (f"so the {test} cannot reach p < {alpha} even before correction" if pmin >= alpha else
                   f"so after Holm correction over {m} comparisons (which needs p < {alpha}/{m} = "
                   f"{_fmt(alpha / m, 'p')} for the smallest p) the {test} cannot be significant")
            out.append(f"**Too few {unit} for significance:** with {nm} vs {nb} {unit} the smallest attainable "
                       f"two-sided Mann-Whitney p-value is {_fmt(pmin, 'p')}, {why}. Read these rows as descriptive"
                       + ("; more seeds per arm (5 allow p = 0.0079, 10 allow p ≈ 2e-4) or fewer comparisons "
                          "are needed for a significant result." if unit == "seeds" else "."))
    return out


def _aggregate_section(pairs: list[tb.Pair], out: Path, reps: int, palette: dict[str, str],
                       rng_agg: np.random.Generator, rng_poi: np.random.Generator,
                       rng_prof: np.random.Generator) -> list[Block]:
    mats, tasks, notes = tb.score_matrices(pairs)
    blocks = [Block("h2", "Aggregates across tasks (rliable protocol)")]
    if not mats:
        return blocks + [Block("p", "No task is shared by every compared variant: no aggregate. " + " ".join(notes))]
    labels = [lab for lab in palette if lab in mats]
    mats = {lab: mats[lab] for lab in labels}
    aggt = tb.aggregate_table(mats, rng_agg, reps)
    poi = tb.improvement_table(pairs, mats, rng_poi, reps)
    _write_csv(aggt, out / "aggregates.csv")
    _write_csv(poi, out / "improvement.csv")
    note = f"{len(tasks)} task(s), final scores"
    r = aggt.to_pylist()
    metrics = {f"{n} (×100)": tuple(np.array([x[f"{k}{s}"] for x in r]) for s in ("_x100", "_lo", "_hi"))
               for k, n in (("iqm", "IQM"), ("mean", "Mean"), ("median", "Median"))}
    allv = np.concatenate([m.ravel() for m in mats.values()])
    taus = np.linspace(min(0.0, allv.min()), max(100.0, allv.max()), 81)
    cis = {lab: agg.bootstrap_ci(mats[lab], lambda s: agg.score_distribution(s, taus), rng_prof, max(200, reps // 10))
           for lab in labels}
    prof = [plots.Curve(lab, taus, ci.point, ci.lower, ci.upper, palette[lab]) for lab, ci in cis.items()]
    view = pa.Table.from_pylist([{**x, **{k: f"{_fmt(x[k + '_x100'])} [{_fmt(x[k + '_lo'])}, {_fmt(x[k + '_hi'])}]"
                                          for k in ("iqm", "mean", "median", "optimality_gap")}} for x in r])
    blocks += [Block("p", f"Per run, the final score (last checkpoint within the horizon); score matrices are "
                          f"(runs × tasks) over {', '.join(tasks)}. 95 % CIs: percentile stratified bootstrap "
                          f"({reps} replications, runs resampled within each task). " + " ".join(notes)),
               Block("table", rows=_view(view, [("variant", "Variant"), ("runs", "Runs"), ("tasks", "Tasks"),
                                                ("iqm", "IQM (×100) [95% CI]"), ("mean", "Mean [95% CI]"),
                                                ("median", "Median [95% CI]"),
                                                ("optimality_gap", "Optimality gap (γ=100) [95% CI]")])),
               Block("img", "IQM, mean and median of final scores with 95 % CIs.",
                     image=plots.interval_estimates([x["variant"] for x in r], metrics, out / "aggregates.png", note,
                                                   [palette[x["variant"]] for x in r])),
               Block("img", "Performance profiles: fraction of (run, task) final scores above τ.",
                     image=plots.performance_profiles(prof, out / "performance_profiles.png", note))]
    if poi.num_rows:
        blocks += [Block("p", "Probability of improvement P(method > baseline), averaged over tasks (Mann-Whitney "
                              "U / (n_M n_B) per task), with a 95 % CI from independent stratified bootstraps. "
                              "A CI that excludes 0.5 indicates an improvement (or a deterioration)."),
                   Block("table", rows=_view(poi, [("method", "Method"), ("baseline", "Baseline"),
                                                   ("tasks", "Tasks"), ("p_improvement", "P(M > B)"),
                                                   ("lo", "CI low"), ("hi", "CI high")]))]
    return blocks


def _swg_section(run: RunData, ckpt: pa.Table, out: Path) -> list[Block]:
    blocks: list[Block] = []
    if select(ckpt, {"infer_method": "swg"}).num_rows:
        swg = tb.swg_scale_table(ckpt)
        _write_csv(swg, out / "swg_scale.csv")
        by_task: dict[str, list[plots.Curve]] = {}
        rows = sorted(swg.to_pylist(), key=lambda r: r["infer_scale"])
        for key in sorted({(r["task"], r["algo"], r["train_guidance"], r["infer_source"]) for r in rows}):
            rs = [r for r in rows if (r["task"], r["algo"], r["train_guidance"], r["infer_source"]) == key]
            mean, std = (np.array([r[k] for r in rs]) for k in ("final_x100", "final_std_x100"))
            label = selector_label(dict(zip(("algo", "train_guidance", "infer_source"), key[1:])))
            by_task.setdefault(key[0], []).append(
                _band(label, np.array([r["infer_scale"] for r in rs]), mean, np.nan_to_num(std)))
        blocks += [Block("h2", "SWG guidance scale"),
                   Block("table", rows=_view(swg, [
                       ("task", "Task"), ("algo", "Algorithm"), ("train_guidance", "Training guidance"),
                       ("infer_source", "Guidance source"), ("infer_scale", "Scale s"), ("runs", "Seeds"),
                       ("last_step", "Last step"), ("final_x100", "Final (×100)"), ("final_std_x100", "± std"),
                       ("peak_x100", "Peak (×100)")])),
                   Block("img", "Final score against the SWG guidance scale (mean ± std over seeds).",
                         image=plots.score_vs_scale(by_task, out / "swg_scale.png", "SWG guidance scale s"))]
    return blocks


SEARCH_XLABEL = {"swg": "SWG guidance scale s", "gradient": "gradient-guidance scale λ",
                 "softmax": "softmax inverse temperature w (scale)"}


def _search_section(run: RunData, out: Path) -> list[Block]:
    """Guidance-scale search: best parameters per study (table + CSV) and objective vs scale (PNG)."""
    gs = run.guidance_search
    if gs is None or gs.num_rows == 0:
        return []
    _write_csv(gs, out / "guidance_search.csv")
    blocks = [Block("h2", "Guidance-scale search (Optuna)")]
    try:
        trials = tb.search_trials(gs)
    except AnalysisError as exc:
        return blocks + [Block("p", f"{exc}; its {gs.num_rows} row(s) are shown as written (first 30; all in "
                                    "guidance_search.csv)."),
                         Block("table", rows=_view(gs.slice(0, 30), [(c, c) for c in gs.column_names]))]
    best = tb.search_best_table(trials)
    _write_csv(best, out / "guidance_search_best.csv")
    n_fail = sum(r["state"] != "COMPLETE" for r in trials)
    n_ev = int(pc.sum(pc.starts_with(run.evals.column("infer_source"), SEARCH_SOURCE_PREFIX)).as_py() or 0)
    best_json = run.run_dir / "guidance_search" / "best.json"
    blocks.append(Block("p", (
        f"{len(trials)} finished trial(s) of {best.num_rows} {'study' if best.num_rows == 1 else 'studies'} from results/guidance_search "
        f"({len(trials) - n_fail} COMPLETE, {n_fail} FAIL; all rows in guidance_search.csv). Each trial evaluates one "
        "parameter set on one fixed snapshot per seed; objective = mean over seeds of the per-seed mean normalized "
        "score (×100). Their evaluation episodes are the evals rows with infer_source = `search:<study>…` "
        f"({n_ev} episodes): search trials, not compositions, so they get no default comparison and are not in "
        "the SWG scale table."
        + (" The best parameters as complete inference settings (a spec's `eval.inference.<algo>` entry) are in "
           "`guidance_search/best.json`." if best_json.exists() else ""))))
    view = pa.Table.from_pylist([{**r, "ci": "–" if np.isnan(r["ci_lo_x100"]) else
                                  f"[{_fmt(r['ci_lo_x100'])}, {_fmt(r['ci_hi_x100'])}]",
                                  "per_seed": ", ".join(f"{k}: {v:.1f}" for k, v in json.loads(r["per_seed_json"]).items())
                                  or "–", "range": "–" if np.isnan(r["scale_min"]) else
                                  f"{r['scale_min']:.4g} … {r['scale_max']:.4g}",
                                  "other": r["other_params"] or "–",
                                  "scale_txt": "–" if np.isnan(r["scale"]) else f"{r['scale']:.4g}"}
                                 for r in best.to_pylist()])
    blocks += [Block("h2", "Best scale per task and algorithm"),
               Block("table", rows=_view(view, [
                   ("task", "Task"), ("algo", "Algorithm"), ("train_guidance", "Training guidance"),
                   ("method", "Method"), ("study", "Study"), ("best_trial", "Best trial"), ("scale_txt", "Scale"),
                   ("other", "Other params"), ("objective_x100", "Objective (×100)"), ("ci", "95% CI over seeds"),
                   ("per_seed", "Per-seed scores (seed: ×100)"), ("trials_complete", "Trials complete"),
                   ("trials_failed", "Trials failed"), ("range", "Scales searched")])),
               Block("p", "Best = the COMPLETE trial with the highest objective (ties: the earliest trial). 95% CI = "
                          "Student-t interval over seeds, mean ± t(0.975, n−1)·sd/√n of the per-seed scores "
                          "(none with one seed); with 3 seeds it is wide. Failed trials count in the table only. "
                          "guidance_search_best.csv holds these rows.")]
    points = tb.search_points(trials)
    panels = []
    for key, pts in points.items():
        row = next(r for r in best.to_pylist() if tuple(r[k] for k in tb.STUDY_KEYS) == key)
        task, algo, tg, method, study = key
        seeds: dict[str, tuple[list, list]] = {}
        for p in pts:
            for sd, v in p["per_seed"].items():
                seeds.setdefault(sd, ([], []))[0].append(p["scale"])
                seeds[sd][1].append(v)
        arr = {k: np.array([p[k] for p in pts], float) for k in ("scale", "mean", "lo", "hi")}
        notes = ([f"{row['trials_failed']} failed trial(s) not shown"] if row["trials_failed"] else []) + \
            (["one seed: no CI"] if len(seeds) < 2 else [])
        panels.append(plots.ScalePanel(
            f"{task}: {algo}/{tg}, {method} (study {study})", SEARCH_XLABEL.get(method, f"{method} scale"),
            arr["scale"], arr["mean"], arr["lo"], arr["hi"],
            {sd: (np.array(x), np.array(y)) for sd, (x, y) in sorted(seeds.items(), key=lambda kv: tb._seed_order(kv[0]))},
            None if row["best_trial"] is None or np.isnan(row["scale"]) else (row["scale"], row["objective_x100"]),
            connect=not any(p["params"] for p in pts), note="; ".join(notes),
            point_labels=tuple(", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                                         for k, v in json.loads(p["params"]).items()) if p["params"] else ""
                               for p in pts)))
    if panels:
        multi = any(not pn.connect for pn in panels)
        blocks.append(Block("img", (
            "Objective (mean normalized score ×100 over seeds) against the searched scale, COMPLETE trials only: "
            "markers = per-seed scores, line = mean over seeds, band and whiskers = 95% Student-t CI over seeds "
            "at each scale (a parameter set evaluated twice counts each seed once), star = best trial; log x axis "
            "when the scales span more than 2 decades."
            + (" Where other parameters were searched too, points are not joined (see the table)." if multi else "")),
            image=plots.search_scale(panels, out / "guidance_search.png", "95% t-CI over seeds")))
    return blocks


def _definitions(early_frac: float, alpha: float, reps: int, seed: int) -> list[Block]:
    return [Block("h2", "Definitions"), Block("p", (
        "Per checkpoint k of a run: m_k = mean and v_k = variance (ddof 0) of the episode scores; m̄_k = mean of m_k "
        "over seeds. Horizon H = the last checkpoint both arms reach. Peak = max m̄_k; AUC = step-normalised "
        "trapezoid of m̄ (the time-averaged score); Early = mean m̄_k over t_k ≤ "
        f"{early_frac:g}·H (the first checkpoint when none is that early). Peak / AUC gain % = 100 (M − B)/|B|; "
        f"Early gain = E_M − E_B in score points (×100). Tests are two-sided at α = {alpha}; Mann-Whitney uses the "
        "exact null for small samples without ties, the exact permutation null for small samples with ties, else "
        "the tie- and continuity-corrected normal approximation. Bootstraps: "
        f"{reps} replications, seed {seed}."))]


# ----- rendering -------------------------------------------------------------------------------
def to_markdown(blocks: list[Block]) -> str:
    """Markdown with pipe tables; images are linked by file name (they sit beside report.md)."""
    parts = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            parts.append(("# " if b.kind == "h1" else "## ") + b.text)
        elif b.kind == "p":
            parts.append(b.text)
        elif b.kind == "table" and b.rows:
            esc = [[c.replace("|", "\\|") for c in row] for row in b.rows]
            parts.append("\n".join(["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(esc[0])]
                                   + ["| " + " | ".join(r) + " |" for r in esc[1:]]))
        elif b.kind == "img" and b.image:
            parts.append(f"![{b.text}]({b.image.name})\n\n*{b.text}*")
    return "\n\n".join(parts) + "\n"


def _inline_md(text: str) -> str:
    """HTML-escape, then render **bold** and `code` spans."""
    out = html.escape(text)
    for mark, tag in (("**", "strong"), ("`", "code")):
        pieces = out.split(mark)
        out = "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(pieces))
    return out


def to_html(blocks: list[Block], title: str) -> str:
    """One self-contained HTML page: images embedded as base64 PNG."""
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline_md(b.text)}</p>")
        elif b.kind == "table" and b.rows:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in b.rows[0])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b.rows[1:])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "img" and b.image:
            data = base64.b64encode(b.image.read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:3px 6px;text-align:right}th{background:#f3f3f3}img{max-width:100%}"
             "figcaption{font-size:0.9em;color:#555}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
