"""Offline datasets and the environments they come from (imports nothing heavy; import the modules).

- ``rl_core.data.dataset``: ``OfflineDataset`` (the container every loader and generator returns),
  ``FIELDS``, ``normalized_score``, ``compute_fingerprint``.
- ``rl_core.data.io``: the data root, ``KNOWN_TASKS``, ``load_dataset`` / ``save_dataset`` (Parquet +
  metadata.json), the D4RL / d4rl-pybullet HDF5, Parquet-file and Minari loaders, the env and
  reference-score resolution of foreign datasets, and ``import_dataset``.
- ``rl_core.data.envs``: ``TASK_ENVS``, ``ENV_DIMS``, ``make_env``, ``make_vector_env`` (PyBullet via Gymnasium).
- ``rl_core.data.gen``: dataset generation: deterministic rollouts of the behaviour policies shipped in
  ``rl_core/data/policies/<env>/`` (``gen.make.make_dataset``, ``make_datasets``, ``ensure_dataset``) and
  their training (``gen.policyset.train_policies``; the only part that uses torch and stable-baselines3).
"""
