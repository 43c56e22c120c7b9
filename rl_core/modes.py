"""The one interpreter of the training-guidance mode (``train_guidance``; DESIGN.md "Core concepts").

A mode says how guidance (a critic) is present while a diffusion policy trains. Everything that
depends on the mode — whether the loop builds or loads a critic, whether the algorithm updates it,
whether the critic term enters the actor's loss, which inference a trial gets by default, what the
``guidance_seed`` of its rows is, which spec entries it needs — reads the table below, never the
mode's name. Adding or redefining a mode is a change of one row.

| mode     | critic (source)         | trained while the policy trains | in the actor's loss |
|----------|-------------------------|---------------------------------|---------------------|
| joint    | fresh, the algorithm's  | yes                             | yes                 |
| none     | fresh, the algorithm's  | yes                             | no (η = 0)          |
| bc       | none                    | -                               | no                  |
| noise    | fresh random, frozen    | no                              | yes (random signal) |
| frozen   | pretrained artifact     | no                              | yes                 |
| unfrozen | pretrained artifact     | yes                             | yes                 |

``none`` is the GFDT paper's "without guidance" arm as its code runs it (``reference/protocol.md``):
the critic is still trained by TD every step and still selects among candidates at inference; only
the actor's loss loses its Q term. ``bc`` is pure behaviour cloning with no critic at all. For IDQL,
whose actor loss never has a critic term, ``none`` trains exactly like ``joint``; for SWG ``none`` and
``bc`` train with w ≡ 1.

Frozen means ``requires_grad_(False)`` (not ``no_grad``): ∇_a Q still reaches the actions.
Inference: a mode without a critic evaluates one unselected sample (method ``none``); the others
use the trial's inference config with the critic the snapshot carries.

This module imports no torch at import time (``build_critic`` imports the guidance module lazily),
so spec validation can consult it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rl_core.config import TRAIN_GUIDANCE_MODES, check_choice
from rl_core.errors import ConfigError

CriticSource = Literal["none", "fresh", "random", "artifact"]


@dataclass(frozen=True)
class Mode:
    """What one training-guidance mode means (see the module table)."""

    name: str
    critic: CriticSource  # where the critic comes from: none | fresh (the algorithm's kind) | random | artifact
    trained: bool  # the critic is updated while the diffusion model trains
    guides_actor: bool  # the critic term (η·L_q, SWG weights, ...) enters the actor's loss

    @property
    def has_critic(self) -> bool:
        return self.critic != "none"

    @property
    def needs_artifact(self) -> bool:
        """Trials of this mode train against a pretrained guidance artifact (a pretraining stage)."""
        return self.critic == "artifact"

    @property
    def frozen(self) -> bool:
        """The critic exists and never changes during training."""
        return self.has_critic and not self.trained

    def inference(self, inference: dict) -> dict:
        """The InferenceConfig dict a trial of this mode is evaluated with by default (``without_critic``
        when the mode has no critic)."""
        return inference if self.has_critic else without_critic(inference)

    def guidance_seed(self, trial_seed: int, artifact_seed: int | None = None) -> int:
        """The ``guidance_seed`` column: the artifact's seed, the trial's for fresh critics, -1 without one."""
        if not self.has_critic:
            return -1
        return int(artifact_seed) if self.needs_artifact and artifact_seed is not None else int(trial_seed)


def without_critic(inference: dict) -> dict:
    """The inference a snapshot without a critic gets: nothing to select with, so one unguided sample (method
    ``none``) — except SWG self-guidance, which needs no critic with one candidate or selection by weight."""
    self_guided = inference["method"] == "swg" and (inference.get("n_candidates", 1) == 1
                                                    or inference.get("swg_select") == "weight")
    return inference if self_guided else dict(inference, method="none")


MODES: dict[str, Mode] = {
    "joint": Mode("joint", critic="fresh", trained=True, guides_actor=True),
    "none": Mode("none", critic="fresh", trained=True, guides_actor=False),
    "bc": Mode("bc", critic="none", trained=False, guides_actor=False),
    "noise": Mode("noise", critic="random", trained=False, guides_actor=True),
    "frozen": Mode("frozen", critic="artifact", trained=False, guides_actor=True),
    "unfrozen": Mode("unfrozen", critic="artifact", trained=True, guides_actor=True),
}
assert tuple(MODES) == TRAIN_GUIDANCE_MODES, "rl_core.config.TRAIN_GUIDANCE_MODES and MODES must list the same modes"

PRETRAINED_MODES = tuple(m for m, v in MODES.items() if v.needs_artifact)


def get_mode(name: str, field: str = "train_guidance") -> Mode:
    """The ``Mode`` called ``name``; ConfigError naming ``field`` and the allowed modes otherwise."""
    check_choice(field, name, TRAIN_GUIDANCE_MODES)
    return MODES[name]


def build_critic(mode: Mode, *, default_kind: str, obs_dim: int, act_dim: int, seed: int,
                 guidance_config: dict | None = None, artifact: Any = None, expect_fingerprint: str | None = None,
                 normalizer: Any = None, device: str = "cpu") -> tuple[Any, dict | None]:
    """(critic or None, its artifact meta or None) for ``mode``: the only place a training critic is made.

    fresh: a new critic of ``default_kind`` (the algorithm's own: td for DQL/EDP, iql for IDQL/SWG);
    random: a random critic (noise mode); artifact: ``load_artifact(artifact, ...)`` checked against the
    dataset fingerprint, shapes and normaliser. Freezing is the algorithm's business (``Mode.frozen``).
    """
    if not mode.has_critic:
        return None, None
    from rl_core import guidance as G

    if mode.needs_artifact:
        if artifact is None:
            raise ConfigError(f"train_guidance={mode.name!r} needs a pretrained guidance artifact "
                              "(TrainConfig.guidance_artifact); got none")
        return G.load_artifact(artifact, expect_fingerprint=expect_fingerprint, obs_dim=obs_dim, act_dim=act_dim,
                               normalizer=normalizer, device=device)
    kind = default_kind if mode.critic == "fresh" else "random"
    gcfg = G.GuidanceConfig.from_dict({**(guidance_config or {}), "kind": kind})
    return G.make_guidance(gcfg, obs_dim, act_dim, seed, device=device), None
