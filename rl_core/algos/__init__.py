"""One file per algorithm: dql.py, idql.py, edp.py, swg.py. ``get_algorithm(name)`` imports lazily."""

from __future__ import annotations

import importlib

from rl_core.config import ALGORITHMS
from rl_core.errors import ConfigError

ALGORITHM_PATHS = {  # one entry per rl_core.config.ALGORITHMS name
    "dql": "rl_core.algos.dql:DQL",
    "idql": "rl_core.algos.idql:IDQL",
    "edp": "rl_core.algos.edp:EDP",
    "swg": "rl_core.algos.swg:SWG",
}


def get_algorithm(name: str) -> type:
    """The algorithm class registered under ``name`` (dql | idql | edp | swg)."""
    if name not in ALGORITHM_PATHS:
        raise ConfigError(f"unknown algorithm '{name}'; allowed: {list(ALGORITHMS)}")
    module, cls = ALGORITHM_PATHS[name].split(":")
    return getattr(importlib.import_module(module), cls)


assert tuple(ALGORITHM_PATHS) == ALGORITHMS, "rl_core.config.ALGORITHMS and ALGORITHM_PATHS must list the same names"
