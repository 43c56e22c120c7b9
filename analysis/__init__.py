"""Statistics and reports over a run directory's Parquet results (pyarrow, numpy, scipy, matplotlib;
no torch, no Ray, no trainables import).

Pipeline, one module per step: `load` (result tables, selectors, comparisons) -> `metrics`
(checkpoint statistics, Peak / AUC / Early, variance series) -> `stats` (Mann-Whitney, Levene,
Holm) and `aggregate` (rliable-style IQM, bootstrap CIs, probability of improvement, profiles)
-> `tables` (the papers' tables as Arrow tables) -> `plots` (PNGs) -> `report` (Markdown + HTML).
"""
