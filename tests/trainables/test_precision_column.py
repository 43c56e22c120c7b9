"""The evaluation's precision in the evals contract: ``inference_precision`` is part of the evaluation key, so
the same snapshot evaluated in fp32 and in bf16 keeps both evaluations (trainables writes two files, analysis
keeps both on de-duplication and never pools them); fp32 keys name the same files as before the column; tables
written before the column read it as "fp32" on both sides."""

from __future__ import annotations

import hashlib
import json
import math

import pyarrow.parquet as pq

from analysis.comparisons import selector_label, variant_selector
from analysis.load import load_run, select, variants
from analysis.metrics import checkpoint_stats
from rl_core.evaluation import EpisodeResult
from rl_core.inference import InferenceConfig
from tests.analysis.conftest import write_run
from trainables.results import EVAL_KEY, EvalLabels, ResultStore, eval_key, eval_rows, read_table

LABELS = EvalLabels(sweep="s", trial_id="t1", task="hopper-medium", algo="dql", train_guidance="joint",
                    infer_source="self", diffusion_seed=0, guidance_seed=0, step=400)
FP32 = InferenceConfig(method="softmax", scale=100.0).to_dict()
BF16 = InferenceConfig(method="softmax", scale=100.0, precision="bf16").to_dict()


def _results(score: float, n: int = 3) -> list[EpisodeResult]:
    return [EpisodeResult(e, 100 + e, 30.0 * (score + e), score + e, 1000) for e in range(n)]


def test_the_key_tells_the_precisions_apart_and_fp32_files_keep_their_names(tmp_path):
    assert EVAL_KEY[-1] == "inference_precision"
    assert eval_key(LABELS, FP32) == ("t1", 400, "self", "softmax", 100.0, "fp32")
    assert eval_key(LABELS, BF16) == ("t1", 400, "self", "softmax", 100.0, "bf16")
    store = ResultStore(tmp_path)
    fp32, bf16 = store.eval_path_for(LABELS, FP32), store.eval_path_for(LABELS, BF16)
    assert fp32 != bf16 and fp32.parent == bf16.parent
    # the file name of an fp32 evaluation is the one written before the precision joined the key
    before = hashlib.sha1(json.dumps(["t1", 400, "self", "softmax", "100.0"]).encode()).hexdigest()[:16]
    assert fp32.name == f"step00000400-{before}.parquet"
    # an inference dict recorded before InferenceConfig had `precision` evaluated in fp32
    old = {k: v for k, v in FP32.items() if k != "precision"}
    assert eval_key(LABELS, old) == eval_key(LABELS, FP32) and store.eval_path_for(LABELS, old) == fp32
    assert {r["inference_precision"] for r in eval_rows(LABELS, old, _results(1.0), 1.0, guidance=None,
                                                        run_dir=tmp_path)} == {"fp32"}


def test_fp32_and_bf16_evaluations_of_one_snapshot_are_both_kept_and_read_apart(tmp_path):
    store = ResultStore(tmp_path)
    for inference, score in ((FP32, 10.0), (BF16, 20.0)):
        rows = eval_rows(LABELS, inference, _results(score), 2.0, guidance=None, run_dir=tmp_path)
        assert {r["inference_precision"] for r in rows} == {inference["precision"]}
        store.write_eval_job(rows)
    store.write_eval_job(eval_rows(LABELS, BF16, _results(20.0), 2.0, guidance=None, run_dir=tmp_path))  # a retry
    assert len(list((tmp_path / "results" / "evals").rglob("*.parquet"))) == 2
    written = read_table(tmp_path, "evals").to_pylist()
    assert sorted((r["inference_precision"], r["episode"], r["normalized_score"]) for r in written) == [
        ("bf16", e, 20.0 + e) for e in range(3)] + [("fp32", e, 10.0 + e) for e in range(3)]

    run = load_run(tmp_path)  # the analysis side: pyarrow only, the column read by name
    assert run.evals.num_rows == 6  # de-duplication keeps both precisions' episodes
    assert [v["inference_precision"] for v in variants(run.evals)] == ["bf16", "fp32"]
    for precision, mean in (("fp32", 11.0), ("bf16", 21.0)):
        rows = select(run.evals, {"inference_precision": precision})
        assert sorted(rows.column("normalized_score").to_pylist()) == [mean - 1, mean, mean + 1]
    ckpt = checkpoint_stats(run.evals)  # one checkpoint row per precision, never pooled
    assert sorted(zip(ckpt.column("inference_precision").to_pylist(), ckpt.column("mean").to_pylist())) == [
        ("bf16", 21.0), ("fp32", 11.0)]
    labels = [selector_label(variant_selector(v, run.evals)) for v in variants(run.evals)]
    assert labels == ["dql/joint softmax s=100 bf16", "dql/joint softmax s=100"]


def test_tables_without_the_column_read_it_as_fp32_on_both_sides(tmp_path):
    run_dir = write_run(tmp_path / "run", seeds=(0, 1), steps=(400, 800), episodes=2)
    files = sorted((run_dir / "results" / "evals").rglob("*.parquet"))
    pq.write_table(pq.read_table(files[0]).drop_columns(["inference_precision"]), files[0])  # an older mdpt's file
    for column in (read_table(run_dir, "evals").column("inference_precision"),
                   load_run(run_dir).evals.column("inference_precision")):
        assert column.null_count == 0 and set(column.to_pylist()) == {"fp32"}
    for f in files[1:]:  # now only older files
        pq.write_table(pq.read_table(f).drop_columns(["inference_precision"]), f)
    old = load_run(run_dir).evals
    assert set(old.column("inference_precision").to_pylist()) == {"fp32"} and old.num_rows == 2 * 2 * 2 * 2
    # a bf16 evaluation written next to the old fp32 files stays apart from them
    write_run(tmp_path / "run", seeds=(0, 1), steps=(400, 800), episodes=2, precision="bf16")
    both = load_run(run_dir).evals
    assert both.num_rows == 2 * old.num_rows
    assert all(not math.isnan(x) for x in both.column("normalized_score").to_pylist())
    assert sorted({(v["train_guidance"], v["inference_precision"]) for v in variants(both)}) == [
        ("frozen", "bf16"), ("frozen", "fp32"), ("joint", "bf16"), ("joint", "fp32")]
