"""Statistics and reports over a run directory's Parquet results (pyarrow, numpy, scipy, matplotlib;
no torch, no Ray, nothing from rl_core or trainables).

Pipeline, one module per step: `load` (result tables, row selection) -> `metrics` (checkpoint
statistics, Peak / AUC / Early, variance series) -> `comparisons` (method vs baseline selectors,
the default comparisons, seed-paired curve pairs) -> `stats` (Mann-Whitney, Levene, Holm) and
`aggregate` (rliable-style IQM, bootstrap CIs, probability of improvement, profiles) -> `tables`
(the papers' tables as Arrow tables) -> `plots` (PNGs) -> `sections` (one builder per report
section) -> `render` (Markdown + HTML) -> `report` (`build_report`, the orchestrator). Bad input
raises `errors.AnalysisError` (one clear line; the ``mdpt`` CLI prints it).
"""
