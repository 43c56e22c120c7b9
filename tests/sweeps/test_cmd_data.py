"""`mdpt data make | list | info | import` through the installed console script, with MDPT_DATA in a tmp dir."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

MDPT = str(Path(sys.executable).with_name("mdpt"))


def mdpt(*args: str, data: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MDPT_DATA": str(data)}
    return subprocess.run([MDPT, "data", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mdpt_data")


def test_make_list_info(data):
    made = mdpt("make", "hopper-medium", "--budget", "tiny", data=data)
    assert made.returncode == 0, made.stderr
    assert "policies shipped" in made.stdout and "fingerprint" in made.stdout and made.stderr == ""
    assert (data / "hopper-medium" / "metadata.json").exists()

    listed = mdpt("list", data=data)
    assert listed.returncode == 0
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[2:]}
    assert len(rows) == 20 and " ok " in rows["hopper-medium"] and "tiny" in rows["hopper-medium"]
    assert rows["hopper-expert"].split()[1] == "-"

    info = mdpt("info", "hopper-medium", data=data)
    assert info.returncode == 0, info.stderr
    for text in ("HopperBulletEnv-v0", "transitions:", "normalized:", "reference:", "DAgger round", "budget tiny",
                 "policies shipped", "lines:        random ", ", zero-action (stand-still) ",
                 "seed 0, 10 episodes each",
                 "no forward progress (upper bound) 1000.0 (", "alive bonus 1 x the 1000-step cap"):
        assert text in info.stdout
    by_path = mdpt("info", str(data / "hopper-medium"), data=data)
    assert by_path.returncode == 0 and by_path.stdout.splitlines()[2:] == info.stdout.splitlines()[2:]


def test_out_and_seed_options(data, tmp_path):
    made = mdpt("make", "hopper-random", "--budget", "tiny", "--seed", "3", "--out", str(tmp_path), data=data)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "hopper-random" / "metadata.json").exists() and not (data / "hopper-random").exists()
    assert '"seed": 3' in (tmp_path / "hopper-random" / "metadata.json").read_text()


@pytest.mark.parametrize("args, message", [
    (("info", "hopper-expert"), "mdpt: error: dataset 'hopper-expert' not found in .*; create it with "
                                "`mdpt data make hopper-expert`"),
    (("make", "hopper-mediocre"), "mdpt: error: unknown task 'hopper-mediocre'; known tasks: hopper-random"),
    (("info", "nowhere/ds.hdf5"), "mdpt: error: nowhere/ds.hdf5: no such dataset file or directory"),
    (("import", "nowhere/ds.hdf5", "--name", "x"), "mdpt: error: nowhere/ds.hdf5: no such dataset file or directory"),
    (("make", "hopper-medium", "--policies", "nowhere"), "mdpt: error: nowhere/provenance.json: no behaviour "
                                                          "policies for hopper there; train them with"),
])
def test_errors_are_one_line(data, args, message):
    res = mdpt(*args, data=data)
    assert res.returncode == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert re.match(message, lines[0]), lines[0]


def test_bad_budget_is_rejected_by_argparse(data):
    res = mdpt("make", "hopper-medium", "--budget", "huge", data=data)
    assert res.returncode == 2 and "invalid choice: 'huge'" in res.stderr
