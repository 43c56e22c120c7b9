"""``--set PATH=VALUE`` overrides of a sweep spec, applied to the raw YAML before validation (so an
override is validated exactly like the file: a wrong key gets the usual unknown-key error)."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from rl_core.errors import ConfigError

_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def _parse_path(path: str) -> list[str | int]:
    """``budgets.smoke.steps`` -> ['budgets', 'smoke', 'steps']; ``pretraining[0].kind`` -> ['pretraining', 0, 'kind']."""
    parts: list[str | int] = []
    for chunk in path.split("."):
        m = _PATH_PART.fullmatch(chunk)
        if m is None:
            raise ConfigError(f"--set {path!r}: bad path; use dotted keys with [i] list indices, e.g. "
                              "budgets.smoke.steps or pretraining[0].kind")
        parts.append(m.group(1))
        parts += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return parts


def override_key(item: str) -> str:
    """The top-level spec key a ``PATH=VALUE`` override sets (``seeds`` for ``seeds=[0,1]``)."""
    return item.split("=", 1)[0].strip().split(".", 1)[0].split("[", 1)[0]


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """A copy of the raw (unvalidated) spec with ``PATH=VALUE`` overrides applied; VALUE is parsed as YAML
    (``seeds=[0,1,2,3,4]``, ``tasks=[hopper-medium]``, ``budgets.smoke.steps=800``). Missing mappings on the
    path are created, so a wrong key reaches validation and gets its usual error (allowed keys listed)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected PATH=VALUE, e.g. --set seeds=[0,1,2]")
        path, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: VALUE is not valid YAML ({exc})") from None
        parts = _parse_path(path.strip())
        node: Any = out
        for i, key in enumerate(parts[:-1]):
            where = ".".join(str(p) for p in parts[:i + 1])
            if isinstance(key, int):
                if not isinstance(node, list) or key >= len(node):
                    raise ConfigError(f"--set {path}: `{where}` is not an index of a list in the spec")
                node = node[key]
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"--set {path}: `{where}` is not inside a mapping in the spec")
                node = node.setdefault(key, {})
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last >= len(node):
                raise ConfigError(f"--set {path}: index {last} is not in a list of the spec")
        elif not isinstance(node, dict):
            raise ConfigError(f"--set {path}: its parent is not a mapping in the spec")
        node[last] = value
    return out
