"""The result-table contract: idempotent eval writes, de-duplicated train rows, schemas."""

import math

import pytest

from trainables.results import EVALS_SCHEMA, ResultStore


def _row(ep, step=400, ret=1.0, scale=100.0, precision="fp32"):
    return {
        "sweep": "s", "trial_id": "t1", "task": "hopper-medium", "algo": "dql", "train_guidance": "joint",
        "infer_source": "self", "infer_method": "softmax", "infer_scale": scale, "inference_precision": precision,
        "diffusion_seed": 0, "guidance_seed": 0, "step": step, "episode": ep, "eval_seed": 100 + ep, "return": ret,
        "normalized_score": 10.0 * ret, "normalized_score_d4rl": 9.0 * ret, "length": 1000, "wall_s": 1.5,
        "guidance_file": "",
    }


def test_eval_job_write_is_idempotent(tmp_path):
    store = ResultStore(tmp_path)
    store.write_eval_job([_row(0), _row(1)])
    store.write_eval_job([_row(0, ret=2.0), _row(1, ret=2.0)])  # a retried job replaces, never duplicates
    store.write_eval_job([_row(0, step=800), _row(1, step=800)])
    t = store.read("evals")
    assert t.schema == EVALS_SCHEMA
    assert t.num_rows == 4
    rows = [r for r in t.to_pylist() if r["step"] == 400]
    assert sorted(r["return"] for r in rows) == [2.0, 2.0]
    assert store.has_eval("t1", 400, "self", "softmax", 100.0, "fp32")
    assert not store.has_eval("t1", 1200, "self", "softmax", 100.0, "fp32")
    assert not store.has_eval("t1", 400, "self", "softmax", 100.0, "bf16")


def test_nan_scale_key_and_mixed_keys_rejected(tmp_path):
    store = ResultStore(tmp_path)
    store.write_eval_job([_row(0, scale=math.nan)])
    assert store.has_eval("t1", 400, "self", "softmax", math.nan, "fp32")
    with pytest.raises(ValueError, match="share the key"):
        store.write_eval_job([_row(0), _row(1, step=800)])
    with pytest.raises(ValueError, match="share the key"):
        store.write_eval_job([_row(0), _row(1, precision="bf16")])


def test_train_rows_dedup_last_write_wins(tmp_path):
    store = ResultStore(tmp_path)
    base = {"sweep": "s", "trial_id": "t1", "task": "x", "algo": "dql", "train_guidance": "joint", "seed": 0}
    store.write_train([{**base, "step": s, "metric": "loss/bc", "value": 1.0} for s in (100, 200)])
    store.write_train([{**base, "step": s, "metric": "loss/bc", "value": 2.0} for s in (200, 300)])
    t = store.read("train").to_pylist()
    assert sorted((r["step"], r["value"]) for r in t) == [(100, 1.0), (200, 2.0), (300, 2.0)]


def test_empty_run_reads_empty_tables(tmp_path):
    store = ResultStore(tmp_path)
    assert store.read("evals").num_rows == 0
    assert store.read("trials").num_rows == 0
