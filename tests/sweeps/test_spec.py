"""Spec validation (errors name the field path, the bad value and the allowed values) and expansion."""

import copy
import json

import pytest
import yaml

from rl_core.errors import ConfigError
from sweeps.expand import expand
from sweeps.spec import dump_spec, load_spec, packaged_specs, resolve, validate_spec

BASE = {
    "name": "t",
    "tasks": ["hopper-medium"],
    "algorithms": ["dql"],
    "train_guidance": ["joint", "frozen"],
    "seeds": [0, 1],
    "pretraining": [{"algo": "dql"}],
    "budgets": {
        "quick": {"steps": 800, "eval_every": 400, "episodes": 2, "pretrain_steps": 400},
        "paper": {"steps": 100000, "eval_every": 400, "episodes": 50, "pretrain_steps": 1000000},
    },
}


def _with(path: str, value):
    spec = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = spec
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[int(last) if last.isdigit() else last] = value
    return spec


@pytest.mark.parametrize(
    "path,value,expected",
    [
        ("algorithms", ["dql", "sac"], ["`algorithms[1]`", "'sac'", "['dql', 'idql', 'edp', 'swg']"]),
        ("budgets.quick.steps", -5, ["`budgets.quick.steps`", "-5", "an integer >= 1"]),
        ("budgets.quick.steps", 1000, ["`budgets.quick.steps`", "a multiple of eval_every (400)"]),
        ("train_guidance", ["joint", "frozn"], ["`train_guidance[1]`", "'frozn'", "'unfrozen'"]),
        ("tasks", ["hopper-meduim"], ["`tasks[0]`", "'hopper-meduim'", "'hopper-medium'"]),
        ("seeds", [0, 0], ["`seeds[1]`", "duplicate"]),
        ("eval", {"inference": {"dql": {"method": "beam"}}}, ["`eval.inference.dql.method`", "'softmax'"]),
        ("resources", {"trial": {"cpus": 2}}, ["`resources.trial`", "'cpus'", "['cpu', 'gpu']"]),
        ("pretraining", [{"algo": "dql", "kind": "sarsa"}], ["`pretraining[0].kind`", "['td', 'iql']"]),
        ("training", {"precision": "fp16"}, ["`training.precision`", "'fp16'", "['fp32', 'bf16']"]),
        ("training", {"compile": "yes"}, ["`training.compile`", "'yes'", "true or false"]),
        ("training", {"compile": 1}, ["`training.compile`", "bad value 1", "true or false"]),
        ("training", {"precison": "bf16"}, ["`training`", "unknown key 'precison'", "['precision', 'compile']"]),
        ("eval", {"inference": {"dql": {"precision": "fp16"}}}, ["`eval.inference.dql.precision`", "'fp16'", "bf16"]),
    ],
)
def test_bad_field_names_path_value_and_allowed(path, value, expected):
    with pytest.raises(ConfigError) as err:
        validate_spec(_with(path, value))
    for text in expected:
        assert text in str(err.value)


def test_unknown_top_level_key_lists_allowed_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'algoritms'; allowed keys: \['name'"):
        validate_spec(dict(BASE, algoritms=["dql"]))


def test_frozen_mode_needs_pretraining_for_every_seed():
    with pytest.raises(ConfigError, match="needs a `pretraining` entry with `algo: dql`"):
        validate_spec(_with("pretraining", []))
    with pytest.raises(ConfigError, match=r"`pretraining\[0\].seeds`.*missing \[1\]"):
        validate_spec(_with("pretraining", [{"algo": "dql", "seeds": [0]}]))


def test_recombination_validation():
    double = {"name": "d", "kind": "double_guidance", "diffusion": {"algo": "dql", "train_guidance": "joint"},
              "guidance": {"trained": {"algo": "dql", "train_guidance": "joint"}}, "seed_shift": 2}
    with pytest.raises(ConfigError, match=r"`recombination\[0\].seed_shift`: bad value 2"):
        validate_spec(_with("recombination", [double]))
    cross = dict(double, kind="cross_algorithm", seed_shift=0)
    with pytest.raises(ConfigError, match=r"`recombination\[0\].guidance`.*other than 'dql'"):
        validate_spec(_with("recombination", [cross]))
    bad_ref = dict(double, seed_shift=1, guidance={"pretrained": "nope"})
    with pytest.raises(ConfigError, match=r"`recombination\[0\].guidance.pretrained`.*\['dql_td'\]"):
        validate_spec(_with("recombination", [bad_ref]))


def test_expansion_into_stages():
    spec = validate_spec(_with("recombination", [
        {"name": "d", "kind": "double_guidance", "diffusion": {"algo": "dql", "train_guidance": "frozen"},
         "guidance": {"pretrained": "dql_td"}, "match": "step"}]))
    stages = expand(resolve(spec, "quick"))
    assert [s.name for s in stages] == ["pretrain", "train", "recombine", "report"]
    pre, train, rec, _ = stages
    assert [(p.identity.train_guidance, p.identity.seed, p.pretrain.steps) for p in pre.items] == [
        ("pretrain:dql_td", 0, 400), ("pretrain:dql_td", 1, 400)]
    assert len(train.items) == 4
    assert {(t.identity.train_guidance, t.identity.pretrained) for t in train.items} == {("joint", None),
                                                                                        ("frozen", "dql_td")}
    assert all(t.train.steps == 800 and t.eval.episodes == 2 for t in train.items)
    assert rec.items[0]["task"] == "hopper-medium" and rec.items[0]["seed_shift"] == 1
    paper = expand(resolve(spec, "paper"))[1].items[0]
    assert (paper.train.steps, paper.train.eval_every, paper.eval.episodes) == (100000, 400, 50)


def test_scale_by_task_and_resolved_round_trip():
    spec = validate_spec(_with("eval", {"inference": {"dql": {"scale": 50, "scale_by_task": {"hopper-medium": 7}}}}))
    resolved = resolve(spec, "quick")
    assert expand(resolved)[1].items[0].eval.inference["scale"] == 7.0
    again = validate_spec(yaml.safe_load(dump_spec(resolved)))
    assert again == resolved and again["budget"]["steps"] == 800


@pytest.mark.parametrize("name", ["quickstart", "gfdt", "double_guidance", "cross_algorithm", "swg"])
def test_packaged_specs_validate_at_both_scales(name):
    assert name in packaged_specs()
    spec = load_spec(name)
    for scale in ("quick", "paper"):
        stages = expand(resolve(spec, scale))
        assert [s.name for s in stages][-1] == "report"
    paper = spec["budgets"]["paper"]
    assert paper["eval_every"] == (1200 if name == "double_guidance" else 400) and paper["episodes"] == 50


def test_quickstart_is_dql_joint_vs_frozen_with_pretraining():
    spec = load_spec("quickstart")
    stages = {s.name: s.items for s in expand(resolve(spec, "quick"))}
    assert spec["tasks"] == ["hopper-medium"] and spec["seeds"] == [0, 1, 2]
    assert len(stages["pretrain"]) == 3 and len(stages["train"]) == 6



def _trials(spec: dict) -> list:
    return next(s for s in expand(resolve(spec, "quick")) if s.name == "train").items


def test_training_precision_and_compile_default_to_fp32_eager_and_reach_every_trial():
    spec = validate_spec(BASE)
    assert spec["training"] == {"precision": "fp32", "compile": False}
    assert {(t.train.precision, t.train.compile, t.eval.inference["precision"]) for t in _trials(spec)} == {
        ("fp32", False, "fp32")}
    spec = validate_spec(_with("training", {"precision": "bf16", "compile": True}))
    trials = _trials(spec)
    assert len(trials) == 4 and {(t.train.precision, t.train.compile) for t in trials} == {("bf16", True)}
    assert {t.eval.inference["precision"] for t in trials} == {"fp32"}  # evaluation precision is its own setting
    again = validate_spec(yaml.safe_load(dump_spec(resolve(spec, "quick"))))  # RUN_DIR/spec.yaml records it
    assert again["training"] == {"precision": "bf16", "compile": True}


def test_precisions_set_from_the_command_line_land_in_the_trials_config_json():
    """``--set`` on a packaged spec -> TrialSpec -> the trials row's config_json (what `mdpt sweep` records)."""
    from trainables.results import trial_row
    from trainables.trial import TrialSpec

    spec = load_spec("quickstart", ["training.precision=bf16", "eval.inference.dql.precision=bf16"])
    for t in _trials(spec):
        config = json.loads(trial_row({}, stage="train", config=t.to_dict(), status="PENDING")["config_json"])
        assert config["train"]["precision"] == "bf16" and config["train"]["compile"] is False
        assert config["eval"]["inference"]["precision"] == "bf16"
        assert TrialSpec.from_dict(config).train.precision == "bf16"
    pre = next(s for s in expand(resolve(spec, "quick")) if s.name == "pretrain").items
    assert pre and "precision" not in pre[0].pretrain.to_dict()  # PretrainConfig has no precision (fp32 only)


def test_dry_run_json_shows_the_precisions(capsys):
    from sweeps.cli import main

    assert main(["sweep", "quickstart", "--dry-run", "--json", "--set", "training.compile=true",
                 "--set", "eval.inference.dql.precision=bf16"]) == 0
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    train = [i["item"] for i in items if i["stage"] == "train"]
    assert len(train) == 6
    assert {(t["train"]["precision"], t["train"]["compile"], t["eval"]["inference"]["precision"]) for t in train} == {
        ("fp32", True, "bf16")}
