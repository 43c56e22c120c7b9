"""Expand a resolved sweep spec (``sweeps/spec.py``) into the stages the driver runs, in order:
guidance pretraining -> diffusion training -> recombination -> report. Pretraining and training items
are typed ``trainables.trial.TrialSpec`` objects with every algorithm and critic config field
resolved, so each trial records the values it runs with (``mdpt sweep --dry-run`` prints them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rl_core.config import DEFAULT_GUIDANCE_KIND
from rl_core.modes import get_mode
from sweeps.spec import critic_config, inference_for, pretraining_for

STAGES = ("pretrain", "train", "recombine", "report")


@dataclass(frozen=True)
class Stage:
    """One stage of a sweep: ``name`` in STAGES and its items (trial or job descriptions)."""

    name: str
    items: list[dict] = field(default_factory=list)


def expand(spec: dict) -> list[Stage]:
    """Expand a resolved spec into its non-empty stages, in run order.

    pretrain and train items are ``trainables.trial.TrialSpec`` (without runtime; a frozen / unfrozen
    trial's ``guidance_artifact`` is a placeholder the driver replaces by its pretraining trial's
    final artifact); recombine items are the recombination entries with ``task`` set (one per task);
    report items are the comparisons.
    """
    b = spec["budget"]
    pre_needed = {pretraining_for(spec, a)["name"] for a in spec["algorithms"]
                  if any(get_mode(m).needs_artifact for m in spec["train_guidance"])}
    pre_needed |= {r["guidance"]["pretrained"] for r in spec["recombination"] if "pretrained" in r["guidance"]}
    pre = [_pretrain_trial(spec, p, t, s) for t in spec["tasks"] for p in spec["pretraining"] if p["name"] in pre_needed
           for s in p["seeds"]]
    train = [_train_trial(spec, t, a, m, s) for t in spec["tasks"] for a in spec["algorithms"]
             for m in spec["train_guidance"] for s in spec["seeds"]]
    recombine = [dict(r, task=t, inference=inference_for(r["inference"], t))
                 for t in spec["tasks"] for r in spec["recombination"]]
    stages = [Stage("pretrain", pre), Stage("train", train), Stage("recombine", recombine),
              Stage("report", list(spec["report"]["comparisons"]))]
    return [s for s in stages if s.items or s.name == "report"]


def artifact_placeholder(pretrained: str, task: str, seed: int) -> str:
    """The ``guidance_artifact`` of a pretrained-mode trial before its pretraining trial has run."""
    return f"<final artifact of pretraining {pretrained!r}, {task}, seed {seed}>"


def _resolved_algo_config(algo: str, overrides: dict) -> dict:
    """Every field of the algorithm's config (defaults + the spec's overrides), so each trial records the
    values it runs with (e.g. the resolved ``lr_anneal_steps``)."""
    from rl_core.algos import get_algorithm

    return get_algorithm(algo).Config.from_dict(dict(overrides)).to_dict()


def _pretrain_trial(spec: dict, entry: dict, task: str, seed: int) -> Any:
    from rl_core.train import PretrainConfig
    from trainables.trial import TrialIdentity, TrialSpec

    b = spec["budget"]
    cfg = PretrainConfig(task=task, kind=entry["kind"], guidance_config=critic_config(entry["guidance_config"],
                                                                                         entry["kind"]),
                         seed=seed, steps=b["pretrain_steps"], batch_size=b["pretrain_batch_size"],
                         save_every=entry["save_every"],
                         log_every=b["log_every"], checkpoint_every=entry["save_every"] or b["eval_every"])
    ident = TrialIdentity(task=task, algo=entry["algo"], train_guidance=f"pretrain:{entry['name']}", seed=seed,
                          guidance_seed=seed)
    return TrialSpec(stage="pretrain", identity=ident, pretrain=cfg)


def _train_trial(spec: dict, task: str, algo: str, mode_name: str, seed: int) -> Any:
    from rl_core.train import TrainConfig
    from trainables.trial import EvalSpec, TrialIdentity, TrialSpec

    b, mode = spec["budget"], get_mode(mode_name)
    pretrained = pretraining_for(spec, algo)["name"] if mode.needs_artifact else None
    fresh_kind = {"fresh": DEFAULT_GUIDANCE_KIND[algo], "random": "random"}.get(mode.critic)
    cfg = TrainConfig(task=task, algo=algo, algo_config=_resolved_algo_config(algo, spec["algo_config"][algo]),
                      train_guidance=mode_name,
                      guidance_artifact=artifact_placeholder(pretrained, task, seed) if pretrained else None,
                      guidance_config=critic_config(spec["guidance_config"][algo], fresh_kind) if fresh_kind else None,
                      seed=seed, steps=b["steps"], batch_size=b["batch_size"], eval_every=b["eval_every"],
                      log_every=b["log_every"], precision=spec["training"]["precision"],
                      compile=spec["training"]["compile"])
    ev = EvalSpec(inference=mode.inference(inference_for(spec["eval"]["inference"][algo], task)),
                  episodes=b["episodes"], max_steps=spec["eval"]["max_episode_steps"])
    ident = TrialIdentity(task=task, algo=algo, train_guidance=mode_name, seed=seed,
                          guidance_seed=mode.guidance_seed(seed, seed), pretrained=pretrained)
    return TrialSpec(stage="train", identity=ident, train=cfg, eval=ev)
