"""One file per algorithm: dql.py, idql.py, edp.py, swg.py. ``get_algorithm(name)`` imports lazily."""

from __future__ import annotations

import importlib

from rl_core.errors import ConfigError

ALGORITHM_PATHS = {
    "dql": "rl_core.algos.dql:DQL",
    "idql": "rl_core.algos.idql:IDQL",
    "edp": "rl_core.algos.edp:EDP",
    "swg": "rl_core.algos.swg:SWG",
}
TRAIN_GUIDANCE_MODES = ("joint", "none", "noise", "frozen", "unfrozen")


def get_algorithm(name: str) -> type:
    """The algorithm class registered under ``name`` (dql | idql | edp | swg)."""
    if name not in ALGORITHM_PATHS:
        raise ConfigError(f"unknown algorithm '{name}'; allowed: {sorted(ALGORITHM_PATHS)}")
    module, cls = ALGORITHM_PATHS[name].split(":")
    return getattr(importlib.import_module(module), cls)
