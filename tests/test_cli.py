"""The `mdpt` entry point: help works and every subcommand group is registered."""

import subprocess
import sys


def test_mdpt_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "sweeps.cli", "--help"], capture_output=True, text=True, check=True)
    assert "usage: mdpt" in out.stdout
