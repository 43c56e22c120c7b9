"""`mdpt` subcommands: placeholder until its issue lands (see sweeps/cli.py)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    pass
