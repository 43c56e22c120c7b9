"""Offline datasets and the environments they come from (imports nothing heavy; import the modules).

- ``rl_core.data.dataset``: ``OfflineDataset`` (the container every loader and generator returns),
  ``FIELDS``, ``normalized_score``, ``compute_fingerprint``.
- ``rl_core.data.io``: the data root, ``KNOWN_TASKS``, ``load_dataset`` / ``save_dataset`` (Parquet +
  metadata.json) and the D4RL / d4rl-pybullet HDF5 and Minari loaders.
- ``rl_core.data.envs``: ``TASK_ENVS``, ``make_env``, ``make_vector_env`` (PyBullet via Gymnasium).
- ``rl_core.data.gen``: dataset generation from real behaviour policies (``gen.make.make_dataset``,
  ``gen.make.ensure_dataset``); the only part that uses stable-baselines3.
"""
