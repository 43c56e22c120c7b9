"""Recombination job construction by value (sweeps.run.recombination_jobs, _pick), without Ray or training.

A fake run directory holds real trials rows (trainables.results.trial_row of the TrialSpecs that
sweeps.expand.expand makes) and empty ``step_XXXXXXXX.pt`` files where the snapshots and guidance
artifacts would be. 3 seeds (3, 5, 7, so a seed is never confused with its index) x 3 checkpoints:
the tests name, for every job, the exact guidance file it must use — for step-matched and final
pairing, for seed shifts +1 and -1 (which pair different runs once there are 3 seeds; a spec writes
-1 as +2, the item given to recombination_jobs may hold -1), for guidance from other seeds' trained
snapshots and from pretrained artifacts — and what its rows will say.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rl_core.evaluation import eval_seed_for
from sweeps.run import _pick, recombination_jobs
from sweeps.expand import expand
from sweeps.spec import infer_source
from tests.sweeps.sweep_helpers import tiny_spec
from trainables.results import ResultStore, trial_row

SEEDS = (3, 5, 7)
SNAPSHOT_STEPS = (400, 800, 1200)  # the diffusion runs' checkpoints (eval_every 400)
ARTIFACT_STEPS = (300, 600, 1000)  # the pretraining runs' step-matched artifacts (not aligned on purpose)
JOINT = {"algo": "dql", "train_guidance": "joint"}
# guidance seed of each diffusion seed, written out by hand: seeds[(i + shift) % 3]
PAIRED = {+1: {3: 5, 5: 7, 7: 3}, -1: {3: 7, 5: 3, 7: 5}, 0: {3: 3, 5: 5, 7: 7}}
PAIRED[2] = PAIRED[-1]
# the guidance file's step for each snapshot step: the latest at or before it, or the final one
STEP_MATCHED_ARTIFACT = {400: 300, 800: 600, 1200: 1000}


def _spec() -> dict:
    return tiny_spec(steps=1200, seeds=SEEDS, pretraining=[{"algo": "idql", "guidance_config": {"hidden": 32}}],
                     recombination=[
                         {"name": "plus_step", "kind": "double_guidance", "diffusion": JOINT,
                          "guidance": {"trained": JOINT}, "match": "step", "seed_shift": 1},
                         {"name": "plus2_step", "kind": "double_guidance", "diffusion": JOINT,
                          "guidance": {"trained": JOINT}, "match": "step", "seed_shift": 2},
                         {"name": "plus_final", "kind": "double_guidance", "diffusion": JOINT,
                          "guidance": {"trained": JOINT}, "match": "final", "seed_shift": 1},
                         {"name": "cross_step", "kind": "cross_algorithm", "diffusion": JOINT,
                          "guidance": {"pretrained": "idql_iql"}, "match": "step"},
                         {"name": "cross_final", "kind": "cross_algorithm", "diffusion": JOINT,
                          "guidance": {"pretrained": "idql_iql"}, "match": "final"},
                         {"name": "cross_plus2", "kind": "cross_algorithm", "diffusion": JOINT,
                          "guidance": {"pretrained": "idql_iql"}, "match": "final", "seed_shift": 2}])


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def train_id(seed: int) -> str:
    return f"train_dql_joint_s{seed}"


def pretrain_id(seed: int) -> str:
    return f"pretrain_idql_iql_s{seed}"


def fake_run(run_dir: Path, spec: dict, status: dict[str, str] | None = None) -> dict[str, list]:
    """Trials rows of every pretrain / train TrialSpec of ``spec`` (TERMINATED unless ``status`` says
    otherwise, by trial id) and empty snapshot / artifact files; returns the expanded stages' items, the
    recombine items plus ``minus_step``: ``plus2_step`` with seed_shift -1."""
    store, stages = ResultStore(run_dir), {s.name: s.items for s in expand(spec)}
    plus2 = next(i for i in stages["recombine"] if i["name"] == "plus2_step")
    stages["recombine"] = stages["recombine"] + [dict(plus2, name="minus_step", seed_shift=-1)]
    for stage, make_id, folder, steps in (("pretrain", pretrain_id, "guidance", ARTIFACT_STEPS),
                                          ("train", train_id, "snapshots", SNAPSHOT_STEPS)):
        for t in stages[stage]:
            i, trial_id = t.identity, make_id(t.identity.seed)
            ident = {"sweep": spec["name"], "trial_id": trial_id, "task": i.task, "algo": i.algo,
                     "train_guidance": i.train_guidance, "seed": i.seed}
            store.write_trial(trial_row(ident, stage=stage, config=t.to_dict(),
                                        status=(status or {}).get(trial_id, "TERMINATED")))
            for step in steps:
                _touch(run_dir / folder / trial_id / f"step_{step:08d}.pt")
            if stage == "pretrain":
                _touch(run_dir / folder / trial_id / "final.pt")  # not a step file: never picked
    return stages


@pytest.fixture(scope="module")
def spec() -> dict:
    return _spec()


def _jobs_by(jobs: list[dict], name: str, items: list[dict]) -> dict[tuple[int, int], dict]:
    """(diffusion seed, step) -> job of the recombination entry ``name``."""
    source = infer_source(next(i for i in items if i["name"] == name))
    out = {}
    for j in jobs:
        if j["labels"]["infer_source"] == source:
            key = (j["labels"]["diffusion_seed"], j["labels"]["step"])
            assert key not in out, f"two jobs for {name} {key}"
            out[key] = j
    return out


def test_every_job_uses_the_paired_seeds_guidance_file(spec, tmp_path):
    stages = fake_run(tmp_path, spec)
    printed: list[str] = []
    jobs = recombination_jobs(spec, stages["recombine"], tmp_path, printed.append)
    assert printed == [] and len(jobs) == 7 * len(SEEDS) * len(SNAPSHOT_STEPS)
    train_specs = {t.identity.seed: t for t in stages["train"]}

    def expect(name: str, shift: int, fmt: str, guidance_step) -> None:
        by = _jobs_by(jobs, name, stages["recombine"])
        assert sorted(by) == [(s, k) for s in SEEDS for k in SNAPSHOT_STEPS], name
        for (seed, step), j in by.items():
            g_seed = PAIRED[shift][seed]
            folder, trial = ("snapshots", train_id(g_seed)) if fmt == "snapshot" else ("guidance", pretrain_id(g_seed))
            job, labels = j["job"], j["labels"]
            assert job["guidance"] == str(tmp_path / folder / trial / f"step_{guidance_step(step):08d}.pt"), (name, seed, step)
            assert job["guidance_format"] == fmt
            assert job["snapshot"] == str(tmp_path / "snapshots" / train_id(seed) / f"step_{step:08d}.pt")
            assert labels["trial_id"] == train_id(seed) and labels["guidance_seed"] == g_seed
            assert labels["sweep"] == spec["name"] == "tiny" and labels["step"] == step
            item = next(i for i in stages["recombine"] if i["name"] == name)
            assert job["inference"] == item["inference"] and job["inference"]["n_candidates"] == 4
            assert (labels["algo"], labels["train_guidance"], labels["task"]) == ("dql", "joint", "hopper-medium")
            assert job["eval_seed"] == eval_seed_for(seed, step)  # the same episodes as the self evaluation
            ev = train_specs[seed].eval
            assert (job["episodes"], job["max_steps"]) == (ev.episodes, ev.max_steps)
            assert j["run_dir"] == str(tmp_path)

    expect("plus_step", +1, "snapshot", lambda step: step)  # trained snapshots share the checkpoint grid
    expect("minus_step", -1, "snapshot", lambda step: step)
    expect("plus2_step", 2, "snapshot", lambda step: step)  # == -1 with 3 seeds
    expect("plus_final", +1, "snapshot", lambda step: 1200)
    expect("cross_step", 0, "artifact", STEP_MATCHED_ARTIFACT.__getitem__)
    expect("cross_final", 0, "artifact", lambda step: 1000)
    expect("cross_plus2", 2, "artifact", lambda step: 1000)


def test_plus_and_minus_one_pair_different_runs_with_three_seeds(spec, tmp_path):
    stages = fake_run(tmp_path, spec)
    jobs = recombination_jobs(spec, stages["recombine"], tmp_path, lambda s: None)
    plus, minus = (_jobs_by(jobs, n, stages["recombine"]) for n in ("plus_step", "minus_step"))
    for key in plus:
        assert plus[key]["job"]["guidance"] != minus[key]["job"]["guidance"]
        assert plus[key]["labels"]["guidance_seed"] != minus[key]["labels"]["guidance_seed"]
        assert plus[key]["labels"]["infer_source"] != minus[key]["labels"]["infer_source"]
        # never the diffusion run's own critic
        assert train_id(key[0]) not in plus[key]["job"]["guidance"] + minus[key]["job"]["guidance"]


def test_failed_runs_are_skipped_on_both_sides_of_a_pairing(spec, tmp_path):
    stages = fake_run(tmp_path, spec, status={train_id(7): "ERROR", pretrain_id(3): "ERROR"})
    printed: list[str] = []
    jobs = recombination_jobs(spec, stages["recombine"], tmp_path, printed.append)
    plus = _jobs_by(jobs, "plus_step", stages["recombine"])
    # seed 7's run failed: no job evaluates it (3 -> 5 remains), and seed 5 lost its guidance (5 -> 7)
    assert sorted({s for s, _ in plus}) == [3]
    minus = _jobs_by(jobs, "minus_step", stages["recombine"])
    assert sorted({s for s, _ in minus}) == [5]  # 3 -> 7 (failed guidance), 5 -> 3, 7 (failed diffusion)
    cross = _jobs_by(jobs, "cross_final", stages["recombine"])
    assert sorted({s for s, _ in cross}) == [5]  # seed 3's pretraining failed, seed 7's diffusion run
    assert all("skipped" in line for line in printed) and len(printed) == 7 * 2
    assert any("plus_step seed 5" in line for line in printed)


@pytest.mark.parametrize("step,match,expected", [
    (400, "step", 300), (600, "step", 600), (999, "step", 600), (1000, "step", 1000), (5000, "step", 1000),
    (100, "step", 300),  # before the first file: the first one
    (100, "final", 1000), (600, "final", 1000),
])
def test_pick_step_matched_and_final(step, match, expected):
    files = {s: Path(f"step_{s:08d}.pt") for s in (600, 1000, 300)}
    assert _pick(files, step, match) == (expected, files[expected])


def test_recombine_every_keeps_only_the_checkpoints_at_its_multiples(spec, tmp_path):
    import copy

    from rl_core.errors import ConfigError
    from sweeps.spec import validate_spec

    every = copy.deepcopy(spec)
    every["budget"]["recombine_every"] = 800  # the cpu double-guidance budget's knob (there 1200 of 8000 steps)
    stages = fake_run(tmp_path, every)
    jobs = recombination_jobs(every, stages["recombine"], tmp_path, lambda s: None)
    assert {j["labels"]["step"] for j in jobs} == {800} and len(jobs) == 7 * len(SEEDS)
    raw = tiny_spec(steps=1200)
    raw = {k: v for k, v in raw.items() if k not in ("scale", "budget")}
    raw["budgets"]["smoke"]["recombine_every"] = 600
    with pytest.raises(ConfigError, match=r"`budgets.smoke.recombine_every`: bad value 600; allowed: a multiple of "
                                          r"eval_every \(400\) up to steps \(1200\)"):
        validate_spec(raw)
    raw["budgets"]["smoke"]["recombine_every"] = 1600  # beyond the run: no checkpoint would be recombined
    with pytest.raises(ConfigError, match=r"`budgets.smoke.recombine_every`: bad value 1600"):
        validate_spec(raw)
