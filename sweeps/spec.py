"""Experiment specs: load a sweep YAML, validate it, and expand it into stages.

A spec names tasks, algorithms, training-guidance modes, seeds, budgets per scale, how training
runs (``training: {precision, compile}``), evaluation settings (evaluation precision is
``eval.inference.<algo>.precision``), resources, guidance pretraining, inference-time
recombinations and the report's comparisons. ``load_spec`` returns the validated spec as a plain
dict with every default filled in (so ``RUN_DIR/spec.yaml`` records everything that affects results);
``sweeps.expand.expand`` turns it into the stages the driver runs in order: guidance pretraining ->
diffusion training -> recombination -> report.

Every validation error is a ``ConfigError`` naming the field path (``algorithms[1]``,
``budgets.smoke.steps``), the bad value and the allowed values. Unknown keys are rejected with
the list of allowed keys. Vocabularies come from ``rl_core.config``, the meaning of each
training-guidance mode from ``rl_core.modes``, and inference defaults from
``rl_core.inference.InferenceConfig`` (the only home of those defaults), so validating a spec
imports torch (not Ray). Budget names (``smoke | cpu | paper``, the deprecated alias ``quick``) come from
``analysis.budgets``; a budget sizes the run (steps, checkpoints, episodes) and may narrow the experiment for
its machine (``BUDGET_OVERLAY_KEYS``: e.g. the cpu budget runs one task with 5 seeds), applied by `resolve`.
``--set PATH=VALUE`` overrides (``sweeps/overrides.py``) are applied to the
raw YAML before validation, so an override is checked exactly like the file. Expansion into trials:
``sweeps/expand.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from analysis.budgets import BUDGET_ALIASES, BUDGETS, REQUIRED_BUDGETS, DeprecatedName, budget_name, deprecation
from analysis.budgets import summary as budget_summary_line
from rl_core.config import (ALGORITHMS, DEFAULT_GUIDANCE_KIND, GUIDANCE_KINDS, KNOWN_TASKS, PRECISIONS,
                            TRAIN_GUIDANCE_MODES)
from rl_core.errors import ConfigError
from rl_core.modes import get_mode

BUDGET_KEYS = ("steps", "eval_every", "episodes", "pretrain_steps", "batch_size", "pretrain_batch_size", "log_every",
               "recombine_every")  # recombine_every: optional; the recombination stage's checkpoint cadence
# top-level fields a budget may set for its runs (algo_config is merged per algorithm, the others replace)
BUDGET_OVERLAY_KEYS = ("tasks", "seeds", "algorithms", "train_guidance", "algo_config", "resources", "candidates")
RECOMBINATION_KINDS = ("double_guidance", "cross_algorithm")
MATCH_MODES = ("final", "step")
COMPARISON_KINDS = ("gfdt", "double_guidance", "plug_and_play", "swg_scale", "generic")
SELECTOR_KEYS = ("task", "algo", "train_guidance", "infer_source", "infer_method", "infer_scale",
                 "inference_precision")


# ----- small validators ----------------------------------------------------------------------
def _err(path: str, value: Any, allowed: Any) -> ConfigError:
    return ConfigError(f"spec field `{path}`: bad value {value!r}; allowed: {allowed}")


def _mapping(d: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(d, dict):
        raise _err(path, d, f"a mapping with keys {list(allowed)}")
    for k in d:
        if k not in allowed:
            raise ConfigError(f"spec field `{path}`: unknown key {k!r}; allowed keys: {list(allowed)}")
    for k in required:
        if k not in d:
            raise ConfigError(f"spec field `{path}`: missing required key {k!r}; allowed keys: {list(allowed)}")
    return d


def _int(v: Any, path: str, lo: int = 0, allow_none: bool = False) -> int | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _err(path, v, f"an integer >= {lo}" + (" or null" if allow_none else ""))
    return v


def _float(v: Any, path: str, lo: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (lo is not None and v < lo):
        raise _err(path, v, "a number" + (f" >= {lo}" if lo is not None else ""))
    return float(v)


def _choice(v: Any, path: str, allowed: tuple) -> Any:
    if v not in allowed:
        raise _err(path, v, list(allowed))
    return v


def _list(v: Any, path: str, item: Callable[[Any, str], Any], nonempty: bool = True) -> list:
    if not isinstance(v, list) or (nonempty and not v):
        raise _err(path, v, "a non-empty list" if nonempty else "a list")
    out = [item(x, f"{path}[{i}]") for i, x in enumerate(v)]
    for i, x in enumerate(out):
        if out.index(x) != i:
            raise ConfigError(f"spec field `{path}[{i}]`: duplicate value {x!r}; list values must be unique")
    return out


def _task(v: Any, path: str) -> str:
    """A D4RL-style task name ({env}-{level}), a dataset path, or ``minari:<id>``."""
    if isinstance(v, str) and (v.startswith("minari:") or "/" in v or v.endswith(".hdf5")):
        return v
    return _choice(v, path, KNOWN_TASKS + ("a dataset path", "minari:<dataset_id>"))


# ----- sections ------------------------------------------------------------------------------
def _budget(d: Any, path: str) -> dict:
    """One budget: its sizes (``BUDGET_KEYS``, defaults filled in) and the validated ``BUDGET_OVERLAY_KEYS`` it sets."""
    d = _mapping(d, path, BUDGET_KEYS + BUDGET_OVERLAY_KEYS, required=("steps", "eval_every", "episodes", "pretrain_steps"))
    out = {
        "steps": _int(d["steps"], f"{path}.steps", 1),
        "eval_every": _int(d["eval_every"], f"{path}.eval_every", 1),
        "episodes": _int(d["episodes"], f"{path}.episodes", 1),
        "pretrain_steps": _int(d["pretrain_steps"], f"{path}.pretrain_steps", 1),
        "batch_size": _int(d.get("batch_size", 256), f"{path}.batch_size", 1),
        "pretrain_batch_size": _int(d.get("pretrain_batch_size", 256), f"{path}.pretrain_batch_size", 1),
        "log_every": _int(d.get("log_every", 100), f"{path}.log_every", 1),
    }
    if out["steps"] % out["eval_every"]:
        raise _err(f"{path}.steps", out["steps"], f"a multiple of eval_every ({out['eval_every']})")
    if "recombine_every" in d:  # recombine only the checkpoints at multiples of it (default: every checkpoint)
        out["recombine_every"] = _int(d["recombine_every"], f"{path}.recombine_every", 1)
        if out["recombine_every"] % out["eval_every"] or out["recombine_every"] > out["steps"]:
            raise _err(f"{path}.recombine_every", out["recombine_every"],
                       f"a multiple of eval_every ({out['eval_every']}) up to steps ({out['steps']}); the last "
                       "recombined checkpoint is its largest multiple <= steps")
    if "tasks" in d:
        out["tasks"] = _list(d["tasks"], f"{path}.tasks", _task)
    if "seeds" in d:
        out["seeds"] = _list(d["seeds"], f"{path}.seeds", lambda v, p: _int(v, p))
    if "algorithms" in d:
        out["algorithms"] = _list(d["algorithms"], f"{path}.algorithms", lambda v, p: _choice(v, p, ALGORITHMS))
    if "train_guidance" in d:
        out["train_guidance"] = _list(d["train_guidance"], f"{path}.train_guidance",
                                      lambda v, p: _choice(v, p, TRAIN_GUIDANCE_MODES))
    if "algo_config" in d:
        ac = _mapping(d["algo_config"], f"{path}.algo_config", ALGORITHMS)
        for a, v in ac.items():  # the evaluations are resolved from the spec's algo_config, before any budget
            if isinstance(v, dict) and "n_candidates" in v:
                raise ConfigError(f"spec field `{path}.algo_config.{a}.n_candidates`: a budget sets the candidates "
                                  f"of its evaluations with `{path}.candidates: {{{a}: N}}`")
        out["algo_config"] = {a: _algo_config(v, f"{path}.algo_config.{a}", a) for a, v in ac.items()}
    if "resources" in d:
        out["resources"] = _resources(d["resources"], f"{path}.resources")
    if "candidates" in d:  # candidates per state at evaluation, per diffusion algorithm (a cost knob)
        c = _mapping(d["candidates"], f"{path}.candidates", ALGORITHMS)
        out["candidates"] = {a: _int(v, f"{path}.candidates.{a}", 1) for a, v in c.items()}
    return out


def _budgets(d: Any) -> dict:
    """The ``budgets`` section: every budget of ``BUDGETS`` present (``REQUIRED_BUDGETS`` must be), validated.

    ``budgets.quick`` (deprecated alias of ``smoke``, one `DeprecatedName` warning) is merged over
    ``budgets.smoke`` when both are given, so ``--set budgets.quick.steps=800`` still changes the smoke budget."""
    d = dict(_mapping(d, "budgets", BUDGETS + tuple(BUDGET_ALIASES)))
    for old, new in BUDGET_ALIASES.items():
        if old in d:
            warnings.warn(deprecation(old, f"spec field `budgets.{old}`"), DeprecatedName, stacklevel=4)
            part = _mapping(d.pop(old), f"budgets.{old}", BUDGET_KEYS + BUDGET_OVERLAY_KEYS)
            d[new] = {**(d.get(new) or {}), **part}
    for name in REQUIRED_BUDGETS:
        if name not in d:
            raise ConfigError(f"spec field `budgets`: missing required key {name!r}; allowed keys: {list(BUDGETS)} "
                              f"({', '.join(REQUIRED_BUDGETS)} required)")
    return {name: _budget(d[name], f"budgets.{name}") for name in BUDGETS if name in d}


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise _err(path, v, "true or false")
    return v


def _training(d: Any, path: str) -> dict:
    """How every diffusion-training trial runs its updates: ``precision`` (``rl_core.config.PRECISIONS``) and
    ``compile`` (TrainConfig fields of the same names; defaults fp32 / false, README "Precision and speed").
    Evaluation precision is ``eval.inference.<algo>.precision``."""
    from rl_core.train import TrainConfig

    d = _mapping(d if d is not None else {}, path, ("precision", "compile"))
    default = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in ("precision", "compile")}
    return {"precision": _choice(d.get("precision", default["precision"]), f"{path}.precision", PRECISIONS),
            "compile": _bool(d.get("compile", default["compile"]), f"{path}.compile")}


def _inference(d: Any, path: str, algo: str, algo_config: dict, base: dict | None = None) -> dict:
    """A resolved InferenceConfig dict plus ``scale_by_task`` (per-task scale, e.g. CleanDiffuser's
    weight_temperature). Starts from ``base`` (a resolved entry) or from ``InferenceConfig.defaults`` for
    the algorithm and its spec ``algo_config``; a changed method without a scale gets that method's default."""
    from rl_core.inference import InferenceConfig

    d = _mapping(d, path, InferenceConfig.field_names() + ("scale_by_task",))
    over = {k: v for k, v in d.items() if k != "scale_by_task"}
    method_changed = "method" in over and over["method"] != (base or {}).get("method")
    if method_changed and "scale" not in over:  # the base's scales are in another method's units
        over["scale"] = None
    try:
        start = {k: v for k, v in base.items() if k != "scale_by_task"} if base else \
            InferenceConfig.defaults(algo, algo_config).to_dict()
        out = InferenceConfig.from_dict({**start, **over}).to_dict()
    except ConfigError as exc:  # "inference.<field>=<value> is not allowed; ..." -> name the spec field
        m = re.match(r"inference\.(\w+)=(.*)", str(exc))
        raise ConfigError(f"spec field `{path}.{m.group(1)}`: bad value {m.group(2)}" if m else
                          f"spec field `{path}`: {exc}") from None
    by_task = d.get("scale_by_task", {} if method_changed else (base or {}).get("scale_by_task", {}))
    if not isinstance(by_task, dict):
        raise _err(f"{path}.scale_by_task", by_task, "a mapping task -> scale")
    out["scale_by_task"] = {_task(t, f"{path}.scale_by_task"): _float(v, f"{path}.scale_by_task.{t}")
                            for t, v in by_task.items()}
    return out


def inference_for(inference: dict, task: str) -> dict:
    """The InferenceConfig dict of a spec inference entry on ``task`` (applies ``scale_by_task``)."""
    out = {k: v for k, v in inference.items() if k != "scale_by_task"}
    out["scale"] = float(inference.get("scale_by_task", {}).get(task, out["scale"]))
    return out


def _resources(d: Any, path: str) -> dict:
    d = _mapping(d or {}, path, ("trial", "evaluators", "max_concurrent_trials"))
    trial = _mapping(d.get("trial", {}), f"{path}.trial", ("cpu", "gpu"))
    ev = _mapping(d.get("evaluators", {}), f"{path}.evaluators", ("count", "cpu", "gpu"))
    return {
        "trial": {"cpu": _float(trial.get("cpu", 1), f"{path}.trial.cpu", 0.0),
                  "gpu": _float(trial.get("gpu", 0), f"{path}.trial.gpu", 0.0)},
        "evaluators": {"count": _int(ev.get("count", 1), f"{path}.evaluators.count", 1),
                       "cpu": _float(ev.get("cpu", 1), f"{path}.evaluators.cpu", 0.0),
                       "gpu": _float(ev.get("gpu", 0), f"{path}.evaluators.gpu", 0.0)},
        "max_concurrent_trials": _int(d.get("max_concurrent_trials"), f"{path}.max_concurrent_trials", 1,
                                      allow_none=True),
    }


def _pretraining(d: Any, path: str, seeds: list[int]) -> dict:
    d = _mapping(d, path, ("name", "algo", "kind", "seeds", "save_every", "guidance_config"), required=("algo",))
    algo = _choice(d["algo"], f"{path}.algo", ALGORITHMS)
    kind = _choice(d.get("kind", DEFAULT_GUIDANCE_KIND[algo]), f"{path}.kind", GUIDANCE_KINDS)
    name = d.get("name", f"{algo}_{kind}")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise _err(f"{path}.name", name, "letters, digits, '_', '.', '-'")
    gcfg = d.get("guidance_config")
    if gcfg is not None and not isinstance(gcfg, dict):
        raise _err(f"{path}.guidance_config", gcfg, "a mapping of GuidanceConfig fields or null")
    critic_config(gcfg, kind, f"{path}.guidance_config")
    return {"name": name, "algo": algo, "kind": kind,
            "seeds": _list(d.get("seeds", seeds), f"{path}.seeds", lambda v, p: _int(v, p)),
            "save_every": _int(d.get("save_every"), f"{path}.save_every", 1, allow_none=True),
            "guidance_config": gcfg}


def _run_selector(d: Any, path: str, algos: list[str], modes: list[str]) -> dict:
    d = _mapping(d, path, ("algo", "train_guidance"), required=("algo", "train_guidance"))
    return {"algo": _choice(d["algo"], f"{path}.algo", tuple(algos)),
            "train_guidance": _choice(d["train_guidance"], f"{path}.train_guidance", tuple(modes))}


def _recombination(d: Any, path: str, spec: dict) -> dict:
    keys = ("name", "kind", "diffusion", "guidance", "guidance_algo", "match", "seed_shift", "inference")
    d = _mapping(d, path, keys, required=("name", "kind", "diffusion", "guidance"))
    kind = _choice(d["kind"], f"{path}.kind", RECOMBINATION_KINDS)
    diffusion = _run_selector(d["diffusion"], f"{path}.diffusion", spec["algorithms"], spec["train_guidance"])
    g = _mapping(d["guidance"], f"{path}.guidance", ("pretrained", "trained"))
    if len(g) != 1:
        raise _err(f"{path}.guidance", g, "exactly one of {pretrained: <pretraining name>} or "
                                         "{trained: {algo, train_guidance}}")
    if "pretrained" in g:
        names = [p["name"] for p in spec["pretraining"]]
        guidance = {"pretrained": _choice(g["pretrained"], f"{path}.guidance.pretrained", tuple(names))}
        g_algo = next(p["algo"] for p in spec["pretraining"] if p["name"] == guidance["pretrained"])
    else:
        guidance = {"trained": _run_selector(g["trained"], f"{path}.guidance.trained", spec["algorithms"],
                                             spec["train_guidance"])}
        g_algo = guidance["trained"]["algo"]
    shift = _int(d.get("seed_shift", 1 if kind == "double_guidance" else 0), f"{path}.seed_shift")
    if kind == "double_guidance" and shift % len(spec["seeds"]) == 0:
        raise _err(f"{path}.seed_shift", shift, f"not a multiple of the number of seeds ({len(spec['seeds'])}): "
                                                "double guidance takes guidance from another seed")
    if kind == "cross_algorithm" and g_algo == diffusion["algo"]:
        raise _err(f"{path}.guidance", g, f"guidance trained by an algorithm other than {diffusion['algo']!r}")
    base = spec["eval"]["inference"][diffusion["algo"]]
    algo, algo_config = diffusion["algo"], spec["algo_config"][diffusion["algo"]]
    inference = d.get("inference", {})
    if kind == "cross_algorithm" and isinstance(inference, dict):  # (a non-mapping: _inference names it)
        inference = _critic_scale(inference, base, spec, g_algo)
    name = d["name"]
    if not isinstance(name, str) or not name:
        raise _err(f"{path}.name", name, "a non-empty string")
    return {"name": name, "kind": kind, "diffusion": diffusion, "guidance": guidance, "guidance_algo": g_algo,
            "match": _choice(d.get("match", "final"), f"{path}.match", MATCH_MODES), "seed_shift": shift,
            "inference": _inference(inference, f"{path}.inference", algo, algo_config, base)}


def _critic_scale(inference: dict, base: dict, spec: dict, g_algo: str) -> dict:
    """A cross-algorithm recombination's inference with the scale of its critic: the scale multiplies the
    critic's output, so the critic keeps the scale and per-task table its own algorithm evaluates with
    (``eval.inference.<g_algo>``; the algorithm's defaults when the spec does not run it), whichever diffusion
    model draws the candidates. Only when the selection method is the one the critic's algorithm uses (other
    methods get their own default scale); what the recombination sets itself is kept."""
    from rl_core.inference import InferenceConfig

    own = spec["eval"]["inference"].get(g_algo) or dict(InferenceConfig.defaults(g_algo).to_dict(), scale_by_task={})
    if inference.get("method", base["method"]) != own["method"]:
        return dict(inference)
    return {"scale": own["scale"], "scale_by_task": dict(own["scale_by_task"]), **inference}


def infer_source(entry: dict) -> str:
    """The ``infer_source`` of a recombination's eval rows, the same for every seed so that comparisons
    select all seeds by equality: ``seed:+<shift>`` (double guidance) or ``algo:<algo>`` (cross-algorithm),
    with ``-final`` when the guidance is the source run's final critic rather than the step-matched one.
    The absolute guidance seed is in the ``guidance_seed`` column."""
    ref = f"seed:+{entry['seed_shift']}" if entry["kind"] == "double_guidance" else f"algo:{entry['guidance_algo']}"
    if entry["kind"] == "cross_algorithm" and entry["seed_shift"]:
        ref += f"+{entry['seed_shift']}"
    return ref + ("-final" if entry["match"] == "final" else "")


def _selector(d: Any, path: str) -> dict:
    d = _mapping(d, path, SELECTOR_KEYS, required=("algo",))
    if "inference_precision" in d:
        _choice(d["inference_precision"], f"{path}.inference_precision", PRECISIONS)
    return dict(d)


def _comparison(d: Any, path: str) -> dict:
    d = _mapping(d, path, ("name", "kind", "method", "baseline"), required=("name", "method", "baseline"))
    return {"name": str(d["name"]), "kind": _choice(d.get("kind", "generic"), f"{path}.kind", COMPARISON_KINDS),
            "method": _selector(d["method"], f"{path}.method"),
            "baseline": _selector(d["baseline"], f"{path}.baseline")}


TOP_KEYS = ("name", "description", "tasks", "algorithms", "train_guidance", "seeds", "pretraining", "budgets",
            "training", "eval", "algo_config", "guidance_config", "resources", "max_failures", "recombination",
            "report", "scale", "budget")


def validate_spec(raw: Any) -> dict:
    """Validate a raw spec (parsed YAML) and return it with every default filled in.

    Each budget that narrows the experiment (``BUDGET_OVERLAY_KEYS``) is checked too, applied to the spec
    (`apply_budget`): errors then name the budget (``budgets.cpu applied to the spec: ...``)."""
    spec = _validate(raw)
    if "scale" not in spec:  # a resolved spec (RUN_DIR/spec.yaml) already has its budget applied
        for name, b in spec["budgets"].items():
            if any(k in b for k in BUDGET_OVERLAY_KEYS):
                try:
                    _validate(apply_budget(_unresolved(spec), b))
                except ConfigError as exc:
                    raise ConfigError(f"spec field `budgets.{name}` applied to the spec: {exc}") from None
    return spec


def _validate(raw: Any) -> dict:
    d = _mapping(raw, "<spec>", TOP_KEYS, required=("name", "tasks", "algorithms", "train_guidance", "seeds",
                                                     "budgets"))
    name = d["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise _err("name", name, "letters, digits, '_', '.', '-'")
    spec: dict[str, Any] = {"name": name, "description": str(d.get("description", ""))}
    spec["tasks"] = _list(d["tasks"], "tasks", _task)
    spec["algorithms"] = _list(d["algorithms"], "algorithms", lambda v, p: _choice(v, p, ALGORITHMS))
    spec["train_guidance"] = _list(d["train_guidance"], "train_guidance",
                                   lambda v, p: _choice(v, p, TRAIN_GUIDANCE_MODES))
    spec["seeds"] = _list(d["seeds"], "seeds", lambda v, p: _int(v, p))
    spec["pretraining"] = _list(d.get("pretraining", []), "pretraining",
                                lambda v, p: _pretraining(v, p, spec["seeds"]), nonempty=False)
    spec["budgets"] = _budgets(d["budgets"])
    spec["training"] = _training(d.get("training"), "training")
    ac = _mapping(d.get("algo_config", {}), "algo_config", ALGORITHMS)
    spec["algo_config"] = {a: _algo_config(ac.get(a, {}), f"algo_config.{a}", a) for a in spec["algorithms"]}
    ev = _mapping(d.get("eval", {}), "eval", ("max_episode_steps", "inference"))
    inf = _mapping(ev.get("inference", {}), "eval.inference", ALGORITHMS)
    spec["eval"] = {"max_episode_steps": _int(ev.get("max_episode_steps", 1000), "eval.max_episode_steps", 1),
                    "inference": {a: _inference(inf.get(a, {}), f"eval.inference.{a}", a, spec["algo_config"][a])
                                  for a in spec["algorithms"]}}
    gc = _mapping(d.get("guidance_config", {}), "guidance_config", ALGORITHMS)
    for a, v in gc.items():
        if v is not None and not isinstance(v, dict):
            raise _err(f"guidance_config.{a}", v, "a mapping of GuidanceConfig fields (the joint / noise critic) or null")
    spec["guidance_config"] = {a: dict(gc[a]) if gc.get(a) else None for a in spec["algorithms"]}
    for a, v in spec["guidance_config"].items():
        critic_config(v, DEFAULT_GUIDANCE_KIND[a], f"guidance_config.{a}")
    spec["resources"] = _resources(d.get("resources"), "resources")
    spec["max_failures"] = _int(d.get("max_failures", 2), "max_failures", -1)
    _check_pretraining_covers(spec)
    spec["recombination"] = _list(d.get("recombination", []), "recombination",
                                  lambda v, p: _recombination(v, p, spec), nonempty=False)
    seen: dict[tuple, int] = {}
    for i, r in enumerate(spec["recombination"]):
        key = (r["diffusion"]["algo"], r["diffusion"]["train_guidance"], infer_source(r))
        if key in seen:
            raise ConfigError(f"spec field `recombination[{i}]`: evaluates {key[0]}/{key[1]} with infer_source "
                              f"{key[2]!r} like `recombination[{seen[key]}]`; change seed_shift, match or guidance")
        seen[key] = i
    rep = _mapping(d.get("report", {}), "report", ("comparisons",))
    spec["report"] = {"comparisons": _list(rep.get("comparisons", []), "report.comparisons", _comparison,
                                           nonempty=False)}
    if "scale" in d:  # a resolved spec (RUN_DIR/spec.yaml) records its budget's name (an old `quick` reads as smoke)
        spec["scale"] = _choice(budget_name(d["scale"]) or d["scale"], "scale", tuple(spec["budgets"]))
        spec["budget"] = spec["budgets"][spec["scale"]]
    return spec


def critic_config(overrides: dict | None, kind: str, path: str = "guidance_config") -> dict:
    """Every field of a fresh / pretrained critic's GuidanceConfig, resolved (``kind`` is set by the loop)."""
    from rl_core.guidance import GuidanceConfig

    try:
        resolved = GuidanceConfig.from_dict({**(overrides or {}), "kind": kind}).resolved().to_dict()
    except ConfigError as exc:
        raise ConfigError(f"spec field `{path}`: {exc}") from None
    return {k: v for k, v in resolved.items() if k != "kind"}


def _algo_config(v: Any, path: str, algo: str) -> dict:
    """Overrides of the algorithm's config, checked by building it (unknown fields and bad values named)."""
    from rl_core.algos import get_algorithm

    if not isinstance(v, dict):
        raise _err(path, v, "a mapping of the algorithm's config fields")
    try:
        get_algorithm(algo).Config.from_dict(dict(v))
    except ConfigError as exc:
        raise ConfigError(f"spec field `{path}`: {exc}") from None
    return dict(v)


def _check_pretraining_covers(spec: dict) -> None:
    """frozen/unfrozen trials need a pretraining entry trained by their algorithm, for every seed."""
    modes = [m for m in spec["train_guidance"] if get_mode(m).needs_artifact]
    names = [p["name"] for p in spec["pretraining"]]
    if len(set(names)) != len(names):
        raise _err("pretraining", names, "entries with unique names")
    for a in spec["algorithms"] if modes else []:
        entry = pretraining_for(spec, a)
        if entry is None:
            raise ConfigError(f"spec field `train_guidance`: {modes} with algorithm {a!r} needs a `pretraining` "
                              f"entry with `algo: {a}`; pretraining entries: {names or 'none'}")
        missing = [s for s in spec["seeds"] if s not in entry["seeds"]]
        if missing:
            raise _err(f"pretraining[{names.index(entry['name'])}].seeds", entry["seeds"],
                       f"a list containing every spec seed {spec['seeds']} (missing {missing})")


def pretraining_for(spec: dict, algo: str) -> dict | None:
    """The pretraining entry whose artifacts frozen/unfrozen trials of ``algo`` train against."""
    return next((p for p in spec["pretraining"] if p["algo"] == algo), None)


# ----- loading -------------------------------------------------------------------------------
def packaged_specs() -> list[str]:
    """Names of the specs shipped in ``sweeps/specs``."""
    return sorted(p.name[:-5] for p in resources.files("sweeps").joinpath("specs").iterdir()
                  if p.name.endswith(".yaml"))


def read_raw_spec(path_or_name: str | Path) -> dict:
    """The parsed (not yet validated) YAML of a spec file or a packaged spec name."""
    p = Path(path_or_name)
    if p.is_file():
        text = p.read_text()
    elif str(path_or_name) in packaged_specs():
        text = resources.files("sweeps").joinpath("specs", f"{path_or_name}.yaml").read_text()
    else:
        raise ConfigError(f"spec {str(path_or_name)!r} is neither a file nor a packaged spec; "
                          f"packaged specs: {packaged_specs()}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"spec {str(path_or_name)!r} is not valid YAML: {exc}") from None


def load_spec(path_or_name: str | Path, overrides: list[str] | None = None) -> dict:
    """Load and validate a spec file, or a packaged spec by name (e.g. ``quickstart``), with ``--set`` overrides."""
    from sweeps.overrides import apply_overrides

    return validate_spec(apply_overrides(read_raw_spec(path_or_name), overrides or []))


def apply_budget(raw: dict, budget: dict) -> dict:
    """A copy of the (raw or validated, unresolved) spec ``raw`` with the ``BUDGET_OVERLAY_KEYS`` of ``budget``
    applied: ``tasks``, ``seeds``, ``algorithms``, ``train_guidance`` and ``resources`` replace the spec's,
    ``algo_config`` is merged over the spec's per algorithm, ``candidates`` ({algo: n}) sets the candidates
    per state of every evaluation that samples algo's diffusion model (its own and the recombinations',
    whatever they set themselves: it is the budget's cost knob). Pretraining entries that cover exactly the spec's
    seeds (or name none) follow the budget's seeds; recombinations and report comparisons whose arms the
    budget leaves out (an algorithm, training-guidance mode or task it does not run) are dropped."""
    out = copy.deepcopy(raw)
    for key in ("tasks", "algorithms", "train_guidance", "resources"):
        if key in budget:
            out[key] = copy.deepcopy(budget[key])
    if "seeds" in budget:
        for entry in out.get("pretraining") or []:
            if isinstance(entry, dict) and entry.get("seeds") in (None, raw.get("seeds")):
                entry["seeds"] = list(budget["seeds"])
        out["seeds"] = list(budget["seeds"])
    if "algo_config" in budget:
        merged = dict(out.get("algo_config") or {})
        for algo, over in budget["algo_config"].items():
            merged[algo] = {**(merged.get(algo) or {}), **over}
        out["algo_config"] = merged
    for algo, n in (budget.get("candidates") or {}).items():  # every evaluation drawing from algo's diffusion
        if algo not in (out.get("algorithms") or []):  # not run (e.g. --set algorithms=[dql]): nothing to set
            continue
        ev = out["eval"] = out.get("eval") or {}
        ev.setdefault("inference", {}).setdefault(algo, {})["n_candidates"] = n
        for r in out.get("recombination") or []:
            if isinstance(r, dict) and isinstance(r.get("diffusion"), dict) and r["diffusion"].get("algo") == algo:
                r.setdefault("inference", {})["n_candidates"] = n
    def runs(sel: Any) -> bool:
        return not isinstance(sel, dict) or (
            sel.get("algo", "*") in list(out.get("algorithms") or []) + ["*"]
            and sel.get("train_guidance", "*") in list(out.get("train_guidance") or []) + ["*"]
            and sel.get("task", "*") in list(out.get("tasks") or []) + ["*"])

    narrows = any(k in budget for k in ("algorithms", "train_guidance", "tasks"))
    if narrows and isinstance(out.get("recombination"), list):  # recombinations of arms the budget does not run
        out["recombination"] = [
            r for r in out["recombination"]
            if not isinstance(r, dict) or (runs(r.get("diffusion")) and runs((r.get("guidance") or {}).get("trained")))]
    if narrows and isinstance(out.get("report"), dict):
        out["report"] = dict(out["report"], comparisons=[
            c for c in out["report"].get("comparisons") or []
            if not isinstance(c, dict) or (runs(c.get("method")) and runs(c.get("baseline")))])
    return out


def _unresolved(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in ("scale", "budget")}


def resolve(spec: dict, scale: str, overrides: list[str] | None = None) -> dict:
    """The spec at budget ``scale`` (``smoke | cpu | paper``; ``quick`` = smoke, with a `DeprecatedName`
    warning): the budget applied (`apply_budget`) and validated, with ``scale`` (the budget's name) and
    ``budget`` (its entry) added. ``overrides`` (``--set``, already applied to ``spec``) of a key the budget
    also sets (``BUDGET_OVERLAY_KEYS``, e.g. ``seeds``) are applied to the budget too: the command line
    wins over the budget, as over the file."""
    from sweeps.overrides import apply_overrides, override_key

    name = budget_name(scale)
    if name is None:
        raise _err("--scale", scale, list(BUDGETS) + [f"{a} (deprecated: {n})" for a, n in BUDGET_ALIASES.items()])
    if name != scale:
        warnings.warn(deprecation(scale), DeprecatedName, stacklevel=2)
    if name not in spec["budgets"]:
        raise ConfigError(f"--scale {name}: spec {spec['name']!r} has no `budgets.{name}`; its budgets: "
                          f"{list(spec['budgets'])}")
    try:
        late = [f"budgets.{name}.{o.strip()}" for o in overrides or []
                if override_key(o) in BUDGET_OVERLAY_KEYS and override_key(o) in spec["budgets"][name]]
        raw = apply_overrides(_unresolved(spec), late)
        budget = raw["budgets"][name]
        cli = _cli_candidates(overrides or [])
        if cli & set(budget.get("candidates") or {}):  # --set eval.inference.<algo>.n_candidates wins over the budget
            budget = dict(budget, candidates={a: n for a, n in budget["candidates"].items() if a not in cli})
        out = _validate(apply_budget(raw, budget))
    except ConfigError as exc:
        raise ConfigError(f"spec field `budgets.{name}` applied to the spec: {exc}") from None
    out["scale"] = name
    out["budget"] = out["budgets"][name]
    return out


def _cli_candidates(overrides: list[str]) -> set[str]:
    """The algorithms whose evaluation candidates ``--set`` gives (``eval.inference.idql.n_candidates=32`` or
    ``eval.inference.idql={..., n_candidates: 32}``)."""
    from sweeps.overrides import apply_overrides, override_key

    ev = apply_overrides({}, [o for o in overrides if override_key(o) == "eval"]).get("eval")
    inf = ev.get("inference") if isinstance(ev, dict) else None
    return {a for a, v in inf.items() if isinstance(v, dict) and "n_candidates" in v} if isinstance(inf, dict) else set()


def budget_summary(spec: dict) -> str:
    """One line for a resolved spec: which budget it runs and what that budget can show
    (`analysis.budgets.summary`), printed by ``mdpt sweep`` before it starts and by ``--dry-run``."""
    b = spec["budget"]
    return budget_summary_line(spec["scale"], tasks=len(spec["tasks"]), seeds=len(spec["seeds"]), steps=b["steps"],
                               eval_every=b["eval_every"], episodes=b["episodes"])


def dump_spec(spec: dict) -> str:
    """YAML text of a (resolved) spec, as written to ``RUN_DIR/spec.yaml``."""
    return yaml.safe_dump(spec, sort_keys=False)
