"""The `mdpt` command line.

Each group of subcommands lives in its own module (``sweeps/cmd_*.py``) exposing
``register(subparsers) -> None``; this file only wires them together. Modules import their
heavy dependencies (torch, ray) inside the command functions so that ``mdpt --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from analysis.budgets import DeprecatedName
from analysis.errors import AnalysisError
from rl_core.errors import MdptError

# Order = order in `mdpt --help`.
COMMAND_MODULES = (
    "sweeps.cmd_quickstart",
    "sweeps.cmd_data",
    "sweeps.cmd_train",
    "sweeps.cmd_sweep",
    "sweeps.cmd_tune",
    "sweeps.cmd_report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdpt",
        description=(
            "mdpt: distributed sweeps for diffusion-policy offline RL (DQL, IDQL, EDP, SWG) with "
            "modular guidance: pretrain critics, freeze them, swap them between seeds and "
            "algorithms, evaluate every checkpoint on Ray, and report the statistics."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """mdpt's own deprecation warnings as one line ``mdpt: warning: ...``; any other warning as Python shows it."""
    if issubclass(category, DeprecatedName):
        print(f"mdpt: warning: {message}", file=sys.stderr, flush=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (MdptError, AnalysisError) as exc:  # bad input: a clear message, no traceback
        print(f"mdpt: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
