"""Generate D4RL-v2-style datasets from real behaviour policies acting in the real PyBullet envs.

Modules (import them directly; this package imports nothing):
- ``budgets``: ``Budget`` / ``SACConfig`` and the named ``BUDGETS`` (everything that sizes a run).
- ``policies``: numpy behaviour policies (``MLPPolicy``, ``noisy``, ``uniform``) and the parser of
  the 2017 pybullet experts.
- ``collect``: seeded whole-episode ``rollout``s, reset-seed streams, reference scores.
- ``dagger`` / ``sac``: the two learning processes (``sac`` is the only module using stable-baselines3).
- ``process``: a learning process on disk (``Process``, ``behaviour_process``: load or train).
- ``make``: ``make_dataset`` / ``ensure_dataset``, one task level into ``<root>/<task>/``.

Semantics (D4RL v2, ``scripts/generation/mujoco/collect_data.py``): ``rewards[i] = r(s_i, a_i)``;
``terminals[i]`` only on true termination (the robot fell); ``timeouts[i]`` when the 1000-step
TimeLimit truncated the episode; ``next_observations[i] = s_{i+1}``. Datasets hold whole episodes
(collection stops at the first episode end after ``Budget.transitions`` steps); episode j of a
collection is reset with seed ``reset_seed_base + j`` (recorded in the metadata), so any episode
can be replayed.

Behaviour policies come from one *learning process* per (env, budget, seed), kept on disk under
``<root>/_policies/<env_id>/<budget>-seed<seed>/`` (``process.json``, snapshots, the training
transitions) so datasets can be regenerated or extended without retraining:

- ``sac`` (every env in the ``standard``/``paper`` budgets; HalfCheetah and Walker2D always):
  stable-baselines3 SAC with the RL Zoo PyBullet settings (``SACConfig``, reference ``datasets.md``
  §4.1), an actor snapshot every ``sac_snapshot_every`` steps, each evaluated over
  ``eval_episodes`` stochastic episodes. expert = the final policy.
- ``dagger`` (Hopper and Ant in the ``quick``/``tiny`` budgets): the pybullet wheel ships policies
  trained in 2017 (``pybullet_envs/examples/enjoy_TF_*_2017may.py``; a 128-64 ReLU MLP, its numpy
  arrays parsed with ``ast`` without importing the file). They score ~2500 (Hopper) / ~2100 (Ant)
  here and serve as the expert. The learning process is DAgger (Ross et al., 2011) from that
  expert: a fresh MLP student is fit by MSE to the expert's actions on a small demonstration set;
  each round trains ``dagger_grad_steps`` Adam steps on the aggregate, saves a snapshot, rolls the
  snapshot out (with the dataset's action noise) for ``dagger_rollout_steps`` steps -- these
  episodes are its evaluation -- and adds the visited states, labelled by the expert, to the
  aggregate. Few steps per round make the return climb gradually, in minutes on a laptop.

Levels: medium = the first snapshot whose evaluation return reaches the normalised score
``100 * fraction``, i.e. ``ref_min_score + fraction * (ref_max_score - ref_min_score)`` (on Ant the random
policy already scores ~360 by surviving, so a fraction of the raw expert return would be too low);
medium-replay = the learner's own training transitions up to and including that snapshot's
evaluation rollouts (SAC: every training step up to the snapshot, warm-up included; DAgger: the
learner's rollouts, not the expert demonstrations); expert = the expert policy; random = uniform
actions in [-1, 1]; medium-expert = medium followed by expert. Deterministic policies (the 2017
expert, DAgger students) act with Gaussian noise ``action_noise`` (clipped to [-1, 1]); SAC samples
its stochastic policy, resampling the gSDE exploration matrix every ``gsde_resample_every`` steps
(outside ``learn`` SB3 never does, reference §4.4).

Reference scores (per env, stored with every dataset): ref_min = mean return of the uniform random
policy over ``ref_random_episodes`` episodes; ref_max = mean return of the expert acting
deterministically over ``ref_expert_episodes`` episodes.
"""
