"""Spec validation (errors name the field path, the bad value and the allowed values), budgets and expansion."""

import copy
import json
import warnings

import pytest
import yaml

from analysis.budgets import BUDGETS, DeprecatedName
from rl_core.errors import ConfigError
from sweeps.expand import expand
from sweeps.spec import budget_summary, dump_spec, load_spec, packaged_specs, resolve, validate_spec

BASE = {
    "name": "t",
    "tasks": ["hopper-medium"],
    "algorithms": ["dql"],
    "train_guidance": ["joint", "frozen"],
    "seeds": [0, 1],
    "pretraining": [{"algo": "dql"}],
    "budgets": {
        "smoke": {"steps": 800, "eval_every": 400, "episodes": 2, "pretrain_steps": 400},
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
        ("budgets.smoke.steps", -5, ["`budgets.smoke.steps`", "-5", "an integer >= 1"]),
        ("budgets.smoke.steps", 1000, ["`budgets.smoke.steps`", "a multiple of eval_every (400)"]),
        ("budgets.cpu", {"steps": 800, "eval_every": 400, "episodes": 2, "pretrain_steps": 400,
                         "tasks": ["hopper-meduim"]}, ["`budgets.cpu.tasks[0]`", "'hopper-meduim'", "'hopper-medium'"]),
        ("budgets.cpu", {"steps": 800, "eval_every": 400, "episodes": 2, "pretrain_steps": 400,
                         "algo_config": {"dql": {"ema_warmup": "track"}}},
         ["`budgets.cpu.algo_config.dql`", "ema_warmup", "'copy'"]),
        ("budgets.huge", {}, ["`budgets`", "'huge'", "['smoke', 'laptop', 'cpu', 'paper', 'quick']"]),
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
    stages = expand(resolve(spec, "smoke"))
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
    resolved = resolve(spec, "smoke")
    assert expand(resolved)[1].items[0].eval.inference["scale"] == 7.0
    again = validate_spec(yaml.safe_load(dump_spec(resolved)))
    assert again == resolved and again["budget"]["steps"] == 800


@pytest.mark.parametrize("name", ["quickstart", "gfdt", "double_guidance", "cross_algorithm", "swg"])
def test_packaged_specs_validate_at_every_budget(name):
    assert name in packaged_specs()
    spec = load_spec(name)
    assert BUDGETS == ("smoke", "laptop", "cpu", "paper")
    assert tuple(spec["budgets"]) == (BUDGETS if name == "quickstart" else ("smoke", "cpu", "paper"))
    for scale in spec["budgets"]:
        stages = expand(resolve(spec, scale))
        assert [s.name for s in stages][-1] == "report"
    paper = spec["budgets"]["paper"]
    assert paper["eval_every"] == (1200 if name == "double_guidance" else 400) and paper["episodes"] == 50


@pytest.mark.parametrize("name", ["quickstart", "gfdt", "double_guidance", "cross_algorithm", "swg"])
def test_cpu_budget_is_one_task_five_seeds_trained_snapshots_on_two_cores(name):
    from sweeps.run import check_local_resources

    spec = resolve(load_spec(name), "cpu")
    assert spec["tasks"] == ["hopper-medium"] and len(spec["seeds"]) >= 5
    b = spec["budget"]
    assert b["eval_every"] == 400 and b["episodes"] >= 10 and b["steps"] >= 8000
    stages = {s.name: s.items for s in expand(spec)}
    trains = stages["train"]
    assert {t.identity.seed for t in trains} == set(spec["seeds"]) and {t.identity.task for t in trains} == {
        "hopper-medium"}
    assert all(t.train.steps == b["steps"] and t.eval.episodes == b["episodes"] for t in trains)
    for t in trains:  # the EMA of every snapshot follows the online net: no checkpoint holds the initial actor
        cfg = t.train.algo_config
        tracks = cfg["ema_start"] == 0 or cfg["ema_warmup"] == "copy"
        time_constant = cfg["ema_every"] / (1 - cfg["ema_rate"])  # steps for the EMA to forget the past by 1/e
        assert tracks and time_constant <= 1000, (t.label, cfg)
    for p in stages.get("pretrain", []):
        assert p.identity.seed in spec["seeds"] and p.pretrain.steps == b["pretrain_steps"]
    assert {p.identity.seed for p in stages.get("pretrain", [])} in (set(), set(spec["seeds"]))
    check_local_resources(spec, cpus=2, gpus=0)  # fits a 2-core machine without --set
    assert "smallest attainable p = 0.0079" in budget_summary(spec)


def test_cpu_budgets_of_the_paper_specs_keep_only_the_comparisons_they_run():
    gfdt = resolve(load_spec("gfdt"), "cpu")
    assert gfdt["algorithms"] == ["dql"] and gfdt["train_guidance"] == ["joint", "frozen", "none"]
    assert [c["name"] for c in gfdt["report"]["comparisons"]] == ["GFDT vs joint (DQL)", "No guidance vs joint (DQL)"]
    cross = resolve(load_spec("cross_algorithm"), "cpu")
    idql = next(t for t in expand(cross)[0].items if t.identity.algo == "idql").train.algo_config
    assert (idql["ema_warmup"], idql["ema_start"], idql["ema_rate"], idql["ema_every"]) == ("copy", 1000, 0.995, 5)
    assert load_spec("cross_algorithm")["algo_config"]["idql"] == {}  # the paper budget keeps IDQL's 0.9999
    assert expand(resolve(load_spec("cross_algorithm"), "paper"))[0].items[-1].train.algo_config["ema_rate"] == 0.9999


def test_budget_overlay_applied_by_resolve_and_recorded():
    raw = _with("budgets.cpu", {"steps": 1200, "eval_every": 400, "episodes": 10, "pretrain_steps": 400,
                                "seeds": [0, 1, 2, 3, 4], "algo_config": {"dql": {"ema_warmup": "copy"}},
                                "train_guidance": ["joint"]})
    spec = validate_spec(raw)
    assert spec["seeds"] == [0, 1] and "cpu" in spec["budgets"]  # the unresolved spec keeps its own fields
    cpu = resolve(spec, "cpu")
    assert (cpu["scale"], cpu["seeds"], cpu["train_guidance"]) == ("cpu", [0, 1, 2, 3, 4], ["joint"])
    assert cpu["pretraining"][0]["seeds"] == [0, 1, 2, 3, 4]  # pretraining follows the budget's seeds
    assert cpu["algo_config"]["dql"] == {"ema_warmup": "copy"}
    assert validate_spec(yaml.safe_load(dump_spec(cpu))) == cpu  # RUN_DIR/spec.yaml reads back unchanged
    smoke = resolve(spec, "smoke")
    assert (smoke["seeds"], smoke["algo_config"]["dql"]) == ([0, 1], {})
    bad = _with("budgets.cpu", {"steps": 800, "eval_every": 400, "episodes": 2, "pretrain_steps": 400,
                                "seeds": [0, 1, 2]})
    bad["pretraining"] = [{"algo": "dql", "seeds": [0, 1, 7]}]  # its own seeds (not the spec's): they stay, missing 2
    with pytest.raises(ConfigError, match=r"`budgets.cpu` applied to the spec: spec field `pretraining\[0\].seeds`"
                                          r".*missing \[2\]"):
        validate_spec(bad)


def test_budget_names_aliases_and_errors():
    spec = validate_spec(BASE)
    with pytest.warns(DeprecatedName, match=r"--scale: the budget name `quick` is deprecated .* now called `smoke`"):
        old = resolve(spec, "quick")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names warn about nothing
        assert old == resolve(spec, "smoke") and old["scale"] == "smoke"
    with pytest.raises(ConfigError, match=r"`--scale`: bad value 'huge'; allowed: \['smoke', 'laptop', 'cpu', "
                                          r"'paper', 'quick \(deprecated: smoke\)'\]"):
        resolve(spec, "huge")
    with pytest.raises(ConfigError, match=r"--scale cpu: spec 't' has no `budgets.cpu`; its budgets: \['smoke', "
                                          r"'paper'\]"):
        resolve(spec, "cpu")
    legacy = dict(BASE, budgets={"quick": BASE["budgets"]["smoke"], "paper": BASE["budgets"]["paper"]})
    with pytest.warns(DeprecatedName, match=r"spec field `budgets.quick`: the budget name `quick` is deprecated"):
        assert validate_spec(legacy) == spec  # a spec written with `quick` is the same spec
    with pytest.warns(DeprecatedName):  # --set budgets.quick.steps=1200 still changes the smoke budget
        assert validate_spec(_with("budgets.quick", {"steps": 1200}))["budgets"]["smoke"]["steps"] == 1200
    with pytest.raises(ConfigError, match=r"spec field `budgets`: missing required key 'paper'"):
        validate_spec(_with("budgets", {"smoke": BASE["budgets"]["smoke"]}))
    # a run directory written before the rename records scale `quick`: it reads back as smoke
    recorded = dict(dump_spec_dict(resolve(spec, "smoke")), scale="quick")
    assert validate_spec(recorded)["scale"] == "smoke"


def dump_spec_dict(spec: dict) -> dict:
    return yaml.safe_load(dump_spec(spec))


def test_budget_summary_says_what_each_budget_can_show():
    spec = load_spec("quickstart")
    smoke, laptop, cpu, paper = (budget_summary(resolve(spec, b)) for b in BUDGETS)
    assert smoke.startswith("budget smoke (1 task, 3 seeds, 1200 steps") and smoke.endswith(
        "checks the pipeline; policies are not trained; statistics are not evidence")
    assert laptop.startswith("budget laptop (1 task, 2 seeds, 3200 steps, a checkpoint every 800 steps with 5 "
                             "episodes): a short run sized for a laptop whose policies learn")
    assert laptop.endswith("smallest attainable p = 0.33 (2 vs 2 seeds, two-sided), which cannot reach p < 0.05: "
                           "descriptive only")
    assert cpu.startswith("budget cpu (1 task, 5 seeds, 8000 steps, a checkpoint every 400 steps with 10 episodes)")
    assert "per-seed Mann-Whitney tests with smallest attainable p = 0.0079 (5 vs 5 seeds" in cpu
    assert "the papers' budgets" in paper and "100000 steps" in paper
    three = budget_summary(resolve(load_spec("quickstart", ["budgets.cpu.seeds=[0,1,2]"]), "cpu"))
    assert "smallest attainable p = 0.1 (3 vs 3 seeds, two-sided), which cannot reach p < 0.05" in three


def test_quickstart_is_dql_joint_vs_frozen_with_pretraining():
    spec = load_spec("quickstart")
    stages = {s.name: s.items for s in expand(resolve(spec, "smoke"))}
    assert spec["tasks"] == ["hopper-medium"] and spec["seeds"] == [0, 1, 2]
    assert len(stages["pretrain"]) == 3 and len(stages["train"]) == 6


def test_quickstart_laptop_budget_is_the_default_and_fits_two_cores_with_a_trained_actor():
    from sweeps.cli import build_parser
    from sweeps.run import check_local_resources

    assert build_parser().parse_args(["quickstart"]).scale == "laptop"
    spec = resolve(load_spec("quickstart"), "laptop")
    assert (spec["tasks"], spec["seeds"], spec["train_guidance"]) == (["hopper-medium"], [0, 1], ["joint", "frozen"])
    stages = {s.name: s.items for s in expand(spec)}
    assert [p.identity.seed for p in stages["pretrain"]] == [0, 1] and len(stages["train"]) == 4
    for t in stages["train"]:  # learning budget: past the ~2-3k steps DQL needs to hop; the EMA follows the online net
        cfg = t.train.algo_config
        assert t.train.steps >= 3200 and cfg["ema_warmup"] == "copy" and t.eval.episodes >= 5
    check_local_resources(spec, cpus=2, gpus=0)
    with pytest.raises(ConfigError, match=r"--scale laptop: spec 'gfdt' has no `budgets.laptop`"):
        resolve(load_spec("gfdt"), "laptop")



def _trials(spec: dict) -> list:
    return next(s for s in expand(resolve(spec, "smoke")) if s.name == "train").items


def test_training_precision_and_compile_default_to_fp32_eager_and_reach_every_trial():
    spec = validate_spec(BASE)
    assert spec["training"] == {"precision": "fp32", "compile": False}
    assert {(t.train.precision, t.train.compile, t.eval.inference["precision"]) for t in _trials(spec)} == {
        ("fp32", False, "fp32")}
    spec = validate_spec(_with("training", {"precision": "bf16", "compile": True}))
    trials = _trials(spec)
    assert len(trials) == 4 and {(t.train.precision, t.train.compile) for t in trials} == {("bf16", True)}
    assert {t.eval.inference["precision"] for t in trials} == {"fp32"}  # evaluation precision is its own setting
    again = validate_spec(yaml.safe_load(dump_spec(resolve(spec, "smoke"))))  # RUN_DIR/spec.yaml records it
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
    pre = next(s for s in expand(resolve(spec, "smoke")) if s.name == "pretrain").items
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


def test_a_set_of_a_key_the_budget_also_sets_wins_over_the_budget():
    """`--set seeds=[0,1]` with the cpu budget (which sets seeds 0-4 itself): the command line wins, pretraining
    follows, and the recorded budget says so; a key the budget does not set is applied to the spec as before."""
    overrides = ["seeds=[0,1]", "budgets.cpu.steps=1600"]
    spec = resolve(load_spec("quickstart", overrides), "cpu", overrides)
    assert spec["seeds"] == [0, 1] and spec["budget"]["seeds"] == [0, 1] and spec["budget"]["steps"] == 1600
    stages = {st.name: st.items for st in expand(spec)}
    assert sorted({t.identity.seed for t in stages["pretrain"]}) == [0, 1]
    assert sorted({t.identity.seed for t in stages["train"]}) == [0, 1]
    assert resolve(load_spec("quickstart", overrides), "cpu")["seeds"] == [0, 1, 2, 3, 4]  # without: the budget's


def test_vocabularies_both_sides_of_the_result_tables_need_are_equal():
    """Spec selectors select eval rows by the columns analysis reads; the reference-line kinds the trainables
    write are the ones analysis draws (the two packages may not import each other's side)."""
    from analysis import load
    from sweeps import spec as spec_module
    from trainables import results

    assert spec_module.SELECTOR_KEYS == load.SELECTOR_KEYS
    assert tuple(results.REFERENCE_KINDS) == tuple(load.REFERENCE_KINDS)
    from analysis import degenerate, plots  # every kind has a legend style and a label
    assert set(plots.REFERENCE_STYLES) == set(degenerate.REFERENCE_LABELS) == set(load.REFERENCE_KINDS)


def test_a_comparison_selector_precision_must_be_a_precision():
    overrides = ["report.comparisons=[{name: x, method: {algo: dql, inference_precision: fp16}, "
                 "baseline: {algo: dql}}]"]
    with pytest.raises(ConfigError, match=r"report\.comparisons\[0\]\.method\.inference_precision.*fp16.*fp32"):
        load_spec("quickstart", overrides)


def test_a_budget_drops_the_recombinations_and_comparisons_of_arms_it_does_not_run():
    """cross_algorithm's recombinations need IDQL and DQL; a budget that runs DQL alone drops them (and the
    comparisons that use IDQL) instead of failing validation; a comparison on a task it does not run goes too."""
    overrides = ["budgets.cpu.algorithms=[dql]",
                 "report.comparisons=[{name: t, method: {algo: dql, task: walker2d-medium}, baseline: {algo: dql}}]"]
    spec = resolve(load_spec("cross_algorithm", overrides), "cpu")
    assert spec["algorithms"] == ["dql"] and spec["recombination"] == []
    assert spec["report"]["comparisons"] == []


def test_a_budget_sets_the_candidates_of_every_evaluation_of_an_algorithms_diffusion():
    """cross_algorithm cpu: IDQL draws 16 candidates (not 256) in its own evaluations and when DQL's critic
    selects among its candidates; DQL keeps 50; the paper budget keeps 256; `--set eval.inference.idql.
    n_candidates` wins over the budget; a bad value names its path."""
    cpu = resolve(load_spec("cross_algorithm"), "cpu")
    recomb = {r["name"]: r["inference"]["n_candidates"] for r in cpu["recombination"]}
    assert [cpu["eval"]["inference"][a]["n_candidates"] for a in ("idql", "dql")] == [16, 50]
    assert recomb == {"idql_guidance_on_dql": 50, "dql_guidance_on_idql": 16}
    trials = {t.identity.algo: t.eval.inference["n_candidates"] for t in expand(cpu)[0].items}
    assert trials == {"dql": 50, "idql": 16}
    assert validate_spec(yaml.safe_load(dump_spec(cpu))) == cpu  # RUN_DIR/spec.yaml reads back unchanged
    paper = resolve(load_spec("cross_algorithm"), "paper")
    assert paper["eval"]["inference"]["idql"]["n_candidates"] == 256
    assert {r["inference"]["n_candidates"] for r in paper["recombination"]} == {50, 256}
    cli = ["eval.inference.idql.n_candidates=32"]
    spec = resolve(load_spec("cross_algorithm", cli), "cpu", cli)
    assert spec["eval"]["inference"]["idql"]["n_candidates"] == 32
    assert {r["name"]: r["inference"]["n_candidates"] for r in spec["recombination"]}["dql_guidance_on_idql"] == 32
    with pytest.raises(ConfigError, match=r"budgets\.cpu\.candidates\.idql.*0"):
        load_spec("cross_algorithm", ["budgets.cpu.candidates.idql=0"])
    with pytest.raises(ConfigError, match=r"budgets\.cpu\.candidates.*'sac'.*allowed keys"):
        load_spec("cross_algorithm", ["budgets.cpu.candidates={sac: 4}"])
    whole = ["eval.inference.idql={method: softmax, n_candidates: 8}"]  # the whole entry: --set still wins
    assert resolve(load_spec("cross_algorithm", whole), "cpu", whole)["eval"]["inference"]["idql"]["n_candidates"] == 8
    dql_only = ["budgets.cpu.algorithms=[dql]"]  # the budget's IDQL candidates have nothing to set
    assert resolve(load_spec("cross_algorithm", dql_only), "cpu", dql_only)["recombination"] == []
    with pytest.raises(ConfigError, match=r"budgets\.cpu\.algo_config\.idql\.n_candidates.*budgets\.cpu\.candidates"):
        load_spec("cross_algorithm", ["budgets.cpu.algo_config.idql.n_candidates=8"])


def test_a_cross_algorithm_critic_keeps_its_own_algorithms_scale():
    """The softmax scale multiplies the critic's output, so a plug-and-play recombination takes the guidance
    algorithm's scale and per-task table (DQL's critic: 100, walker2d 300; IDQL's advantage: 50, walker2d
    200), not the diffusion algorithm's; what the recombination sets itself wins (the rest still comes from the
    critic's algorithm); another selection method gets that method's default; a pretrained critic of an
    algorithm the spec does not run gets that algorithm's defaults, not the diffusion algorithm's table."""
    from sweeps.spec import inference_for

    spec = load_spec("cross_algorithm")
    by_name = {r["name"]: r["inference"] for r in spec["recombination"]}
    on_dql, on_idql = by_name["idql_guidance_on_dql"], by_name["dql_guidance_on_idql"]
    assert on_dql["use_advantage"] is True and on_idql["use_advantage"] is False
    for task, dql_scale, idql_scale in (("hopper-medium", 100.0, 50.0), ("walker2d-medium", 300.0, 200.0)):
        assert inference_for(spec["eval"]["inference"]["dql"], task)["scale"] == dql_scale
        assert inference_for(spec["eval"]["inference"]["idql"], task)["scale"] == idql_scale
        assert inference_for(on_idql, task)["scale"] == dql_scale  # DQL's critic on IDQL's candidates
        assert inference_for(on_dql, task)["scale"] == idql_scale  # IDQL's critic on DQL's candidates
    own = load_spec("cross_algorithm", ["recombination[1].inference.scale=7.0"])["recombination"][1]["inference"]
    assert [inference_for(own, t)["scale"] for t in ("hopper-medium", "walker2d-medium")] == [7.0, 300.0]
    grad = load_spec("cross_algorithm", ["recombination[0].inference.method=gradient"])["recombination"][0]["inference"]
    assert grad["method"] == "gradient" and grad["scale_by_task"] == {}
    assert [inference_for(grad, t)["scale"] for t in ("hopper-medium", "walker2d-medium")] == [1.0, 1.0]
    pretrained = load_spec("cross_algorithm", [
        "algorithms=[dql]", "train_guidance=[joint]", "pretraining=[{name: iql, algo: idql, kind: iql}]",
        "report={comparisons: []}", "recombination=[{name: x, kind: cross_algorithm, diffusion: {algo: dql, "
        "train_guidance: joint}, guidance: {pretrained: iql}, inference: {use_advantage: true}}]"])
    idql_default = inference_for(pretrained["recombination"][0]["inference"], "walker2d-medium")
    assert (idql_default["method"], idql_default["scale"]) == ("softmax", 100.0)  # IDQL's default, not DQL's 300
