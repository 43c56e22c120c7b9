"""The shipped specs resolve to the papers' protocol (reference/protocol.md, docs/protocol.md): arms, LR
horizons, the baseline critic's update, budgets; every spec inference key is an InferenceConfig field;
`--set` overrides are validated like the file; the D4RL bullet score by value."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from rl_core.config import D4RL_BULLET_REF_SCORES
from rl_core.errors import ConfigError
from rl_core.inference import InferenceConfig
from sweeps.expand import expand
from sweeps.overrides import apply_overrides
from sweeps.spec import load_spec, read_raw_spec, resolve, validate_spec

PAPER_SPECS = ("gfdt", "double_guidance", "cross_algorithm", "quickstart")


def _trials(name: str, scale: str = "paper", overrides: list[str] | None = None) -> list:
    stages = {s.name: s.items for s in expand(resolve(load_spec(name, overrides), scale))}
    return stages.get("pretrain", []) + stages["train"]


def test_gfdt_runs_the_six_arms_with_the_recipe_lr_horizon_not_the_run_length():
    train = [t for t in _trials("gfdt") if t.stage == "train"]
    assert {t.identity.train_guidance for t in train} == {"joint", "none", "bc", "noise", "frozen", "unfrozen"}
    dql = next(t for t in train if t.identity.algo == "dql" and t.identity.train_guidance == "joint")
    assert dql.train.steps == 100_000 and dql.train.algo_config["lr_anneal_steps"] == 200_000
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=dql.train.algo_config["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=dql.train.algo_config["lr_anneal_steps"])
    for _ in range(100_000):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.5e-4, rel=1e-3)  # still half the initial LR at step 100k


@pytest.mark.parametrize("name", PAPER_SPECS)
def test_joint_arms_of_the_paper_specs_use_the_reference_critic_update(name):
    joint = [t for t in _trials(name) if t.stage == "train" and t.identity.train_guidance in ("joint", "none")]
    assert joint
    for t in joint:
        g = t.train.guidance_config
        assert (g["target_update"], g["target_every"]) == ("cd_swapped", 5), t.label
        assert g["lr_anneal_steps"] is not None and g["lr_anneal_steps"] >= 200_000, t.label


def test_budgets_as_in_the_papers():
    dg = [t for t in _trials("double_guidance")]
    assert all(t.pretrain.steps == 1_000_000 for t in dg if t.stage == "pretrain")
    assert all(t.train.eval_every == 1200 and t.train.steps < 100_000 for t in dg if t.stage == "train")
    swg = _trials("swg")
    assert {t.pretrain.batch_size for t in swg if t.stage == "pretrain"} == {256}  # SWG-J critic_batch_size
    assert {t.train.batch_size for t in swg if t.stage == "train"} == {1024}
    idql = [t for t in _trials("cross_algorithm") if t.stage == "train" and t.identity.algo == "idql"]
    assert {t.eval.inference["n_candidates"] for t in idql} == {256}  # CleanDiffuser IDQL


def test_spec_inference_keys_are_exactly_the_inference_config_fields():
    """Every InferenceConfig field can be set in a spec and reaches the trial; nothing else is accepted."""
    values = {"method": "argmax", "scale": 3.0, "n_candidates": 7, "temperature": 0.25, "use_advantage": False,
              "q_target": False, "swg_select": "weight", "precision": "bf16"}
    assert set(values) == set(InferenceConfig.field_names())  # a new field must be added here (and works in specs)
    raw = apply_overrides(read_raw_spec("quickstart"), [f"eval.inference.dql.{k}={v}" for k, v in values.items()])
    inference = expand(resolve(validate_spec(raw), "smoke"))[1].items[0].eval.inference
    assert {k: inference[k] for k in values} == values
    with pytest.raises(ConfigError, match=r"`eval.inference.dql`: unknown key 'beam'"):
        validate_spec(apply_overrides(read_raw_spec("quickstart"), ["eval.inference.dql.beam=1"]))


@pytest.mark.parametrize("algo", ["dql", "idql", "edp", "swg"])
def test_spec_inference_defaults_are_the_algorithm_defaults(algo):
    """A spec without an inference block evaluates like `mdpt train` (InferenceConfig.for_algorithm)."""
    raw = dict(read_raw_spec("quickstart"), algorithms=[algo], train_guidance=["joint"], pretraining=[], eval={},
               algo_config={}, guidance_config={}, report={"comparisons": []})
    trial = expand(resolve(validate_spec(raw), "smoke"))[0].items[0]
    assert trial.eval.inference == InferenceConfig.defaults(algo).to_dict()
    assert InferenceConfig.defaults("idql").n_candidates == 256 and InferenceConfig.defaults("swg").method == "swg"


def test_argmax_rows_have_no_scale_whichever_command_made_them():
    """The eval key's infer_scale comes from one place: NaN for none / argmax (the `mdpt train` vs sweep drift)."""
    from trainables.results import EvalLabels, eval_key

    labels = EvalLabels(sweep="s", trial_id="t", task="hopper-medium", algo="dql", train_guidance="joint",
                        infer_source="self", diffusion_seed=0, guidance_seed=0, step=400)
    for method in ("argmax", "none"):
        inf = InferenceConfig(method=method, scale=100.0)
        assert math.isnan(inf.infer_scale) and math.isnan(eval_key(labels, inf.to_dict())[4])
    assert eval_key(labels, InferenceConfig(method="softmax", scale=100.0).to_dict())[4] == 100.0


def test_set_overrides_are_validated_like_the_file():
    spec = load_spec("quickstart", ["seeds=[0,1,2,3,4]", "budgets.smoke.steps=800", "tasks=[hopper-medium]"])
    assert spec["seeds"] == [0, 1, 2, 3, 4] and spec["budgets"]["smoke"]["steps"] == 800
    with pytest.raises(ConfigError, match=r"`budgets.smoke`: unknown key 'stepz'"):
        load_spec("quickstart", ["budgets.smoke.stepz=3"])
    with pytest.raises(ConfigError, match=r"`seeds\[1\]`: duplicate"):
        load_spec("quickstart", ["seeds=[1,1]"])
    with pytest.raises(ConfigError, match="expected PATH=VALUE"):
        load_spec("quickstart", ["seeds"])
    with pytest.raises(ConfigError, match="bad path"):
        load_spec("quickstart", ["budgets..quick=1"])


def test_d4rl_bullet_score_by_value():
    from rl_core.evaluation import evaluate

    class Still:
        def act(self, obs, generator):
            return np.zeros((len(obs), 3), dtype=np.float32)

    [r] = evaluate(Still(), "HopperBulletEnv-v0", episodes=1, seed=0, ref_min=0.0, ref_max=1000.0, max_steps=20)
    lo, hi = D4RL_BULLET_REF_SCORES["HopperBulletEnv-v0"]
    assert (lo, hi) == (20.058972, 1441.8059623430963)
    assert r.normalized_score == pytest.approx(100 * r.ret / 1000.0)
    assert r.normalized_score_d4rl == pytest.approx(100 * (r.ret - 20.058972) / (1441.8059623430963 - 20.058972))
    fields = {f.name for f in dataclasses.fields(r)}
    assert "normalized_score_d4rl" in fields


def test_an_embedded_ray_that_could_never_schedule_the_spec_fails_in_one_line():
    from sweeps.run import check_local_resources

    gfdt = resolve(load_spec("gfdt"), "smoke")  # cluster-sized: GPU trials and 8 GPU evaluators
    with pytest.raises(ConfigError, match=r"needs 18 CPUs and 2.5 GPUs; this machine has 2 and 0.*--set 'resources="):
        check_local_resources(gfdt, cpus=2, gpus=0)
    check_local_resources(resolve(load_spec("quickstart"), "smoke"), cpus=2, gpus=0)  # fits 2 cores
    small = ["resources={trial: {cpu: 0.75, gpu: 0}, evaluators: {count: 2, cpu: 0.25, gpu: 0}}"]
    check_local_resources(resolve(load_spec("gfdt", small), "smoke"), cpus=2, gpus=0)  # the suggested override fits
