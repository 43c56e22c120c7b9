"""Generate D4RL-v2-style datasets by rolling out behaviour policies in the real PyBullet envs.

Modules (import them directly; this package imports nothing):
- ``budgets``: ``Budget`` and the named ``BUDGETS`` (dataset sizes only).
- ``policies``: ``MLPPolicy`` (numpy, reproducible inference, ``.npz`` weight files) and the parser of
  the 2017 pybullet experts.
- ``collect``: seeded whole-episode ``rollout``s (several envs in lockstep), reset-seed streams,
  reference scores.
- ``policyset``: an env's policy set on disk (expert, DAgger snapshots, ``provenance.json``), shipped
  in ``rl_core/data/policies/<env>/``, and ``train_policies`` (``mdpt data train-policies``).
- ``dagger`` / ``sac``: the learning processes behind a policy set (torch; ``sac`` is the only module
  using stable-baselines3). Making datasets needs neither.
- ``make``: ``make_dataset`` / ``make_datasets`` / ``ensure_dataset``, tasks into ``<root>/<task>/``.

Semantics (D4RL v2, ``scripts/generation/mujoco/collect_data.py``): ``rewards[i] = r(s_i, a_i)``;
``terminals[i]`` only on true termination (the robot fell); ``timeouts[i]`` when the 1000-step
TimeLimit truncated the episode; ``next_observations[i] = s_{i+1}``. Datasets hold whole episodes:
the first episodes j = 0, 1, ... that reach ``Budget.transitions``; episode j resets its env with seed
``reset_seed_base + j`` (recorded in the metadata) and draws its action noise from its own generator
(``collect``), so any episode can be replayed and the data do not depend on the machine, the thread
count or how many envs ran in lockstep.

Levels (``make``): random = uniform actions in [-1, 1]; medium / expert = the policy set's medium /
expert policy with Gaussian action noise (std ``action_noise`` of the set, 0.1, clipped);
medium-replay = the set's learning-process snapshots in order, each rolled out with the same noise,
``Budget.replay_transitions`` spread evenly over them; medium-expert = medium followed by expert.

Reference scores (per env, stored with every dataset; mdpt's scale): ref_min = mean return of the
uniform random policy over 100 episodes; ref_max = mean return of the expert acting deterministically
over 20 episodes; both computed when the policy set is trained and recorded in its provenance.
"""
